"""Augmentation of D's inputs: DiffAugment and ADA's adaptive pipeline, as pure functions of a key.

With little data D memorises the training set and its feedback to G becomes
noise. Both methods show D only augmented images, reals and fakes alike,
through a transform that is differentiable so that G is trained through it.
Since reals and fakes go through the same random transform, matching the
augmented data still means matching the data (ADA: as long as ``p`` stays below
about 0.8, above which its augmentations start to leak into G's samples).

- **DiffAugment** (Zhao, Liu, Lin, Zhu and Han 2020): :func:`diff_augment`
  turns a policy such as ``"color,translation,cutout"`` into one
  augmentation, every op applied to every example with its own random
  parameters.
- **ADA** (Karras, Aittala, Hellsten, Laine, Lehtinen and Aila 2020):
  :func:`ada_pipeline` applies each op of its pipeline to each example with
  probability ``p`` (a traced scalar); the controller (:class:`AdaState`,
  :func:`ada_init`, :func:`ada_update`) raises ``p`` while D is too sure of the
  reals (``r_t = E[sign(D(x_real))]`` above its target 0.6) and lowers it
  otherwise.

An augmentation is an :class:`Augment`: ``aug(key, images, *args) -> images``
on NHWC batches (float, in [-1, 1]), split into ``aug.draw(key, shape, *args)``,
the per-example random parameters, which depend on the key, the batch shape and
``p`` only (never on the content), and ``aug.apply(params, images)``, the
differentiable transform. Reals and fakes thus get the same distribution of
transforms whatever their content; each batch should be given its own key.

In a GAN, :class:`Augmentation` is the part that chooses one and applies it to every
batch D sees (the step itself lives in :mod:`ganjax.training.gan`). Using one in a step of your own:

- D's phase: augment the real and the fake batch with two different named keys
  (``rng.named(key, 'augment_real')``, ``rng.named(key, 'augment_fake')``),
  before packing and before D; a penalty on reals (R1) differentiates D's output
  with respect to the unaugmented reals through ``apply``, as StyleGAN2-ADA does.
- G's phase: augment the fakes again (any key) before D; G's gradient flows
  through ``apply``.
- On several devices, draw the parameters for the global batch and keep this
  device's rows: ``aug.apply(rng.per_device(aug.draw, key, images.shape, axis_name), images)``
  (for ADA, ``functools.partial(aug.draw, p=p)``), so that a run does not depend
  on the device count.
- ADA's state: ``ada_init()`` in ``TrainState.buffers['ada']``; D's phase reads
  ``p`` from it, augments with it, and returns
  ``PhaseOutput(buffers={'ada': ada_update(state.buffers['ada'], real_logits, axis_name=axis_name)})``;
  G's phase reads the same ``p``. ``AdaState.p`` and ``AdaState.rt`` are the
  metrics to log; the state is a pytree of scalars, so it is checkpointed and
  vmapped over a population like the rest of the train state.

The package, by concern: :mod:`ganjax.augment.ops` (:class:`Augment`, :func:`chain`),
:mod:`ganjax.augment.diffaugment`, :mod:`ganjax.augment.ada` (the pipeline and its controller) and
:mod:`ganjax.augment.augmentation` (the GAN's part); their public names are re-exported here.

Example:
  >>> import jax
  >>> import jax.numpy as jnp
  >>> images = jnp.zeros((8, 16, 16, 3))
  >>> diff = jax.jit(diff_augment("color,translation,cutout"))
  >>> diff(jax.random.key(0), images).shape
  (8, 16, 16, 3)
  >>> ada, update, state = jax.jit(ada_pipeline()), jax.jit(ada_update), ada_init()
  >>> ada(jax.random.key(1), images, state.p).shape
  (8, 16, 16, 3)
  >>> for _ in range(4):  # D calls every real image real: r_t = 1 > 0.6
  ...     state = update(state, jnp.ones(64))
  >>> round(float(state.p), 6), float(state.rt)  # + 64 images x 4 steps / 500k images
  (0.000512, 1.0)
"""

from ganjax.augment.ada import (
    ADA_DEFAULT,
    ADA_OPS,
    BRIGHTNESS_STD,
    CONTRAST_STD,
    HUE_MAX,
    SATURATION_STD,
    XINT_MAX,
    AdaParams,
    AdaState,
    ada_init,
    ada_pipeline,
    ada_update,
)
from ganjax.augment.augmentation import AUGMENT_KINDS, DEFAULT_POLICIES, Augmentation
from ganjax.augment.diffaugment import (
    DIFF_AUGMENT,
    diff_augment,
    rand_brightness,
    rand_contrast,
    rand_cutout,
    rand_saturation,
    rand_translation,
)
from ganjax.augment.ops import Augment, chain

__all__ = [
    "ADA_DEFAULT",
    "ADA_OPS",
    "AUGMENT_KINDS",
    "BRIGHTNESS_STD",
    "CONTRAST_STD",
    "DEFAULT_POLICIES",
    "DIFF_AUGMENT",
    "HUE_MAX",
    "SATURATION_STD",
    "XINT_MAX",
    "AdaParams",
    "AdaState",
    "Augment",
    "Augmentation",
    "ada_init",
    "ada_pipeline",
    "ada_update",
    "chain",
    "diff_augment",
    "rand_brightness",
    "rand_contrast",
    "rand_cutout",
    "rand_saturation",
    "rand_translation",
]
