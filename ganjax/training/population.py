"""Populations: K independent GANs, each with its own seed and hyperparameters, trained by one compiled program.

A population is one :class:`ganjax.training.state.TrainState` whose every
array has a leading member axis of size K; the step runs on every member at
once (:func:`population_step`). Hyperparameters that vary across members are
arrays in the state, so one program serves every member:

- the optimizers' hyperparameters (learning rate, Adam's ``b1``/``b2``, ...) of
  a player whose optimizer is built with ``optax.inject_hyperparams``: they
  live in its optimizer state; :func:`set_optimizer_hparams` sets them;
- the loss-side values of :data:`LOSS_HPARAMS`: the penalty's weight, D's label
  flip probability and one-sided real label, and the instance noise's std; they
  live in ``state.buffers['hparams']`` (:func:`set_loss_hparams`), and
  :func:`gan_step` puts them into the GAN.

Everything else (the loss pair, D's label scheme, the penalty kind and period,
``n_critic``, the models, the batch size) is static and shared by all members.

Example:
  >>> from ganjax.models import mlp
  >>> from ganjax.latent import Latent
  >>> from ganjax.training.gan import create_state
  >>> from ganjax.training.objective import Objective
  >>> gan = GAN(Latent(dim=2), Objective(penalty="r1", penalty_weight=1.0))
  >>> tx = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3, b1=0.5)
  >>> g, d = mlp.Generator(hidden=(8,)), mlp.Discriminator(hidden=(8,))
  >>> make_state = lambda key: create_state(key, gan, g, d, (2,), g_tx=tx, d_tx=tx)
  >>> population = init_population(make_state, jax.vmap(jax.random.key)(jnp.arange(3)))  # seeds 0, 1, 2
  >>> population = set_optimizer_hparams(population, "d", learning_rate=jnp.array([1e-4, 1e-3, 1e-2]))
  >>> population = set_loss_hparams(population, penalty_weight=jnp.array([0.1, 1.0, 10.0]))
  >>> step = population_step(gan_step(gan))
  >>> population, metrics = step(population, {"image": jnp.zeros((3, 16, 2))})  # a real batch per member
  >>> metrics["d_loss"].shape
  (3,)

Member ``k`` trains as the single run of its seed and values does, when that
run builds its optimizer the same way (``optax.inject_hyperparams``; plain
``optax.adam`` rounds its bias correction differently):
``tests/training/test_population.py`` checks it to 1e-5 after 100 steps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from ganjax.training.devices import DATA_AXIS
from ganjax.training.gan import GAN
from ganjax.training.phases import make_step
from ganjax.training.state import TrainState

PyTree = Any
Metrics = dict[str, jax.Array]
Step = Callable[..., tuple[TrainState, Metrics]]

# The buffer of the state that holds the members' loss-side hyperparameters.
HPARAMS = "hparams"
# The loss-side hyperparameters a member may set, each with its range: Objective's penalty weight, flip
# probability and one-sided real label, and InputNoise's std.
LOSS_HPARAMS = {
    "penalty_weight": (0.0, float("inf")),
    "label_flip_prob": (0.0, 1.0),
    "real_label": (0.0, 1.0),
    "noise_std": (0.0, float("inf")),
}
LOWERINGS = ("vmap", "map", "unroll")


def init_population(make_state: Callable[[jax.Array], TrainState], keys: jax.Array) -> TrainState:
    """``make_state(key)`` for every key of ``keys`` ``(K,)``, as one jitted, vmapped call.

    Member ``k`` is the state ``make_state(keys[k])`` a single run would start from.
    """
    return jax.jit(jax.vmap(make_state))(keys)


def size(population: TrainState) -> int:
    """The number of members K."""
    return population.step.shape[0]


def member(population: TrainState, k: int) -> TrainState:
    """Member ``k``'s own state (to sample, evaluate or checkpoint one run)."""
    return jax.tree.map(lambda x: x[k], population)


