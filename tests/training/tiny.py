"""Tiny players on 4-dimensional data, and the draws a GAN step makes, recomputed by hand.

The helpers recompute what :mod:`ganjax.training.gan` draws at ``state.step``
from the step's named keys (``'fake'`` for G's z and labels, ``'d'`` for D's
targets and input noise, ``'g'`` for G's view of the noise), so tests can
compare the step's metrics and updates with losses written out by hand.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ganjax import latent, rng
from ganjax.latent import Latent
from ganjax.training.gan import GAN, create_state
from ganjax.training.objective import Objective
from ganjax.training.phases import make_step
from ganjax.training.standing import STANDING_BATCHES

LATENT = 3
CLASSES = 3
REAL = {"image": jax.random.uniform(jax.random.key(9), (8, 4), minval=-1, maxval=1)}
LABELLED = {**REAL, "label": jnp.arange(8) % CLASSES}


class TinyG(nn.Module):
    """z -> Dense -> BatchNorm -> ReLU -> Dense -> tanh: 4 values (no bias before BatchNorm, which removes it)."""

    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, z, train=True):
        x = nn.BatchNorm(use_running_average=not train, axis_name=self.bn_axis_name)(nn.Dense(12, use_bias=False)(z))
        return jnp.tanh(nn.Dense(4)(nn.relu(x)))


class LinearD(nn.Module):
    """One logit, linear in the input (so every gradient penalty is a function of its weights alone)."""

    @nn.compact
    def __call__(self, x, train=True):
        return nn.Dense(1)(x)[:, 0]


class SowingD(nn.Module):
    """A D with one hidden layer that it sows for feature matching."""

    @nn.compact
    def __call__(self, x, train=True):
        h = nn.tanh(nn.Dense(6)(x))
        self.sow("intermediates", "features", h)
        return nn.Dense(1)(h)[:, 0]


class ConditionalG(nn.Module):
    @nn.compact
    def __call__(self, z, y, train=True):
        return jnp.tanh(nn.Dense(4)(jnp.concatenate([z, jax.nn.one_hot(y, CLASSES)], -1)))


class ConditionalBatchNormG(nn.Module):
    """(z, one-hot class) -> Dense -> BatchNorm -> ReLU -> Dense -> tanh: 4 values."""

    @nn.compact
    def __call__(self, z, y, train=True):
        h = nn.Dense(12, use_bias=False)(jnp.concatenate([z, jax.nn.one_hot(y, CLASSES)], -1))
        return jnp.tanh(nn.Dense(4)(nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(h))))


class ConditionalD(nn.Module):
    @nn.compact
    def __call__(self, x, y, train=True):
        return nn.Dense(1)(jnp.concatenate([x, jax.nn.one_hot(y, CLASSES)], -1))[:, 0]


class TanhConditionalD(nn.Module):
    """A conditional D with one hidden layer (nonlinear, so a gradient penalty depends on the labels)."""

    @nn.compact
    def __call__(self, x, y, train=True):
        return nn.Dense(1)(jnp.tanh(nn.Dense(6)(jnp.concatenate([x, jax.nn.one_hot(y, CLASSES)], -1))))[:, 0]


class AuxD(nn.Module):
    """An AC-GAN D: a logit and class logits."""

    @nn.compact
    def __call__(self, x, train=True):
        return nn.Dense(1)(x)[:, 0], nn.Dense(CLASSES)(x)


def standing_by_hand(params, key, draw, batch_size, num_batches=STANDING_BATCHES, num_classes=0):
    """The standing statistics of TinyG's (or ConditionalBatchNormG's) ``params``, written out.

    Batch ``i`` is drawn as :func:`ganjax.training.standing.standing_stats` documents it; the statistics are
    the mean over the batches of the first Dense layer's batch means and of its (biased) batch variances.
    """
    key = rng.named(key, "standing_stats")
    means, variances = [], []
    for i in range(num_batches):
        z_key, y_key, _, _ = jax.random.split(jax.random.fold_in(key, i), 4)
        x = draw(z_key, batch_size)
        if num_classes:
            x = jnp.concatenate(
                [x, jax.nn.one_hot(jax.random.randint(y_key, (batch_size,), 0, num_classes), num_classes)], -1
            )
        h = x @ params["Dense_0"]["kernel"]
        means.append(h.mean(0))
        variances.append(((h - h.mean(0)) ** 2).mean(0))
    return {"BatchNorm_0": {"mean": jnp.mean(jnp.stack(means), 0), "var": jnp.mean(jnp.stack(variances), 0)}}


def with_ema_apart(state):
    """``state`` whose moving average of G is far from G's params (as after many steps of a moving G)."""
    apart = jax.tree.map(lambda p: 1.5 * p + 0.2, state.players["g"].params)
    return state.replace(ema={"g": state.ema["g"].replace(params=apart)})


