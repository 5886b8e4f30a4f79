"""The phases of an (optionally class-conditional) GAN: D's update, its lazy penalty, G's update.

A :class:`GAN` is five small values, one per concern: z's :class:`Latent`
distribution, the :class:`Objective` (loss pair, D's labels, penalty and how
often it runs, G's target), the :class:`Conditioning` on classes, the
:class:`InputNoise` on D's inputs and the :class:`Augmentation` of D's inputs
(DiffAugment or ADA). :meth:`GAN.phases` turns them into
:class:`ganjax.training.phases.Phase` values for
:func:`ganjax.training.phases.make_step`; the defaults are DCGAN's
(non-saturating loss, hard labels, Gaussian z, no penalty, no noise, no augmentation).

D sees a batch as: the batch (reals, or fakes mixed with replayed ones), plus
instance noise, then augmented, then packed. The noise is part of the sample
(it smooths both distributions); the augmentation is D's view of it, the first
thing D does, as in StyleGAN2-ADA; packing groups the augmented samples.

D's phase linearises G on this step's z and shares that forward pass and its
pullback with G's phase (``shared['g_forward']``), so a step runs G forward
once, as a hand-written step would.

What the state holds is the state's option, not the step's: an EMA of G when
``state.ema`` has ``'g'``, replayed fakes when ``state.buffers`` has
``'replay'`` (:func:`create_state`). ADA's controller
(:class:`ganjax.augment.AdaState`) lives in ``state.buffers['ada']``, so its
``p`` is checkpointed and restored with the rest of the state.

Example::

    gan = GAN(Latent(dim=100), Objective(loss="wasserstein", penalty="wgan_gp", penalty_weight=10.0))
    state = create_state(key, gan, Generator(), Critic(), (28, 28, 1))
    step = jax.jit(make_step(gan.phases(n_critic=5)), donate_argnums=0)
    state, metrics = step(state, {"image": five_real_batches})
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax import lax

from ganjax import augment, labels, latent, losses, noise, optim, penalties, rng
from ganjax.replay import ReplayBuffer, mix_and_push
from ganjax.training import standing
from ganjax.training.phases import Phase, PhaseInputs, PhaseOutput
from ganjax.training.state import Player, TrainState

Metrics = dict[str, jax.Array]
PyTree = Any
G_OBJECTIVES = ("adversarial", "feature_matching")
# The name under which D's phase shares G's linearised forward pass with G's phase.
G_FORWARD = "g_forward"


def _refuse(value: object, field: str, problem: str):
    raise ValueError(f"{type(value).__name__}.{field}: {problem}")


def _check_choice(value: object, field: str, table) -> None:
    if getattr(value, field) not in table:
        _refuse(value, field, f"unknown name {getattr(value, field)!r}; choose one of {sorted(table)}")


def _traced(value: object) -> bool:
    """Whether ``value`` is traced: a population member's value, checked where it is set
    (:func:`ganjax.training.population.set_loss_hparams`)."""
    return isinstance(value, jax.core.Tracer)


def _check_range(value: object, field: str, low: float, high: float = float("inf")) -> None:
    """Refuses ``value.field`` outside ``[low, high]``, and NaN and infinities (a traced value is not checked)."""
    if _traced(getattr(value, field)):
        return
    if not math.isfinite(getattr(value, field)):
        _refuse(value, field, f"must be finite, got {getattr(value, field)}")
    if not low <= getattr(value, field) <= high:
        _refuse(value, field, f"must be in [{low}, {high}], got {getattr(value, field)}")


@dataclasses.dataclass(frozen=True)
class Latent:
    """G's input z.

    Attributes:
      dim: the size of z.
      distribution: z's distribution, a key of :data:`ganjax.latent.LATENTS`.
    """

    dim: int = 100
    distribution: Literal[tuple(latent.LATENTS)] = "gaussian"

    def __post_init__(self):
        _check_range(self, "dim", 1)
        _check_choice(self, "distribution", latent.LATENTS)

    def sample(self, key: jax.Array, batch_size: int, axis_name: str | None = None) -> jax.Array:
        """This device's latents for a batch (see :func:`ganjax.rng.per_device`)."""
        return rng.per_device(latent.LATENTS[self.distribution], key, (batch_size, self.dim), axis_name)