def _per_member(population: TrainState, name: str, values: jax.typing.ArrayLike, dtype) -> jax.Array:
    """``values``, one per member (a scalar is every member's), as a ``(K,)`` array."""
    values = jnp.asarray(values, dtype)
    if values.shape not in ((), (size(population),)):
        raise ValueError(f"{name}: give one value or one per member ({size(population)}), got shape {values.shape}")
    return jnp.broadcast_to(values, (size(population),))


def set_optimizer_hparams(population: TrainState, player: str, **values: jax.typing.ArrayLike) -> TrainState:
    """The population with ``player``'s optimizer hyperparameters set, one value per member (or one for all).

    The player's optimizer must be built with ``optax.inject_hyperparams``, e.g.
    ``optax.inject_hyperparams(optim.player_optimizer, static_args="name")("adam", 2e-4)``
    (which injects ``learning_rate``, ``b1`` and ``b2``), and the named values
    must be constants: a schedule's value is recomputed at every update.

    Raises:
      KeyError: if the optimizer state holds no hyperparameter of one of the names.
    """
    current = population.players[player].opt_state
    for name, value in values.items():
        old = optax.tree_utils.tree_get(current, name)
        if old is None:
            raise KeyError(
                f"{player!r}'s optimizer state holds no hyperparameter {name!r}: build it with optax.inject_hyperparams"
            )
        values[name] = _per_member(population, name, value, old.dtype)
    players = dict(population.players)
    players[player] = players[player].replace(opt_state=optax.tree_utils.tree_set(current, **values))
    return population.replace(players=players)


def set_loss_hparams(population: TrainState, **values: jax.typing.ArrayLike) -> TrainState:
    """The population with loss-side hyperparameters of :data:`LOSS_HPARAMS`, one value per member (or one for all).

    :func:`gan_step` puts them into the GAN in place of the GAN's own values.

    Raises:
      ValueError: for an unknown name, or a value that is negative or not finite.
    """
    hparams = dict(population.buffers.get(HPARAMS, {}))
    for name, value in values.items():
        if name not in LOSS_HPARAMS:
            raise ValueError(f"unknown loss hyperparameter {name!r}; choose one of {sorted(LOSS_HPARAMS)}")
        hparams[name] = _per_member(population, name, value, jnp.float32)
        given, (low, high) = np.asarray(hparams[name]), LOSS_HPARAMS[name]
        if not np.all(np.isfinite(given) & (given >= low) & (given <= high)):
            raise ValueError(f"{name}: every member's value must be finite and in [{low}, {high}], got {given}")
    return population.replace(buffers={**population.buffers, HPARAMS: hparams})


def member_gan(gan: GAN, hparams: Mapping[str, jax.Array]) -> GAN:
    """``gan`` with a member's loss-side hyperparameters (traced scalars) in place of its own values.

    The GAN's parts leave traced values unchecked (:func:`set_loss_hparams` checked them).

    Raises:
      ValueError: for a value the GAN does not use: a penalty weight without a penalty, a flip probability
        with a loss that takes no labels, a real label without one-sided smoothing.
    """
    objective, noise = gan.objective, gan.noise
    if "penalty_weight" in hparams and objective.penalty == "none":
        raise ValueError("penalty_weight: the GAN has no penalty; set Objective.penalty and a weight")
    if "label_flip_prob" in hparams and not objective.pair.uses_labels:
        raise ValueError(f"label_flip_prob: the GAN's loss {objective.loss!r} takes no labels")
    if "real_label" in hparams and objective.d_labels != "one_sided":
        raise ValueError(f"real_label: the GAN's d_labels is {objective.d_labels!r}, not 'one_sided'")
    objective = dataclasses.replace(
        objective,
        **{name: hparams[name] for name in ("penalty_weight", "label_flip_prob", "real_label") if name in hparams},
    )
    if "noise_std" in hparams:
        noise = dataclasses.replace(noise, std=hparams["noise_std"])
    return dataclasses.replace(gan, objective=objective, noise=noise)