def tiny_gan(objective=None, **parts) -> GAN:
    """A GAN on :data:`LATENT`-dimensional z (DCGAN's objective unless ``objective``)."""
    return GAN(parts.pop("latent", Latent(dim=LATENT)), objective or Objective(), **parts)


def make_state(gan=None, g=None, d=None, tx=None, seed=0, **options):
    """A state of ``g`` (TinyG) and ``d`` (LinearD); ``tx`` for both players unless ``g_tx``/``d_tx`` are given."""
    options = {"g_tx": tx, "d_tx": tx, **options}
    return create_state(jax.random.key(seed), gan or tiny_gan(), g or TinyG(), d or LinearD(), (4,), **options)


def gan_step(gan, n_critic=1, only=None):
    """The GAN's step; ``only``: the name(s) of the phases to keep (all by default)."""
    only = (only,) if isinstance(only, str) else only
    return make_step(tuple(p for p in gan.phases(n_critic) if only is None or p.name in only))


def jit_step(gan, n_critic=1, only=None):
    """:func:`gan_step` jitted, the state donated."""
    return jax.jit(gan_step(gan, n_critic, only), donate_argnums=0)


def run(step, state, batch=REAL):
    """One step on a copy of ``state`` (the step donates its input)."""
    return step(jax.tree.map(jnp.copy, state), batch)


def step_key(state):
    return rng.step_key(state.key, state.step)


def d_keys(state):
    """D's phase keys at this step: ``(labels, real noise, fake noise, penalty)``."""
    return jax.random.split(rng.named(step_key(state), "d"), 4)


def g_keys(state):
    """G's phase noise keys at this step: ``(real noise, fake noise)``."""
    return jax.random.split(rng.named(step_key(state), "g"))


def step_z(state, n=8, distribution="gaussian", dim=LATENT):
    """The z (and fake labels, for a conditional G) that the step draws."""
    z_key, y_key, _ = jax.random.split(rng.named(step_key(state), "fake"), 3)
    return latent.LATENTS[distribution](z_key, (n, dim)), jax.random.randint(y_key, (n,), 0, CLASSES)


def step_fake(state, n=8, g_params=None, conditional=False, **z_options):
    """G's fake batch at this step, in train mode, with ``g_params`` (default: G's own); and its labels."""
    g = state.players["g"]
    z, y = step_z(state, n, **z_options)
    inputs = (z, y) if conditional else (z,)
    return g(g.params if g_params is None else g_params, *inputs, train=True)[0], (y if conditional else None)


def d_apply(state, params, x, *y):
    """D on ``x`` (and labels ``y``) with ``params``."""
    return state.players["d"](params, x, *y, train=True)[0]


def sgd_step(params, loss_fn, lr=1.0):
    """``params - lr * grad(loss_fn)(params)``: what an SGD update of the loss gives."""
    return jax.tree.map(lambda p, g: p - lr * g, params, jax.grad(loss_fn)(params))


def adam_count(opt_state) -> int:
    """How many updates an Adam state has counted."""
    return int(optax.tree_utils.tree_get(opt_state, "count"))