@dataclasses.dataclass(frozen=True)
class Objective:
    """What D and G minimise.

    Attributes:
      loss: the loss pair, a key of :data:`ganjax.losses.LOSSES`.
      d_labels: D's targets, a key of :data:`ganjax.labels.LABELS` (only for losses that take labels).
      label_flip_prob: probability of flipping each of D's targets.
      real_label: the real target of ``d_labels='one_sided'`` (0.9 in Salimans et al. 2016).
      penalty: ``'none'`` or a key of :data:`ganjax.penalties.PENALTIES`.
      penalty_weight: the penalty's weight in D's loss (at step 0 when annealed).
      penalty_weight_final: anneal the weight with a cosine from ``penalty_weight`` to this
        over ``penalty_anneal_steps`` steps (:func:`ganjax.optim.cosine_anneal`; R3GAN,
        Huang et al. 2024: gamma / 2 from 0.025 to 0.0025 on CIFAR-10); None: constant.
      penalty_anneal_steps: the steps of that cosine (0 with no final weight).
      penalty_every: lazy regularization (Karras et al. 2020, StyleGAN2): the penalty
        is its own phase every ``penalty_every`` steps, its weight times ``penalty_every``;
        1 adds it to D's main loss.
      g_objective: ``'adversarial'`` (G fools D through ``loss``) or ``'feature_matching'``
        (G matches D's mean hidden features on reals, Salimans et al. 2016; D must sow them).
      packing: PacGAN (Lin et al. 2018): D judges packs of ``packing`` samples, each batch
        packed along channels by :func:`pack` in both phases and in the penalty; 1 is off.
    """

    loss: Literal[tuple(losses.LOSSES)] = "non_saturating"
    d_labels: Literal[tuple(labels.LABELS)] = "none"
    label_flip_prob: float = 0.0
    real_label: float = 0.9
    penalty: Literal[("none", *penalties.PENALTIES)] = "none"
    penalty_weight: float = 0.0
    penalty_weight_final: float | None = None
    penalty_anneal_steps: int = 0
    penalty_every: int = 1
    g_objective: Literal[G_OBJECTIVES] = "adversarial"
    packing: int = 1

    def __post_init__(self):
        _check_choice(self, "loss", losses.LOSSES)
        _check_choice(self, "d_labels", labels.LABELS)
        _check_choice(self, "penalty", {"none": None, **penalties.PENALTIES})
        _check_choice(self, "g_objective", G_OBJECTIVES)
        _check_range(self, "label_flip_prob", 0.0, 1.0)
        _check_range(self, "real_label", 0.0, 1.0)
        if not _traced(self.real_label) and self.real_label != 0.9 and self.d_labels != "one_sided":
            _refuse(self, "real_label", f"is {self.real_label}: it is the real target of d_labels 'one_sided' only")
        _check_range(self, "penalty_weight", 0.0)
        _check_range(self, "penalty_every", 1)
        _check_range(self, "packing", 1)
        if not isinstance(self.packing, int):
            _refuse(self, "packing", f"must be a whole number of samples, got {self.packing!r}")
        if not self.pair.uses_labels:
            if self.d_labels != "none":
                _refuse(self, "d_labels", f"{self.d_labels!r} needs a loss that takes labels; {self.loss!r} takes none")
            if _traced(self.label_flip_prob) or self.label_flip_prob:
                _refuse(self, "label_flip_prob", f"flipping needs a loss that takes labels; {self.loss!r} takes none")
        if not _traced(self.penalty_weight) and (self.penalty == "none") != (self.penalty_weight == 0):
            _refuse(
                self, "penalty_weight", f"is {self.penalty_weight} with penalty {self.penalty!r}: set both or neither"
            )
        if self.penalty == "none" and self.penalty_every != 1:
            _refuse(self, "penalty_every", f"is {self.penalty_every} with no penalty")
        _check_range(self, "penalty_anneal_steps", 0)
        if self.penalty_weight_final is None:
            if self.penalty_anneal_steps:
                _refuse(self, "penalty_anneal_steps", f"is {self.penalty_anneal_steps} with no penalty_weight_final")
        else:
            _check_range(self, "penalty_weight_final", 0.0)
            if self.penalty == "none":
                _refuse(self, "penalty_weight_final", "anneals the penalty's weight: choose a penalty")
            if not self.penalty_anneal_steps:
                _refuse(self, "penalty_weight_final", "needs penalty_anneal_steps, the steps it anneals over")

    @property
    def pair(self) -> losses.LossPair:
        return losses.LOSSES[self.loss]

    @property
    def least_d_loss(self) -> float:
        """The least D loss that D's targets allow (:func:`ganjax.losses.least_d_loss`), 0 for a loss without
        labels (a Wasserstein critic's is unbounded below): with one-sided smoothing a D that wins outright stops
        at 0.325, not at 0."""
        if not self.pair.uses_labels or (self.d_labels == "none" and not self.label_flip_prob):
            return 0.0  # hard targets, which every loss meets as D's logits grow
        return _least_d_loss(self.loss, self.d_labels, float(self.label_flip_prob), float(self.real_label))

    def penalty_weight_at(self, step: jax.Array) -> jax.Array | float:
        """The penalty's weight at ``step`` (traced in the step): constant, or annealed to ``penalty_weight_final``."""
        if self.penalty_weight_final is None:
            return self.penalty_weight
        return optim.cosine_anneal(self.penalty_weight, self.penalty_weight_final, self.penalty_anneal_steps)(step)


@functools.cache
def _least_d_loss(loss: str, scheme: str, flip_prob: float, real_label: float) -> float:
    """:attr:`Objective.least_d_loss` over 4,096 targets of each side, computed once per objective."""
    draw = functools.partial(labels.d_labels, scheme=scheme, flip_prob=flip_prob, real_label=real_label)
    return losses.least_d_loss(losses.LOSSES[loss].d, *draw(jax.random.key(0), (4096,)))


