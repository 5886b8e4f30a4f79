"""The phases of an (optionally class-conditional) GAN: D's update, its lazy penalty, G's update.

A :class:`GAN` is five small values, one per concern, each beside its trick:
z's :class:`ganjax.latent.Latent` distribution, the
:class:`ganjax.training.objective.Objective` (loss pair, D's labels, penalty
and how often it runs, G's target, packing: :mod:`ganjax.packing`), the
:class:`ganjax.training.objective.Conditioning` on classes, the
:class:`ganjax.noise.InputNoise` on D's inputs and the
:class:`ganjax.augment.Augmentation` of D's inputs (DiffAugment or ADA).
:meth:`GAN.phases` turns them into
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
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax import lax

from ganjax import labels, losses, penalties, rng
from ganjax.augment import Augmentation, ada_init
from ganjax.latent import Latent
from ganjax.noise import InputNoise
from ganjax.packing import pack, unpack
from ganjax.replay import ReplayBuffer, mix_and_push
from ganjax.training import standing
from ganjax.training.objective import Conditioning, Objective
from ganjax.training.phases import Phase, PhaseInputs, PhaseOutput
from ganjax.training.state import Player, TrainState
from ganjax.validate import refuse, traced

Metrics = dict[str, jax.Array]
PyTree = Any
# The name under which D's phase shares G's linearised forward pass with G's phase.
G_FORWARD = "g_forward"


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

    # Each part is a frozen dataclass, so one default instance is safely shared.
    latent: Latent = Latent()  # noqa: RUF009
    objective: Objective = Objective()  # noqa: RUF009
    conditioning: Conditioning = Conditioning()  # noqa: RUF009
    noise: InputNoise = InputNoise()  # noqa: RUF009
    augment: Augmentation = Augmentation()  # noqa: RUF009

    def __post_init__(self):
        if self.objective.g_objective == "feature_matching" and self.conditioning.aux_class_weight:
            refuse(self.objective, "g_objective", "feature matching has no AC-GAN class loss for G")
        if self.objective.packing > 1 and self.conditioning.num_classes:
            refuse(
                self.objective,
                "packing",
                f"is {self.objective.packing} with num_classes {self.conditioning.num_classes}: "
                "a pack of samples of different classes has no single class for D to condition on or predict",
            )

    def packed(self, images: jax.Array) -> jax.Array:
        """D's view of a batch: :func:`pack` by ``objective.packing``; refuses a batch it does not divide."""
        if images.shape[0] % self.objective.packing:
            refuse(
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
        if traced(self.conditioning.class_entropy_weight) or self.conditioning.class_entropy_weight:
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
        batch replays ``replay_share`` (ganhacks #8, experience replay).
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
        buffers["ada"] = ada_init(gan.augment.initial_p)
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
