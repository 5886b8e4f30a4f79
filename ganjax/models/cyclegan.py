"""CycleGAN: its ResNet generator and PatchGAN discriminator, and its train phases (Zhu et al. 2017).

Zhu, Park, Isola and Efros 2017, "Unpaired Image-to-Image Translation using
Cycle-Consistent Adversarial Networks".

The players. G (after Johnson et al. 2016): a reflect-padded 7x7 conv,
``n_down`` stride-2 convs, ``n_blocks`` residual blocks, ``n_down`` stride-2
transposed convs and a 7x7 conv to a tanh image; instance norm and ReLU after
every conv but the last. D (the 70x70 PatchGAN of Isola et al. 2017 at 256
pixels): 4x4 convs, stride 2 then stride 1, LeakyReLU(0.2), instance norm after
all but the first, ending in one logit per patch. Weights ~ N(0, 0.02) as in the
reference code. The convs are :class:`ganjax.nn.Conv` and
:class:`ganjax.nn.ConvTranspose` (fast gradients).

The step: four players of :class:`ganjax.training.state.TrainState`, ``'g_ab'``
(A -> B), ``'g_ba'`` (B -> A), ``'d_a'`` and ``'d_b'``, and two pools of past
fakes in ``state.buffers``, ``'pool_a'`` (fakes of domain A, from ``g_ba``) and
``'pool_b'`` (:class:`ganjax.replay.ReplayBuffer`, 50 images, share 0.5, after
Shrivastava et al. 2017). :meth:`CycleGAN.phases` gives three phases for
:func:`ganjax.training.phases.make_step`:

* ``'g'`` over both generators, on
  ``L_G = LS(D_b(G_ab(a))) + LS(D_a(G_ba(b)))
  + lambda_cyc (|G_ba(G_ab(a)) - a|_1 + |G_ab(G_ba(b)) - b|_1)
  + lambda_id (|G_ba(a) - a|_1 + |G_ab(b) - b|_1)``
  (least-squares adversarial terms, lambda_cyc 10, lambda_id 0.5 * lambda_cyc);
  it shares its fakes ``G_ab(a)``, ``G_ba(b)``, made before its update;
* ``'d_a'`` and ``'d_b'``: each D on its real images against those fakes, half
  of them swapped for pooled ones, with the least-squares D loss; each pushes
  the fresh fakes into its pool.

:func:`ganjax.optim.linear_decay` is the paper's learning rate: constant for the
first half, then linearly to 0. Batches carry both domains: ``{'a': ..., 'b': ...}``.

Example::

    model = CycleGAN(cycle_weight=10.0, identity_weight=5.0)
    state = create_state(key, ResnetGenerator(), PatchDiscriminator(), (28, 28, 1), optax.adam(2e-4, b1=0.5))
    step = jax.jit(make_step(model.phases()), donate_argnums=0)
    state, metrics = step(state, {"a": images_a, "b": images_b})
    fake_b = translate(state, images_a, "ab")
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax import lax

from ganjax import losses, rng
from ganjax.nn.conv import Conv, ConvTranspose
from ganjax.replay import ReplayBuffer, mix_and_push
from ganjax.training.phases import Phase, PhaseInputs, PhaseOutput
from ganjax.training.state import Player, TrainState

weight_init = nn.initializers.normal(0.02)


def _reflect_pad(x: jax.Array, pad: int) -> jax.Array:
    return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")


def _norm(dtype: Any) -> nn.InstanceNorm:
    """Instance norm with output in ``dtype`` and float32 statistics."""
    return nn.InstanceNorm(epsilon=1e-5, dtype=dtype)


class ResidualBlock(nn.Module):
    """``x + IN(conv3(pad(ReLU(IN(conv3(pad(x)))))))`` with reflect padding; norms output ``dtype``."""

    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        features = x.shape[-1]
        conv = Conv(features, (3, 3), padding="VALID", kernel_init=weight_init)
        h = nn.relu(_norm(self.dtype)(conv(_reflect_pad(x, 1))))
        h = _norm(self.dtype)(Conv(features, (3, 3), padding="VALID", kernel_init=weight_init)(_reflect_pad(h, 1)))
        return x + h


class ResnetGenerator(nn.Module):
    """Images ``(N, H, W, C)`` in [-1, 1] -> images of the other domain ``(N, H, W, channels)``.

    Attributes:
      channels: output channels.
      width: channels of the first conv; each downsampling doubles them.
      n_blocks: residual blocks (9 at 256 pixels, 6 at 128 in the paper).
      n_down: stride-2 downsamplings (and as many upsamplings); H and W must divide by ``2^n_down``.
      dtype: the computation dtype (:mod:`ganjax.nn.precision`); params stay float32, images are float32.
    """

    channels: int = 1
    width: int = 32
    n_blocks: int = 6
    n_down: int = 2
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        del train  # instance norm has no running statistics
        if x.ndim != 4 or x.shape[1] % 2**self.n_down or x.shape[2] % 2**self.n_down:
            raise ValueError(f"ResnetGenerator: NHWC images with sides divisible by {2**self.n_down}, got {x.shape}")
        norm = lambda: _norm(self.dtype)
        h = Conv(self.width, (7, 7), padding="VALID", kernel_init=weight_init)(_reflect_pad(x.astype(self.dtype), 3))
        h = nn.relu(norm()(h))
        for i in range(self.n_down):
            h = nn.relu(norm()(Conv(self.width * 2 ** (i + 1), (3, 3), strides=2, kernel_init=weight_init)(h)))
        for _ in range(self.n_blocks):
            h = ResidualBlock(self.dtype)(h)
        for i in reversed(range(self.n_down)):
            h = nn.relu(norm()(ConvTranspose(self.width * 2**i, (3, 3), strides=2, kernel_init=weight_init)(h)))
        h = Conv(self.channels, (7, 7), padding="VALID", kernel_init=weight_init)(_reflect_pad(h, 3))
        return jnp.tanh(h).astype(jnp.float32)


class PatchDiscriminator(nn.Module):
    """Images ``(N, H, W, C)`` -> patch logits ``(N, H / 2^n_layers, W / 2^n_layers)`` (rounded up).

    Attributes:
      width: channels of the first conv; each later conv doubles them, up to ``8 * width``.
      n_layers: stride-2 convs (3 in the paper's 70x70 PatchGAN).
      dtype: the computation dtype (:mod:`ganjax.nn.precision`); params stay float32, logits are float32.
    """

    width: int = 32
    n_layers: int = 3
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        del train
        h = nn.leaky_relu(Conv(self.width, (4, 4), strides=2, kernel_init=weight_init)(x.astype(self.dtype)), 0.2)
        for i in range(1, self.n_layers + 1):
            stride = 2 if i < self.n_layers else 1
            conv = Conv(self.width * min(2**i, 8), (4, 4), strides=stride, use_bias=False, kernel_init=weight_init)
            h = nn.leaky_relu(_norm(self.dtype)(conv(h)), 0.2)
        return Conv(1, (4, 4), kernel_init=weight_init)(h)[..., 0].astype(jnp.float32)


DOMAINS = ("a", "b")
OTHER = {"a": "b", "b": "a"}


def _l1(x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean(jnp.abs(x - y))


def _train_mode(player: Player, params) -> Callable[[jax.Array], jax.Array]:
    """``player`` with ``params`` as a function of its images, in train mode (its statistics left as they are)."""
    return lambda x: player(params, x, train=True)[0]


@dataclasses.dataclass(frozen=True)
class CycleGAN:
    """The weights of the CycleGAN step; static under jit.

    Attributes:
      cycle_weight: lambda_cyc, the weight of the cycle-consistency L1 losses.
      identity_weight: lambda_id, the weight of the identity L1 losses (0.5 * lambda_cyc in the paper; 0: none).
    """

    cycle_weight: float = 10.0
    identity_weight: float = 5.0

    def __post_init__(self):
        if self.cycle_weight < 0 or self.identity_weight < 0:
            raise ValueError(
                f"CycleGAN: the weights must not be negative, got {self.cycle_weight}, {self.identity_weight}"
            )

    def g_loss(self, params, inputs: PhaseInputs) -> tuple[jax.Array, PhaseOutput]:
        """``L_G`` of both generators' params; shares the fakes ``fake_b = G_ab(a)`` and ``fake_a = G_ba(b)``.

        The generators (instance norm) keep no running statistics; the Ds score
        the fakes with their current params, which this phase does not update.
        """
        players = inputs.state.players
        g_ab, g_ba = (_train_mode(players[name], params[name]) for name in ("g_ab", "g_ba"))
        d_a, d_b = (_train_mode(players[name], players[name].params) for name in ("d_a", "d_b"))
        a, b = inputs.batch["a"], inputs.batch["b"]
        fake_b, fake_a = g_ab(a), g_ba(b)
        parts = {
            "g_loss": losses.least_squares_g_loss(d_b(fake_b)) + losses.least_squares_g_loss(d_a(fake_a)),
            "cycle_loss": _l1(g_ba(fake_b), a) + _l1(g_ab(fake_a), b),
        }
        total = parts["g_loss"] + self.cycle_weight * parts["cycle_loss"]
        if self.identity_weight:
            parts["identity_loss"] = _l1(g_ba(a), a) + _l1(g_ab(b), b)
            total = total + self.identity_weight * parts["identity_loss"]
        shared = {"fake_a": lax.stop_gradient(fake_a), "fake_b": lax.stop_gradient(fake_b)}
        return total, PhaseOutput(metrics=parts, shared=shared)

    def d_loss(self, domain: str, params, inputs: PhaseInputs) -> tuple[jax.Array, PhaseOutput]:
        """``D_domain``'s least-squares loss on its reals against the shared fakes, ``pool.share`` of them pooled.

        Returns the pool with the fresh fakes pushed; the second D's phase also
        reports ``d_loss``, the mean of both Ds' losses (the first one's is shared).
        """
        name, pool_name = f"d_{domain}", f"pool_{domain}"
        d = inputs.state.players[name]
        fake, pool = mix_and_push(
            inputs.state.buffers[pool_name],
            rng.named(inputs.key, pool_name),
            inputs.shared[f"fake_{domain}"],
            inputs.axis_name,
        )
        real_logits, stats = d(params[name], inputs.batch[domain], train=True)
        fake_logits, stats = d.replace(batch_stats=stats)(params[name], fake, train=True)
        loss = losses.least_squares_d_loss(real_logits, fake_logits)
        metrics = {f"{name}_loss": loss}
        other = inputs.shared.get(f"d_{OTHER[domain]}_loss")
        if other is not None:
            metrics["d_loss"] = 0.5 * (other + loss)
        return loss, PhaseOutput(
            metrics=metrics, batch_stats={name: stats}, buffers={pool_name: pool}, shared={f"{name}_loss": loss}
        )

    def phases(self) -> tuple[Phase, ...]:
        """Both generators' update, then ``D_a``'s and ``D_b``'s on the fakes the generators made before it.

        Metrics: ``g_loss`` (the adversarial part), ``cycle_loss``,
        ``identity_loss`` (with a positive weight), ``g_ab_grad_norm``,
        ``g_ba_grad_norm``; ``d_a_loss``, ``d_b_loss``, ``d_loss`` (their mean),
        ``d_a_grad_norm``, ``d_b_grad_norm``.
        """
        return (
            Phase("g", ("g_ab", "g_ba"), self.g_loss),
            Phase("d_a", ("d_a",), functools.partial(self.d_loss, "a")),
            Phase("d_b", ("d_b",), functools.partial(self.d_loss, "b")),
        )


def create_state(
    key: jax.Array,
    generator: nn.Module,
    discriminator: nn.Module,
    image_shape: tuple[int, ...],
    tx: optax.GradientTransformation,
    pool_size: int = 50,
    pool_share: float = 0.5,
) -> TrainState:
    """Both generators (one architecture) and both discriminators, each with its own copy of ``tx``'s state.

    Args:
      key: seeds the four inits and every later step.
      generator: maps a batch of either domain to the other (same image shape).
      discriminator: maps images to patch logits.
      image_shape: ``(H, W, C)`` of both domains.
      tx: every player's optimizer (Adam(2e-4, b1=0.5) with :func:`ganjax.optim.linear_decay` in the paper).
      pool_size: images in each pool of past fakes.
      pool_share: share of each D's fake batch drawn from its pool (0: no pooling).
    """
    keys = jax.random.split(key, 5)
    example = jnp.zeros((2, *image_shape))
    players = {
        name: Player.create(module, tx, k, example)
        for name, module, k in zip(("g_ab", "g_ba", "d_a", "d_b"), (generator,) * 2 + (discriminator,) * 2, keys[:4])
    }
    # Two buffers, not one shared: the state is donated, and each pool is pushed on its own.
    pools = {f"pool_{domain}": ReplayBuffer.create(pool_size, image_shape, share=pool_share) for domain in DOMAINS}
    return TrainState.create(keys[4], players, buffers=pools)


def translate(state: TrainState, images: jax.Array, direction: str) -> jax.Array:
    """``images`` through ``G_ab`` (``direction='ab'``) or ``G_ba`` (``'ba'``), in evaluation mode."""
    if direction not in ("ab", "ba"):
        raise ValueError(f"translate: direction must be 'ab' or 'ba', got {direction!r}")
    g = state.players[f"g_{direction}"]
    return g(g.params, images, train=False)[0]