@dataclasses.dataclass(frozen=True)
class Conditioning:
    """Class conditioning: batches then carry ``'label'`` and G takes ``(z, labels)``.

    Attributes:
      num_classes: 0 for an unconditional GAN.
      aux_class_weight: weight of the AC-GAN class loss (Odena et al. 2017): D then
        returns ``(logit, class_logits)`` and takes no labels; at 0 a conditional D takes the labels.
      aux_fake_class_weight: weight of the fakes' term in D's class loss (1: Odena et
        al.'s loss; 0: D learns classes from reals only).
      conditional_g: whether G takes a drawn class. False: an unconditional G beside
        an AC-GAN D that learns the classes from the labelled reals alone (ganhacks
        trick 16, "use labels"; the semi-supervised D of Salimans et al. 2016);
        the batches still carry ``'label'``, and G's samples come from z alone.
      class_entropy_weight: weight of G's CatGAN term with an unconditional G
        (:func:`ganjax.losses.class_entropy_g_loss`, Springenberg 2016): each
        sample one class by D's class head, the batch spread over all of them.
      fake_classes: how a conditional G's classes are drawn in training:
        ``'uniform'``, or ``'reals'``, the real batch's own labels, so that the
        i-th fake has the i-th real's class and a penalty's interpolate between
        them (WGAN-GP's, Gulrajani et al. 2017) joins two images of one class
        scored as that class.
    """

    num_classes: int = 0
    aux_class_weight: float = 0.0
    aux_fake_class_weight: float = 1.0
    conditional_g: bool = True
    class_entropy_weight: float = 0.0
    fake_classes: Literal["uniform", "reals"] = "uniform"

    def __post_init__(self):
        for field in ("num_classes", "aux_class_weight", "aux_fake_class_weight", "class_entropy_weight"):
            _check_range(self, field, 0.0)
        if self.aux_class_weight and not self.num_classes:
            _refuse(self, "aux_class_weight", "the AC-GAN class loss needs num_classes > 0")
        if not self.conditional_g and self.num_classes:
            if not self.aux_class_weight:
                _refuse(
                    self,
                    "conditional_g",
                    "an unconditional G uses the labels through D's class head only: set aux_class_weight > 0",
                )
            if self.aux_fake_class_weight:
                _refuse(
                    self,
                    "aux_fake_class_weight",
                    f"is {self.aux_fake_class_weight} with conditional_g False: "
                    "an unconditional G's fakes have no class to learn; set it to 0",
                )
        if (_traced(self.class_entropy_weight) or self.class_entropy_weight) and self.conditional_g:
            _refuse(self, "class_entropy_weight", "is G's class term without a drawn class: set conditional_g False")
        if self.fake_classes not in ("uniform", "reals"):
            _refuse(self, "fake_classes", f"is {self.fake_classes!r}, not 'uniform' or 'reals'")
        if self.fake_classes != "uniform" and not self.g_takes_labels:
            _refuse(self, "fake_classes", f"is {self.fake_classes!r}, but G takes no class")

    @property
    def g_takes_labels(self) -> bool:
        """Whether G is called with a drawn class."""
        return bool(self.num_classes) and self.conditional_g

    @property
    def g_classes(self) -> int:
        """The classes G draws from (0: G takes no class)."""
        return self.num_classes if self.g_takes_labels else 0

    @property
    def d_takes_labels(self) -> bool:
        """Whether D is called with the class labels (a conditional GAN that is not an AC-GAN)."""
        return bool(self.num_classes) and not self.aux_class_weight


@dataclasses.dataclass(frozen=True)
class InputNoise:
    """Gaussian instance noise on D's inputs, real and fake (ganhacks trick 10; Sønderby et al. 2016).

    Attributes:
      std: its standard deviation at step 0 (0: off).
      decay_steps: steps over which it decays linearly to 0 (0: constant).
    """

    std: float = 0.0
    decay_steps: int = 0

    def __post_init__(self):
        _check_range(self, "std", 0.0)
        _check_range(self, "decay_steps", 0)

    def __call__(self, key: jax.Array, images: jax.Array, step: jax.Array, axis_name: str | None) -> jax.Array:
        """``images`` plus this step's noise; unchanged when off."""
        if not _traced(self.std) and not self.std:
            return images
        std = noise.instance_noise_schedule(self.std, self.decay_steps)(step)
        return images + std * rng.per_device(jax.random.normal, key, images.shape, axis_name)