def gan_step(gan: GAN, n_critic: int = 1) -> Step:
    """:func:`ganjax.training.phases.make_step` of ``gan.phases(n_critic)``, with the state's loss hyperparameters.

    ``step(state, batch, axis_name=None)`` runs the phases of :func:`member_gan`
    of the values in ``state.buffers['hparams']`` (:func:`set_loss_hparams`);
    without them it is the plain step of ``gan``.
    """

    def step(state: TrainState, batch: PyTree, axis_name: str | None = None):
        phases = member_gan(gan, state.buffers.get(HPARAMS, {})).phases(n_critic)
        return make_step(phases)(state, batch, axis_name)

    return step


def population_step(
    step: Step, shared_batch: bool = False, mesh: Mesh | None = None, lowering: Literal[LOWERINGS] = "vmap"
) -> Callable[[TrainState, PyTree], tuple[TrainState, Metrics]]:
    """``step(state, batch)`` on every member in one jitted program, the population donated.

    Args:
      step: a single run's step, e.g. :func:`gan_step` (``batch`` may be any
        pytree the step takes, such as a key it draws its data from).
      shared_batch: every member gets the same ``batch``; otherwise ``batch``
        has a leading member axis and member ``k`` gets ``batch[k]``.
      mesh: a mesh with a ``'data'`` axis (:func:`ganjax.training.devices.make_mesh`)
        over which the members are split (K must divide over its devices);
        each device trains its own members and nothing is communicated.
      lowering: how the program runs the members (``bench/population.py`` times them):
        ``'vmap'`` batches every op over the members, one compilation whatever K;
        ``'unroll'`` repeats the single step K times in the program, a compilation
        K times as long (minutes at K = 64); ``'map'`` loops over the members
        inside the program (``lax.map``). On XLA:CPU ``'vmap'`` turns a
        convolution into a grouped convolution, which is slow: for a tiny DCGAN
        at K = 4, ``'unroll'`` is the fastest, ``'vmap'`` about 3 times and
        ``'map'`` about 10 times slower.

    Returns:
      ``(population, batch) -> (population, metrics)``, metrics with a leading member axis.
    """
    if lowering not in LOWERINGS:
        raise ValueError(f"unknown lowering {lowering!r}; choose one of {LOWERINGS}")
    batch_axis = None if shared_batch else 0
    if lowering == "vmap":
        mapped = jax.vmap(lambda state, batch: step(state, batch), in_axes=(0, batch_axis))
    elif lowering == "map" and shared_batch:
        mapped = lambda population, batch: lax.map(lambda state: step(state, batch), population)
    elif lowering == "map":
        mapped = lambda population, batches: lax.map(lambda args: step(*args), (population, batches))
    else:

        def mapped(population: TrainState, batch: PyTree):
            runs = [
                step(member(population, k), batch if shared_batch else jax.tree.map(lambda x, k=k: x[k], batch))
                for k in range(size(population))
            ]
            return jax.tree.map(lambda *values: jnp.stack(values), *runs)

    if mesh is not None and mesh.size > 1:
        # Without check_vma: a lazy phase's lax.cond pairs its per-device metrics with unmarked zeros.
        mapped = jax.shard_map(
            mapped,
            mesh=mesh,
            in_specs=(P(DATA_AXIS), P() if shared_batch else P(DATA_AXIS)),
            out_specs=P(DATA_AXIS),
            check_vma=False,
        )

    def run(population: TrainState, batch: PyTree):
        if mesh is not None and size(population) % mesh.size:
            raise ValueError(f"a population of {size(population)} does not divide evenly over {mesh.size} devices")
        return mapped(population, batch)

    return jax.jit(run, donate_argnums=0)
