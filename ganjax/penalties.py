"""Gradient penalties on D and Wasserstein weight clipping.

Every penalty has the signature ``(d_fn, real, fake, key) -> scalar``, where
``d_fn`` maps a batch of images to D's logits (a closure over D's params), and
is added to D's loss times its weight; a penalty that differentiates D through
D's views of both batches takes one ``d_fn`` per view, ``(d_real, d_fake, real,
fake, key)`` (:func:`r1_r2`, :class:`Penalty`). Gradients are taken per example through
``sum(d_fn(x))``, so ``d_fn`` must treat examples independently (no BatchNorm
in training mode: use layer, instance or no normalization in D).

Convention for R1/R2: they return ``E||grad D||^2`` with no factor, so the
weight is ``gamma / 2`` in the notation of Mescheder et al. 2018.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

Array = jax.Array
DFn = Callable[[Array], Array]


def _per_example(shape: tuple[int, ...], values: Array) -> Array:
    """``values`` of shape ``(B,)`` reshaped to broadcast over a batch of ``shape``."""
    return values.reshape((shape[0],) + (1,) * (len(shape) - 1))


def _grad_sq_norms(d_fn: DFn, x: Array) -> Array:
    """``||grad_x D(x_i)||^2`` for every example ``i``: shape ``(B,)``."""
    grads = jax.grad(lambda x: jnp.sum(d_fn(x)))(x)
    return jnp.sum(jnp.square(grads).reshape(x.shape[0], -1), axis=1)


def _grad_norms(d_fn: DFn, x: Array) -> Array:
    """``||grad_x D(x_i)||`` per example, with a tiny floor so its own gradient stays finite at 0."""
    return jnp.sqrt(_grad_sq_norms(d_fn, x) + 1e-12)


def _interpolates(key: Array, a: Array, b: Array) -> Array:
    """``a + u (b - a)`` with one ``u ~ U[0, 1]`` per example."""
    u = _per_example(a.shape, jax.random.uniform(key, (a.shape[0],), a.dtype))
    return a + u * (b - a)


def wgan_gp(d_fn: DFn, real: Array, fake: Array, key: Array) -> Array:
    """Two-sided gradient penalty ``E[(||grad D(x_hat)|| - 1)^2]`` on random interpolates of real and fake.

    Weight 10 in the paper.

    References:
      Gulrajani et al. 2017, Improved Training of Wasserstein GANs.
    """
    return jnp.mean(jnp.square(_grad_norms(d_fn, _interpolates(key, real, fake)) - 1.0))


def one_sided_gp(d_fn: DFn, real: Array, fake: Array, key: Array) -> Array:
    """One-sided gradient penalty ``E[max(0, ||grad D(x_hat)|| - 1)^2]``: penalises only norms above 1.

    References:
      Gulrajani et al. 2017, appendix; Petzka et al. 2018, On the
      regularization of Wasserstein GANs.
    """
    return jnp.mean(jnp.square(jax.nn.relu(_grad_norms(d_fn, _interpolates(key, real, fake)) - 1.0)))


def dragan(d_fn: DFn, real: Array, fake: Array, key: Array, scale: float = 0.5) -> Array:
    """DRAGAN: ``E[(||grad D(x_hat)|| - 1)^2]`` on perturbed reals only (``fake`` is unused).

    ``x_hat = x + u * scale * std(x) * e`` with ``e ~ U[0, 1]`` elementwise and
    ``u ~ U[0, 1]`` per example, as in the authors' code. Weight 10 in the paper.

    References:
      Kodali et al. 2017, On Convergence and Stability of GANs.
    """
    del fake
    noise_key, mix_key = jax.random.split(key)
    perturbed = real + scale * jnp.std(real) * jax.random.uniform(noise_key, real.shape, real.dtype)
    return jnp.mean(jnp.square(_grad_norms(d_fn, _interpolates(mix_key, real, perturbed)) - 1.0))


def r1(d_fn: DFn, real: Array, fake: Array, key: Array) -> Array:
    """Zero-centred penalty on the reals: ``E||grad D(x)||^2`` (weight ``gamma / 2``).

    References:
      Mescheder et al. 2018, Which Training Methods for GANs do actually
      Converge?, eq. 9.
    """
    del fake, key
    return jnp.mean(_grad_sq_norms(d_fn, real))


def r2(d_fn: DFn, real: Array, fake: Array, key: Array) -> Array:
    """:func:`r1` on the fakes: ``E||grad D(G(z))||^2`` (Mescheder et al. 2018, eq. 10).

    With R1 it is the zero-centred pair of R3GAN (Huang et al. 2024, The GAN is dead; long live the GAN!).
    """
    return r1(d_fn, fake, real, key)


def r1_r2(d_real: DFn, d_fake: DFn, real: Array, fake: Array, key: Array) -> Array:
    """R1 on the reals plus R2 on the fakes, each through D as it sees its batch: ``R1 + R2``.

    ``E||grad D_real(x)||^2 + E||grad D_fake(G(z))||^2``, where ``d_real`` and
    ``d_fake`` are D's views of each batch (each with its own augmentation draw
    and class labels; the same function without either). Weight ``gamma / 2``
    gives R3GAN's ``(gamma / 2)(R1 + R2)`` (gamma 0.05 annealed to 0.005 on CIFAR-10).

    Example:
      >>> d_real = lambda x: jnp.sum(x, axis=1)  # input gradient (1, 1): ||grad||^2 = 2
      >>> d_fake = lambda x: 2 * jnp.sum(x, axis=1)  # (2, 2): 8
      >>> float(r1_r2(d_real, d_fake, jnp.zeros((4, 2)), jnp.ones((4, 2)), None))
      10.0

    References:
      Huang, Gokaslan, Kuleshov and Tompkin 2024, The GAN is dead; long live
      the GAN! A Modern GAN Baseline (with the relativistic loss of
      :func:`ganjax.losses.relativistic_d_loss`); Mescheder et al. 2018, eqs. 9 and 10.
    """
    return r1(d_real, real, fake, key) + r2(d_fake, real, fake, key)


class Penalty(NamedTuple):
    """A named penalty and D's views of the batches it differentiates D through.

    Attributes:
      fn: ``(*d_fns, real, fake, key) -> scalar``, one ``d_fn`` per entry of ``views``.
      views: for each ``d_fn``, the batch (``'real'`` or ``'fake'``) whose view of D
        it is: a conditional D scores its inputs with that batch's labels, and an
        augmented D sees them through that batch's draw. Interpolates of both
        batches (WGAN-GP) are seen as the reals are.
    """

    fn: Callable[..., Array]
    views: tuple[str, ...]


PENALTIES: dict[str, Penalty] = {
    "wgan_gp": Penalty(wgan_gp, views=("real",)),
    "one_sided_gp": Penalty(one_sided_gp, views=("real",)),
    "dragan": Penalty(dragan, views=("real",)),
    "r1": Penalty(r1, views=("real",)),
    "r2": Penalty(r2, views=("fake",)),
    "r1_r2": Penalty(r1_r2, views=("real", "fake")),
}


def clip_weights(params, clip: float):
    """Every weight clipped to ``[-clip, clip]``: the projection of the original WGAN.

    References:
      Arjovsky et al. 2017, Wasserstein GAN, algorithm 1 (c = 0.01).
    """
    return jax.tree.map(lambda w: jnp.clip(w, -clip, clip), params)


def weight_clipping(clip: float) -> optax.GradientTransformation:
    """An optax transform, last in D's chain, whose updates land every weight in ``[-clip, clip]``.

    Turns an update ``u`` into ``clip_weights(p + u) - p``, so
    ``optax.apply_updates`` gives the clipped params.

    Example:
      >>> d_tx = optax.chain(optax.rmsprop(5e-5), weight_clipping(0.01))
      >>> params = {"w": jnp.array([0.005, 0.5])}
      >>> updates, _ = d_tx.update({"w": jnp.array([-1.0, -1.0])}, d_tx.init(params), params)
      >>> float(optax.apply_updates(params, updates)["w"][1])  # 0.5 lands on the clip
      0.009999990463256836

    References:
      Arjovsky et al. 2017, Wasserstein GAN, algorithm 1.
    """
    if clip <= 0:
        raise ValueError(f"weight_clipping: clip must be positive, got {clip}")

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("weight_clipping needs params: call tx.update(grads, state, params)")
        new_params = clip_weights(optax.apply_updates(params, updates), clip)
        return jax.tree.map(jnp.subtract, new_params, params), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)
