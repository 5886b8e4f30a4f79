"""Feature matching as G's objective (Salimans et al. 2016, Improved Techniques for Training GANs; seed 003 •9).

G minimises ``||E f(x) - E f(G(z))||^2`` over a hidden layer ``f`` of D
(:func:`ganjax.losses.feature_matching_g_loss`) instead of fooling D's output.
D must sow that layer as ``intermediates/features`` (``self.sow('intermediates',
'features', h)``), as :class:`ganjax.models.conditional.Discriminator` does; D's
own step is unchanged (:func:`ganjax.train.d_step`).

D's features are taken in train mode, as in G's usual step; a D with BatchNorm
would normalise each batch's feature means away, so give it a norm without
batch statistics (``norm='layer'``, ``'spectral'`` or ``'none'``).
"""

from __future__ import annotations

from typing import Any

import jax
import optax

from ganjax import losses, train
from ganjax.models.conditional import FEATURES
from ganjax.train import GANState, Player, StepConfig

PyTree = Any


def apply_with_features(player: Player, params: PyTree, *inputs, train: bool = True) -> tuple[Any, jax.Array, PyTree]:
    """The player's output, the features it sows, and its updated BatchNorm statistics.

    Raises:
      ValueError: if the module sows no ``intermediates/features``.
    """
    variables = {"params": params, **({"batch_stats": player.batch_stats} if player.batch_stats else {})}
    mutable = ["intermediates", "batch_stats"] if train and player.batch_stats else ["intermediates"]
    out, updates = player.apply_fn(variables, *inputs, train=train, mutable=mutable)
    sown = updates.get("intermediates", {}).get(FEATURES)
    if sown is None:
        raise ValueError(f"D sows no 'intermediates/{FEATURES}': call self.sow('intermediates', '{FEATURES}', h) "
                         "on its hidden layer (see ganjax.models.conditional.Discriminator)")
    return out, sown[0], updates.get("batch_stats", player.batch_stats)


def _d_features(d: Player, images: jax.Array, y: jax.Array | None, config: StepConfig) -> jax.Array:
    inputs = (images, y) if config.d_takes_labels else (images,)
    return apply_with_features(d, d.params, *inputs)[1]


def g_step(state: GANState, batch: dict[str, jax.Array], config: StepConfig) -> tuple[GANState, dict[str, jax.Array]]:
    """Updates G once to match D's mean features on ``batch`` with those of a fresh fake batch of the same size.

    Draws the same z as :func:`ganjax.train.g_step` at the same step. Returns
    the new state and ``{'g_loss', 'g_grad_norm'}`` (``g_loss`` is the feature-matching loss).
    """
    keys = train.step_keys(state, "fake")
    real, real_y = train.real_inputs(batch, config)
    fake, fake_y, g_vjp, g_stats = train.linearized_fakes(state.g, keys["fake"], real.shape[0], config)
    real_features = jax.lax.stop_gradient(_d_features(state.d, real, real_y, config))
    # Each device matches its own batch's means; the gradients are averaged over devices below.
    loss_fn = lambda images: losses.feature_matching_g_loss(_d_features(state.d, images, fake_y, config),
                                                            real_features)
    g_loss, fake_grad = jax.value_and_grad(loss_fn)(fake)
    (grads,) = g_vjp(fake_grad)
    grads, g_stats = train.mean_over_devices((grads, g_stats), config.axis_name)
    g = state.g.apply_gradients(grads, g_stats)
    g_ema = None if state.g_ema is None else state.g_ema.update(g.params)
    metrics = {"g_loss": g_loss, "g_grad_norm": optax.tree.norm(grads)}
    return state.replace(step=state.step + 1, g=g, g_ema=g_ema), train.mean_over_devices(metrics, config.axis_name)


def train_step(state: GANState, batch: dict[str, jax.Array], config: StepConfig) -> tuple[GANState, dict]:
    """One D update (:func:`ganjax.train.d_step`), then one feature-matching G update, as one step.

    Both updates draw from this step's keys, so G is trained on the latents D
    just saw as fakes. Returns the new state and D's and G's metrics together.
    """
    if config.n_critic != 1:
        raise ValueError(f"feature_matching.train_step: n_critic={config.n_critic}; use train.d_step for more D steps")
    after_d, d_metrics = train.d_step(state, batch, config)
    state, g_metrics = g_step(after_d.replace(step=state.step), batch, config)
    return state, {**d_metrics, **g_metrics}
