"""Standing statistics: BatchNorm statistics recomputed for weights that were never trained with them.

G's running BatchNorm statistics are averages of the batch statistics of G's
own weights, step after step. The moving average of G's weights
(:class:`ganjax.optim.EMA`; Yazıcı et al. 2019, "The Unusual Effectiveness of
Averaging in GAN Training") is another network: its layers see other
activations, so sampling it with G's running statistics normalizes each layer
with the wrong mean and variance. Brock, Donahue and Simonyan (2019, "Large
Scale GAN Training for High Fidelity Natural Image Synthesis", BigGAN) sample
with "standing statistics" instead: run the network forward in training mode
on a few batches of fresh z and use the batch statistics so obtained.
:func:`standing_stats` does that for any flax module whose BatchNorm layers are
``flax.linen.BatchNorm`` (also inside the conditional and self-modulated norms
of :mod:`ganjax.nn.normalization`).

Example::

    stats = standing_stats(g.apply_fn, {"params": ema_params, "batch_stats": g.batch_stats}, key, latent.sample, 64)
    images = g.apply_fn({"params": ema_params, "batch_stats": stats}, z, train=False)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from ganjax import rng
from ganjax.training.devices import DATA_AXIS

PyTree = Any
STANDING_BATCHES = 16
"""Batches whose statistics are averaged. The running statistics that BatchNorm keeps in training (momentum 0.9 in
flax's layers as G uses them, 0.99 by default) weigh the last 10 to 100 batches; 16 batches of the run's batch size
(1,024 samples at 64) put each channel's mean within about 3% of its standard deviation (one standard error) of the
population's, at the cost of 16 forward passes per sampling event, a small share of an evaluation's thousands of
samples."""
STANDING_KEY = "standing_stats"
"""The name under which the batches' key is derived from a sampling event's key (:func:`ganjax.rng.named`)."""


def _batch_statistics(next_fun, args, kwargs, context):
    """Leaves each ``flax.linen.BatchNorm`` call's own batch statistics in its running-statistics variables.

    In training mode flax stores ``momentum * running + (1 - momentum) * batch``; from running statistics of 0
    that is ``(1 - momentum) * batch``, divided back here.
    """
    module = context.module
    if not isinstance(module, nn.BatchNorm) or context.method_name != "__call__":
        return next_fun(*args, **kwargs)
    given = kwargs.get("use_running_average")
    if module.use_running_average if given is None else given:
        return next_fun(*args, **kwargs)  # a layer that normalizes with its running statistics in training too
    for name in ("mean", "var"):
        module.put_variable("batch_stats", name, jnp.zeros_like(module.get_variable("batch_stats", name)))
    out = next_fun(*args, **kwargs)
    for name in ("mean", "var"):
        module.put_variable("batch_stats", name, module.get_variable("batch_stats", name) / (1 - module.momentum))
    return out


def batch_statistics(apply_fn: Callable, variables: Mapping[str, PyTree], *inputs, rngs=None) -> PyTree:
    """The batch statistics of every BatchNorm layer of ``apply_fn(variables, *inputs, train=True)``.

    Each layer's are the mean and (biased) variance over the batch of its input, as training mode normalizes
    with them, not blended into ``variables['batch_stats']`` as training's running statistics are. The call
    runs under a one-element ``vmap`` named :data:`ganjax.training.devices.DATA_AXIS`, so a module with
    cross-replica BatchNorm over that axis computes the statistics of the whole batch here.
    """

    def forward(*mapped):
        with nn.intercept_methods(_batch_statistics):
            _, updates = apply_fn(variables, *mapped, train=True, rngs=rngs, mutable=["batch_stats"])
        return updates["batch_stats"]

    stats = jax.vmap(forward, axis_name=DATA_AXIS)(*(x[None] for x in inputs))
    return jax.tree.map(lambda s: s[0], stats)


def standing_stats(
    apply_fn: Callable,
    variables: Mapping[str, PyTree],
    key: jax.Array,
    draw: Callable[[jax.Array, int], jax.Array],
    batch_size: int,
    num_classes: int = 0,
    num_batches: int = STANDING_BATCHES,
) -> PyTree:
    """BatchNorm statistics recomputed for ``variables['params']``: BigGAN's standing statistics (Brock et al. 2019).

    G runs in training mode on ``num_batches`` batches of ``batch_size`` fresh inputs; each BatchNorm layer's
    statistics are the mean over the batches of its per-batch means and the mean of its per-batch (biased)
    variances. The mean of the batch means is the mean over all ``num_batches * batch_size`` samples. The
    variances are averaged batch by batch, not pooled over all samples, because in training every batch is
    normalized with its own variance: the expected within-batch variance is the one G's later layers were
    trained to see, and the one training's running statistics (a moving average of per-batch variances)
    estimate. Later layers see earlier layers normalized with the batch's statistics, as in training.

    Pure and deterministic: batch ``i`` draws from ``fold_in(named(key, 'standing_stats'), i)`` (z, then the
    classes, then G's noise and dropout keys), so a sampling event passes its own key and its other draws stay
    independent; the batches run one after another (``lax.map``), holding one batch's activations at a time.

    Args:
      apply_fn: G's ``module.apply``, called as ``apply_fn(variables, z[, labels], train=True, rngs=...)``.
      variables: ``{'params': the params to recompute the statistics for, 'batch_stats': any statistics of
        the same structure}``; without ``batch_stats`` (or with none) there is nothing to recompute.
      key: the sampling event's key.
      draw: ``(key, n) -> z`` for ``n`` samples, as the run draws z.
      batch_size: samples per batch (the run's batch size, so each batch's statistics are those of training).
      num_classes: for a conditional G (taking ``(z, labels)``), labels drawn uniformly from this many classes.
      num_batches: batches averaged (:data:`STANDING_BATCHES`).

    Returns:
      The recomputed ``batch_stats``; ``variables['batch_stats']`` itself (``{}`` when missing) for a G
      without BatchNorm.

    Raises:
      ValueError: naming ``batch_size`` or ``num_batches`` when below 1.
    """
    stats = variables.get("batch_stats", {})
    if not stats:
        return stats
    for name, value in (("batch_size", batch_size), ("num_batches", num_batches)):
        if value < 1:
            raise ValueError(f"standing_stats: {name} must be at least 1, got {value}")
    key = rng.named(key, STANDING_KEY)

    def one_batch(i: jax.Array) -> PyTree:
        z_key, y_key, noise_key, dropout_key = jax.random.split(jax.random.fold_in(key, i), 4)
        inputs = (draw(z_key, batch_size),)
        if num_classes:
            inputs += (jax.random.randint(y_key, (batch_size,), 0, num_classes),)
        return batch_statistics(apply_fn, variables, *inputs, rngs={"noise": noise_key, "dropout": dropout_key})

    return jax.tree.map(lambda s: jnp.mean(s, axis=0), lax.map(one_batch, jnp.arange(num_batches)))