AUGMENT_KINDS = ("none", "diffaugment", "ada")
# Each kind's policy when ``Augmentation.policy`` is '' (DiffAugment's policy for limited data; ADA's 'bc').
DEFAULT_POLICIES = {"none": "", "diffaugment": "color,translation,cutout", "ada": augment.ADA_DEFAULT}


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
        _check_choice(self, "kind", AUGMENT_KINDS)
        if self.kind == "none" and self.policy:
            _refuse(self, "policy", f"is {self.policy!r} with kind 'none': choose a kind to augment")
        try:
            _ = self.augment
        except ValueError as error:
            _refuse(self, "policy", f"{error} (kind {self.kind!r})")
        _check_range(self, "target", 0.0, 1.0)
        _check_range(self, "interval", 1)
        if not isinstance(self.interval, int):
            _refuse(self, "interval", f"must be a whole number of D updates, got {self.interval!r}")
        _check_range(self, "kimg", 0.0)
        if not _traced(self.kimg) and self.kimg == 0:
            _refuse(self, "kimg", "must be positive")
        _check_range(self, "initial_p", 0.0, 1.0)
        defaults = Augmentation.__dataclass_fields__
        for field in ("target", "interval", "kimg", "initial_p"):
            value = getattr(self, field)
            if self.kind != "ada" and (_traced(value) or value != defaults[field].default):
                _refuse(self, field, f"is {value} with kind {self.kind!r}: it is ADA's only (kind 'ada')")

    @property
    def on(self) -> bool:
        return self.kind != "none"

    @property
    def augment(self) -> augment.Augment | None:
        """The :class:`ganjax.augment.Augment` of ``kind`` and ``policy`` (None when off)."""
        policy = self.policy or DEFAULT_POLICIES[self.kind]
        if self.kind == "diffaugment":
            return augment.diff_augment(policy)
        if self.kind == "ada":
            return augment.ada_pipeline(policy)
        return None

    def p(self, buffers: Mapping) -> jax.Array | None:
        """ADA's current ``p`` from the state's buffers (None for the other kinds)."""
        if self.kind != "ada":
            return None
        if "ada" not in buffers:
            _refuse(self, "kind", "is 'ada' but the state has no buffers['ada']: make it with create_state(gan=...)")
        return buffers["ada"].p

    def draw(self, key: jax.Array, shape: tuple[int, ...], p: jax.Array | None, axis_name: str | None):
        """This device's rows of one draw for the global batch (the parameters of :meth:`apply`); None when off."""
        if not self.on:
            return None
        if len(shape) != 4:
            _refuse(self, "kind", f"{self.kind!r} augments images (N, H, W, C); D's inputs have shape {shape}")
        aug = self.augment
        draw = aug.draw if p is None else functools.partial(aug.draw, p=p)
        return rng.per_device(draw, key, shape, axis_name)

    def apply(self, params, images: jax.Array) -> jax.Array:
        """``images`` transformed by a draw (differentiably); unchanged when off."""
        return images if params is None else self.augment.apply(params, images)

    def ada_update(self, state: augment.AdaState, real_logits: jax.Array, batch_size, axis_name: str | None):
        """ADA's controller after one D update, with this part's target, interval and kimg."""
        return augment.ada_update(
            state,
            real_logits,
            target=self.target,
            interval=self.interval,
            ada_kimg=self.kimg,
            batch_size=batch_size,
            axis_name=axis_name,
        )


def _class_loss(class_logits: jax.Array, y: jax.Array) -> jax.Array:
    """The AC-GAN auxiliary loss: cross-entropy of D's class logits against the labels."""
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(class_logits, y))


