"""The augmentation of D's inputs as a GAN's part: :class:`Augmentation` (DiffAugment or ADA).

:class:`ganjax.training.gan.GAN` calls it on every batch D sees: a draw for the global batch, sliced per
device (:meth:`Augmentation.draw`), applied differentiably (:meth:`Augmentation.apply`), and, for ADA,
the controller's update after each D update (:meth:`Augmentation.ada_update`), its ``p`` read from the
state's ``buffers['ada']`` (:meth:`Augmentation.p`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Literal

import jax

from ganjax import rng
from ganjax.augment.ada import ADA_DEFAULT, AdaState, ada_pipeline, ada_update
from ganjax.augment.diffaugment import diff_augment
from ganjax.augment.ops import Augment
from ganjax.validate import in_range, one_of, refuse, traced

AUGMENT_KINDS = ("none", "diffaugment", "ada")
# Each kind's policy when ``Augmentation.policy`` is '' (DiffAugment's policy for limited data; ADA's 'bc').
DEFAULT_POLICIES = {"none": "", "diffaugment": "color,translation,cutout", "ada": ADA_DEFAULT}


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Differentiable augmentation of every input of D, real and fake, in both players' updates.

    Each batch D sees (reals and fakes, in D's phase, G's phase and the
    penalty) gets its own random draw; the transform is differentiable, so G
    is trained through it. A penalty differentiates D's output on the augmented
    inputs with respect to the unaugmented ones (R1 as in StyleGAN2-ADA),
    with the draw of the batch it reads.

    - ``'diffaugment'``: DiffAugment (Zhao, Liu, Lin, Zhu and Han 2020,
      Differentiable Augmentation for Data-Efficient GAN Training):
      :func:`ganjax.augment.diff_augment` of ``policy``.
    - ``'ada'``: adaptive discriminator augmentation (Karras, Aittala,
      Hellsten, Laine, Lehtinen and Aila 2020, Training Generative Adversarial
      Networks with Limited Data): :func:`ganjax.augment.ada_pipeline` of
      ``policy``, each op applied with probability ``p``; ``p`` is kept in
      ``state.buffers['ada']`` and adjusted from the sign of D's real logits by
      :func:`ganjax.augment.ada_update`.

    Attributes:
      kind: ``'none'``, ``'diffaugment'`` or ``'ada'``.
      policy: DiffAugment's ops (of ``color``, ``translation``, ``cutout``) or
        ADA's (of :data:`ganjax.augment.ADA_OPS`), comma-separated; '' is the
        kind's default (:data:`DEFAULT_POLICIES`).
      target: ADA's target for ``r_t = E[sign(D(x_real))]`` (0.6 in the paper).
      interval: ADA: D updates between adjustments of ``p`` (4 in the paper).
      kimg: ADA: thousands of real images for ``p`` to go from 0 to 1 (500 in the paper).
      initial_p: ADA's ``p`` at step 0 (0 in the paper).
    """

    kind: Literal[AUGMENT_KINDS] = "none"
    policy: str = ""
    target: float = 0.6
    interval: int = 4
    kimg: float = 500.0
    initial_p: float = 0.0

    def __post_init__(self):
        one_of(self, "kind", AUGMENT_KINDS)
        if self.kind == "none" and self.policy:
            refuse(self, "policy", f"is {self.policy!r} with kind 'none': choose a kind to augment")
        try:
            _ = self.augment
        except ValueError as error:
            refuse(self, "policy", f"{error} (kind {self.kind!r})")
        in_range(self, "target", 0.0, 1.0)
        in_range(self, "interval", 1)
        if not isinstance(self.interval, int):
            refuse(self, "interval", f"must be a whole number of D updates, got {self.interval!r}")
        in_range(self, "kimg", 0.0)
        if not traced(self.kimg) and self.kimg == 0:
            refuse(self, "kimg", "must be positive")
        in_range(self, "initial_p", 0.0, 1.0)
        defaults = Augmentation.__dataclass_fields__
        for field in ("target", "interval", "kimg", "initial_p"):
            value = getattr(self, field)
            if self.kind != "ada" and (traced(value) or value != defaults[field].default):
                refuse(self, field, f"is {value} with kind {self.kind!r}: it is ADA's only (kind 'ada')")

    @property
    def on(self) -> bool:
        return self.kind != "none"

    @property
    def augment(self) -> Augment | None:
        """The :class:`ganjax.augment.Augment` of ``kind`` and ``policy`` (None when off)."""
        policy = self.policy or DEFAULT_POLICIES[self.kind]
        if self.kind == "diffaugment":
            return diff_augment(policy)
        if self.kind == "ada":
            return ada_pipeline(policy)
        return None

    def p(self, buffers: Mapping) -> jax.Array | None:
        """ADA's current ``p`` from the state's buffers (None for the other kinds)."""
        if self.kind != "ada":
            return None
        if "ada" not in buffers:
            refuse(self, "kind", "is 'ada' but the state has no buffers['ada']: make it with create_state(gan=...)")
        return buffers["ada"].p

    def draw(self, key: jax.Array, shape: tuple[int, ...], p: jax.Array | None, axis_name: str | None):
        """This device's rows of one draw for the global batch (the parameters of :meth:`apply`); None when off."""
        if not self.on:
            return None
        if len(shape) != 4:
            refuse(self, "kind", f"{self.kind!r} augments images (N, H, W, C); D's inputs have shape {shape}")
        aug = self.augment
        draw = aug.draw if p is None else functools.partial(aug.draw, p=p)
        return rng.per_device(draw, key, shape, axis_name)

    def apply(self, params, images: jax.Array) -> jax.Array:
        """``images`` transformed by a draw (differentiably); unchanged when off."""
        return images if params is None else self.augment.apply(params, images)

    def ada_update(self, state: AdaState, real_logits: jax.Array, batch_size, axis_name: str | None):
        """ADA's controller after one D update, with this part's target, interval and kimg."""
        return ada_update(
            state,
            real_logits,
            target=self.target,
            interval=self.interval,
            ada_kimg=self.kimg,
            batch_size=batch_size,
            axis_name=axis_name,
        )