def d_outputs(real_logits: jax.Array, fake_logits: jax.Array, loss: losses.LossPair) -> Metrics:
    """D's mean verdict on the real and the fake batch.

    ``d_real``/``d_fake``: mean probabilities of "real" for the cross-entropy
    losses; ``d_real_score``/``d_fake_score``: mean raw scores for the others,
    whose scores are not logits of a probability (a Wasserstein critic's sigmoid
    sits at 0 or 1 and says nothing).
    """
    if loss.probabilistic:
        return {"d_real": jnp.mean(jax.nn.sigmoid(real_logits)), "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits))}
    return {"d_real_score": jnp.mean(real_logits), "d_fake_score": jnp.mean(fake_logits)}


@dataclasses.dataclass(frozen=True)
class GAN:
    """An image GAN's objective, by concern; static under jit (hashable, compared by value)."""

    latent: Latent = Latent()
    objective: Objective = Objective()
    conditioning: Conditioning = Conditioning()
    noise: InputNoise = InputNoise()
    augment: Augmentation = Augmentation()

    def __post_init__(self):
        if self.objective.g_objective == "feature_matching" and self.conditioning.aux_class_weight:
            _refuse(self.objective, "g_objective", "feature matching has no AC-GAN class loss for G")
        if self.objective.packing > 1 and self.conditioning.num_classes:
            _refuse(
                self.objective,
                "packing",
                f"is {self.objective.packing} with num_classes {self.conditioning.num_classes}: "
                "a pack of samples of different classes has no single class for D to condition on or predict",
            )

    def packed(self, images: jax.Array) -> jax.Array:
        """D's view of a batch: :func:`pack` by ``objective.packing``; refuses a batch it does not divide."""
        if images.shape[0] % self.objective.packing:
            _refuse(
                self.objective,
                "packing",
                f"a batch of {images.shape[0]} rows does not split into packs of {self.objective.packing}",
            )
        return pack(images, self.objective.packing)

    def augmented(self, key: jax.Array, images: jax.Array, p: jax.Array | None, axis_name: str | None):
        """``(images augmented by a fresh draw, the draw)``: the draw is None and the images unchanged when off."""
        params = self.augment.draw(key, images.shape, p, axis_name)
        return self.augment.apply(params, images), params

    def seen_by_d(self, draw) -> Callable[[jax.Array], jax.Array]:
        """``packed -> packed``: D's view, through ``draw``, of a packed batch (a penalty's inputs); identity if off."""
        if draw is None:
            return lambda x: x
        m = self.objective.packing
        return lambda x: pack(self.augment.apply(draw, unpack(x, m)), m)

    # ------------------------------------------------------------------ the players' calls

    def real_inputs(self, batch: Mapping[str, jax.Array]) -> tuple[jax.Array, jax.Array | None]:
        """The real images and, for a conditional GAN, their labels."""
        if self.conditioning.num_classes and "label" not in batch:
            raise ValueError(
                f"Conditioning.num_classes={self.conditioning.num_classes}: the batch needs a 'label' entry"
            )
        return batch["image"], batch["label"] if self.conditioning.num_classes else None

    def generate(
        self, g: Player, params, key: jax.Array, batch_size: int, axis_name: str | None, real_y: jax.Array | None = None
    ) -> tuple[jax.Array, jax.Array | None, dict]:
        """A fake batch from G in train mode: ``(images, labels or None, G's new batch_stats)``; a conditional G's
        labels are ``real_y``, the real batch's, with ``Conditioning.fake_classes`` ``'reals'``."""
        z_key, y_key, g_key = jax.random.split(key, 3)
        y = None
        if self.conditioning.g_takes_labels and self.conditioning.fake_classes == "reals":
            y = real_y
        elif self.conditioning.g_takes_labels:
            draw = lambda k, shape: jax.random.randint(k, shape, 0, self.conditioning.num_classes)
            y = rng.per_device(draw, y_key, (batch_size,), axis_name)
        noise_key, dropout_key = jax.random.split(rng.device_key(g_key, axis_name))
        inputs = (self.latent.sample(z_key, batch_size, axis_name),) + (() if y is None else (y,))
        images, stats = g(params, *inputs, train=True, rngs={"noise": noise_key, "dropout": dropout_key})
        return images, y, stats

    def _d_inputs(self, images: jax.Array, y: jax.Array | None) -> tuple[jax.Array, ...]:
        """D's positional inputs: the images, and the labels when D takes them."""
        return (images, y) if self.conditioning.d_takes_labels else (images,)

    def discriminate(self, d: Player, params, images: jax.Array, y: jax.Array | None, train: bool = True):
        """D on ``images``: ``(logits, class_logits or None, batch_stats)``."""
        out, stats = d(params, *self._d_inputs(images, y), train=train)
        logits, class_logits = out if self.conditioning.aux_class_weight else (out, None)
        return logits, class_logits, stats

    def d_features(self, d: Player, images: jax.Array, y: jax.Array | None) -> jax.Array:
        """D's sown hidden features of ``images`` (train mode)."""
        return d.with_features(d.params, *self._d_inputs(images, y))[1]

    # ------------------------------------------------------------------ the losses

    def d_loss(
        self,
        params,
        inputs: PhaseInputs,
        real: jax.Array,
        real_y: jax.Array | None,
        fake: jax.Array,
        fake_y: jax.Array | None,
    ) -> tuple[jax.Array, PhaseOutput]:
        """D's loss on an all-real and an all-fake batch, each its own BatchNorm call (ganhacks trick 4).

        With the objective's labels, flips, packing and (unless lazy) penalty, the
        conditioning's class loss, the input noise and the augmentation (noise,
        then augmentation, then packing; keys ``'augment_real'`` and
        ``'augment_fake'``). With ADA it also returns the controller's new state
        (``buffers['ada']``, from the signs of D's real logits) and logs
        ``ada_p`` and ``ada_rt``. Other models' D phases (VAE-GAN's) call it with their own fakes.
        """
        d, objective, pair, axis = inputs.state.players["d"], self.objective, self.objective.pair, inputs.axis_name
        label_key, real_noise, fake_noise, penalty_key = jax.random.split(rng.named(inputs.key, "d"), 4)
        step = inputs.state.step
        real, fake = self.noise(real_noise, real, step, axis), self.noise(fake_noise, fake, step, axis)
        p = self.augment.p(inputs.state.buffers)
        real_seen, real_draw = self.augmented(rng.named(inputs.key, "augment_real"), real, p, axis)
        fake_seen, fake_draw = self.augmented(rng.named(inputs.key, "augment_fake"), fake, p, axis)
        real_rows = real.shape[0]  # real images per device, before packing (ADA counts images)
        real, fake = self.packed(real), self.packed(fake)
        real_seen, fake_seen = self.packed(real_seen), self.packed(fake_seen)
        real_logits, real_classes, stats = self.discriminate(d, params, real_seen, real_y)
        fake_logits, fake_classes, stats = self.discriminate(d.replace(batch_stats=stats), params, fake_seen, fake_y)
        if pair.uses_labels:
            draw = functools.partial(
                labels.d_labels,
                scheme=objective.d_labels,
                flip_prob=objective.label_flip_prob,
                real_label=objective.real_label,
            )
            targets = rng.per_device(draw, label_key, real_logits.shape, axis)
            d_loss = pair.d(real_logits, fake_logits, targets.real, targets.fake)
        else:
            d_loss = pair.d(real_logits, fake_logits)
        parts = {"d_loss": d_loss}
        total = d_loss
        if objective.penalty != "none" and objective.penalty_every == 1:
            parts["penalty"] = self.penalty(
                d.replace(batch_stats=stats),
                params,
                real,
                real_y,
                fake,
                fake_y,
                rng.device_key(penalty_key, axis),
                draws={"real": real_draw, "fake": fake_draw},
            )
            total = total + objective.penalty_weight_at(step) * parts["penalty"]
        if self.conditioning.aux_class_weight:
            parts["d_class_loss"] = _class_loss(real_classes, real_y)
            if self.conditioning.g_takes_labels:
                parts["d_class_loss"] += self.conditioning.aux_fake_class_weight * _class_loss(fake_classes, fake_y)
            total = total + self.conditioning.aux_class_weight * parts["d_class_loss"]
        metrics = {**parts, **d_outputs(real_logits, fake_logits, pair)}
        buffers = {}
        if p is not None:
            batch_size = real_rows * (1 if axis is None else lax.psum(1, axis))
            buffers["ada"] = ada = self.augment.ada_update(inputs.state.buffers["ada"], real_logits, batch_size, axis)
            metrics.update(ada_p=ada.p, ada_rt=ada.rt)
        return total, PhaseOutput(metrics=metrics, batch_stats={"d": stats}, buffers=buffers)

    def penalty(
        self, d: Player, params, real, real_y, fake, fake_y, key: jax.Array, draws: Mapping | None = None
    ) -> jax.Array:
        """The objective's penalty on D's packed inputs; D scores examples independently (running statistics).

        The penalty takes D as it sees each batch of its :attr:`ganjax.penalties.Penalty.views`:
        through that batch's augmentation draw (``draws['real']``, ``draws['fake']``; none: not
        augmented) by :meth:`seen_by_d`, so the gradient is taken with respect to the unaugmented
        inputs through the augmentation, as StyleGAN2-ADA takes R1 (Karras et al. 2020); and, for a
        conditional D, with that batch's labels. R1 + R2 thus differentiates D on the reals
        through the reals' draw and on the fakes through the fakes'.
        """
        penalty, draws, ys = penalties.PENALTIES[self.objective.penalty], draws or {}, {"real": real_y, "fake": fake_y}

        def critic(batch: str):
            view = self.seen_by_d(draws.get(batch))
            return lambda x: self.discriminate(d, params, view(x), ys[batch], train=False)[0]

        return penalty.fn(*map(critic, penalty.views), real, fake, key)

    def _fresh_fakes(self, inputs: PhaseInputs, real_y: jax.Array | None, batch_size: int):
        g = inputs.state.players["g"]
        key = rng.named(inputs.key, "fake")
        images, y, _ = self.generate(g, g.params, key, batch_size, inputs.axis_name, real_y)
        return lax.stop_gradient(images), y

    def _d_main(self, params, inputs: PhaseInputs):
        """D's update on this step's fakes; it shares G's linearisation with G's phase (one G forward a step)."""
        real, real_y = self.real_inputs(inputs.batch)
        g = inputs.state.players["g"]
        key = rng.named(inputs.key, "fake")
        fake, pullback, (fake_y, g_stats) = jax.vjp(
            lambda p: _split_aux(self.generate(g, p, key, real.shape[0], inputs.axis_name, real_y)),
            g.params,
            has_aux=True,
        )
        shared = {G_FORWARD: (fake, fake_y, g_stats, pullback)}
        buffers = {}
        if "replay" in inputs.state.buffers:
            pool = inputs.state.buffers["replay"]
            fake, buffers["replay"] = mix_and_push(pool, rng.named(inputs.key, "replay"), fake, inputs.axis_name)
        loss, output = self.d_loss(params["d"], inputs, real, real_y, fake, fake_y)
        return loss, output._replace(buffers={**output.buffers, **buffers}, shared=shared)

    def _d_penalty(self, params, inputs: PhaseInputs):
        """The lazy penalty phase: weight times ``penalty_every``, on this step's reals and fresh fakes.

        Augmented as D's phase augments them, each batch with its own draw (keys ``'penalty/augment_real'``
        and ``'penalty/augment_fake'``).
        """
        real, real_y = self.real_inputs(inputs.batch)
        fake, fake_y = self._fresh_fakes(inputs, real_y, real.shape[0])
        key = rng.device_key(rng.named(inputs.key, "penalty"), inputs.axis_name)
        d, p = inputs.state.players["d"], self.augment.p(inputs.state.buffers)
        draws = {
            name: self.augment.draw(rng.named(inputs.key, f"penalty/augment_{name}"), images.shape, p, inputs.axis_name)
            for name, images in (("real", real), ("fake", fake))
        }
        value = self.penalty(d, params["d"], self.packed(real), real_y, self.packed(fake), fake_y, key, draws)
        weight = self.objective.penalty_weight_at(inputs.state.step) * self.objective.penalty_every
        return weight * value, PhaseOutput(metrics={"penalty": value})

    def _g_main(self, params, inputs: PhaseInputs):
        d, g = inputs.state.players["d"], inputs.state.players["g"]
        real, real_y = self.real_inputs(inputs.batch)
        if G_FORWARD in inputs.shared:
            fake, fake_y, g_stats, pullback = inputs.shared[G_FORWARD]
            fake = _pulled_back_by(pullback, fake)(params["g"])
        else:
            key = rng.named(inputs.key, "fake")
            fake, fake_y, g_stats = self.generate(g, params["g"], key, real.shape[0], inputs.axis_name, real_y)
        axis, p = inputs.axis_name, self.augment.p(inputs.state.buffers)
        # D sees fresh augmentations of both batches (keys 'g/augment_real', 'g/augment_fake'); G's gradient
        # flows through the augmentation of the fakes.
        augmented = lambda name, images: self.augmented(rng.named(inputs.key, f"g/augment_{name}"), images, p, axis)[0]
        if self.objective.g_objective == "feature_matching":
            # Each device matches its own batch's means; gradients are averaged over devices.
            real_features = lax.stop_gradient(self.d_features(d, self.packed(augmented("real", real)), real_y))
            fake_features = self.d_features(d, self.packed(augmented("fake", fake)), fake_y)
            g_loss = losses.feature_matching_g_loss(fake_features, real_features)
            return g_loss, PhaseOutput(metrics={"g_loss": g_loss}, batch_stats={"g": g_stats})
        pair, step = self.objective.pair, inputs.state.step
        real_noise, fake_noise = jax.random.split(rng.named(inputs.key, "g"))
        # D's statistics are updated in D's phase only.
        d_view = lambda key, name, images: self.packed(augmented(name, self.noise(key, images, step, axis)))
        fake_logits, fake_classes, _ = self.discriminate(d, d.params, d_view(fake_noise, "fake", fake), fake_y)
        real_logits = None
        if pair.g_needs_real:
            real_logits = self.discriminate(d, d.params, d_view(real_noise, "real", real), real_y)[0]
        parts = {"g_loss": pair.g(fake_logits, real_logits)}
        total = parts["g_loss"]
        if self.conditioning.g_takes_labels and self.conditioning.aux_class_weight:
            parts["g_class_loss"] = _class_loss(fake_classes, fake_y)
            total = total + self.conditioning.aux_class_weight * parts["g_class_loss"]
        if _traced(self.conditioning.class_entropy_weight) or self.conditioning.class_entropy_weight:
            parts["g_class_entropy"] = losses.class_entropy_g_loss(fake_classes, axis)
            total = total + self.conditioning.class_entropy_weight * parts["g_class_entropy"]
        return total, PhaseOutput(metrics=parts, batch_stats={"g": g_stats})

    def phases(self, n_critic: int = 1) -> tuple[Phase, ...]:
        """D's update (``n_critic`` times per step), its lazy penalty (if any), then G's through the new D."""
        if n_critic < 1:
            raise ValueError(f"n_critic must be at least 1, got {n_critic}")
        phases = [Phase("d", ("d",), self._d_main, repeat=n_critic)]
        if self.objective.penalty != "none" and self.objective.penalty_every > 1:
            phases.append(Phase("d_penalty", ("d",), self._d_penalty, every=self.objective.penalty_every))
        phases.append(Phase("g", ("g",), self._g_main))
        return tuple(phases)


def pack(images: jax.Array, m: int) -> jax.Array:
    """PacGAN's packing (Lin, Khetan, Fanti and Oh 2018): ``(N, ..., C)`` to ``(N / m, ..., m * C)``.

    Pack ``i`` concatenates samples ``m * i`` to ``m * i + m - 1`` along the last (channel) axis.
    """
    n, *rest, channels = images.shape
    grouped = jnp.moveaxis(images.reshape(n // m, m, *rest, channels), 1, -2)
    return grouped.reshape(n // m, *rest, m * channels)


def unpack(packed: jax.Array, m: int) -> jax.Array:
    """The inverse of :func:`pack`: ``(N / m, ..., m * C)`` to ``(N, ..., C)``."""
    n, *rest, channels = packed.shape
    grouped = jnp.moveaxis(packed.reshape(n, *rest, m, channels // m), -2, 1)
    return grouped.reshape(n * m, *rest, channels // m)


def _split_aux(generated):
    """``generate``'s ``(images, labels, stats)`` as ``jax.vjp``'s ``(output, aux)``."""
    images, y, stats = generated
    return images, (y, stats)


def _pulled_back_by(pullback, images: jax.Array):
    """``params -> images`` whose gradient is ``pullback``: G's forward pass of D's phase, reused by G's.

    D's phase linearises G at this step's params and z (the same named key as
    G's phase), and G is unchanged between the two phases, so G's phase needs
    no second forward pass: the former step's single linearisation.
    """

    @jax.custom_vjp
    def forward(params):
        return images

    forward.defvjp(lambda params: (images, None), lambda _, cotangent: pullback(cotangent))
    return forward


def create_state(
    key: jax.Array,
    gan: GAN,
    generator: nn.Module,
    discriminator: nn.Module,
    image_shape: tuple[int, ...],
    g_tx: optax.GradientTransformation | None = None,
    d_tx: optax.GradientTransformation | None = None,
    ema_decay: float = 0.0,
    replay_capacity: int = 0,
    replay_share: float = 0.0,
) -> TrainState:
    """Both players (optimizers default to Adam(2e-4, b1=0.5), as in DCGAN) and the state's options.

    Args:
      key: the run's key; it seeds both players' init and every later step.
      gan: the objective (``latent.dim`` and the conditioning shape the players' inputs; ADA's
        augmentation adds its controller, ``buffers['ada'] = ada_init(gan.augment.initial_p)``).
      generator: called as ``generator(z, train=...)`` (``generator(z, labels, train=...)`` when conditional).
      discriminator: called as ``discriminator(images, train=...)`` (with labels too when
        ``gan.conditioning.d_takes_labels``).
      image_shape: the shape of one example, e.g. ``(H, W, C)``; D is initialised on packs of
        ``gan.objective.packing`` of them, ``(H, W, packing * C)``.
      g_tx: G's optimizer.
      d_tx: D's optimizer.
      ema_decay: keep a moving average of G's params with this decay (0: none).
      replay_capacity: keep a ring of this many past fakes (0: none), of which D's fake
        batch replays ``replay_share`` (ganhacks trick 7).
      replay_share: see ``replay_capacity``.
    """
    if (replay_capacity == 0) != (replay_share == 0):
        raise ValueError(f"replay_share is {replay_share} with replay_capacity {replay_capacity}: set both or neither")
    g_tx = g_tx or optax.adam(2e-4, b1=0.5)
    d_tx = d_tx or optax.adam(2e-4, b1=0.5)
    g_key, d_key, run_key = jax.random.split(key, 3)
    y = (jnp.zeros((2,), jnp.int32),) if gan.conditioning.g_takes_labels else ()
    g = Player.create(generator, g_tx, g_key, jnp.zeros((2, gan.latent.dim)), *y)
    d_shape = (*image_shape[:-1], gan.objective.packing * image_shape[-1])
    d = Player.create(
        discriminator, d_tx, d_key, jnp.zeros((2, *d_shape)), *(y if gan.conditioning.d_takes_labels else ())
    )
    buffers = (
        {"replay": ReplayBuffer.create(replay_capacity, image_shape, share=replay_share)} if replay_capacity else {}
    )
    if gan.augment.kind == "ada":
        buffers["ada"] = augment.ada_init(gan.augment.initial_p)
    return TrainState.create(run_key, {"g": g, "d": d}, ema_decay={"g": ema_decay}, buffers=buffers)


def ema_stats(
    state: TrainState,
    key: jax.Array,
    draw: Callable[[jax.Array, int], jax.Array],
    batch_size: int,
    num_classes: int = 0,
) -> PyTree:
    """G's BatchNorm statistics recomputed for the moving average of its params (BigGAN's standing statistics).

    :func:`ganjax.training.standing.standing_stats` of G's module and ``state.ema['g']``'s params over
    :data:`ganjax.training.standing.STANDING_BATCHES` batches of ``batch_size`` z from ``draw`` (and labels of
    ``num_classes`` classes drawn uniformly, for a conditional G), from the sampling event's ``key``. ``{}``
    for a G without BatchNorm. Pass the result to :func:`generate` as ``ema_stats``.
    """
    g = state.players["g"]
    variables = {"params": state.params("g", use_ema=True), "batch_stats": g.batch_stats}
    return standing.standing_stats(g.apply_fn, variables, key, draw, batch_size, num_classes)


def generate(
    state: TrainState,
    z: jax.Array,
    labels: jax.Array | None = None,
    train: bool = False,
    use_ema: bool = False,
    rngs=None,
    ema_stats: PyTree | None = None,
) -> jax.Array:
    """G's images for ``z`` (and class ``labels``), with BatchNorm running statistics unless ``train``.

    G's running statistics belong to G's own params; the moving average of its params is sampled with
    statistics recomputed for it (:func:`ema_stats`).

    Args:
      state: the train state.
      z: latents ``(N, latent_dim)``.
      labels: class labels ``(N,)`` for a conditional G.
      train: use batch statistics instead of running ones.
      use_ema: use the moving average of G's params (with ``ema_stats``).
      rngs: keys for G's noise and dropout layers, if it has any.
      ema_stats: the moving average's BatchNorm statistics (:func:`ema_stats`); needed with ``use_ema`` by a
        G with BatchNorm outside training mode.

    Raises:
      ValueError: for ``use_ema`` without ``ema_stats`` where they are needed, or without a moving average.
    """
    g = state.players["g"]
    params = state.params("g", use_ema)
    if use_ema and not train and g.batch_stats:
        if ema_stats is None:
            raise ValueError(
                "generate: use_ema samples G's moving average, whose BatchNorm statistics are not G's running "
                "ones; pass ema_stats=ema_stats(state, key, ...)"
            )
        g = g.replace(batch_stats=ema_stats)
    inputs = (z,) if labels is None else (z, labels)
    return g(params, *inputs, train=train, rngs=rngs)[0]
