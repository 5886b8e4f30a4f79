"""ganjax.training.phases: when phases run, what each update sees, and what flows between phases.

Most tests use two toy players ``a`` and ``b``, each one learned vector ``w``
(starting at ones) updated by SGD with learning rate 1, so a player's new
``w`` is ``1 - grad``; the losses are linear where a test reads gradients.
"""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ganjax import rng
from ganjax.replay import ReplayBuffer
from ganjax.training.phases import Phase, PhaseInputs, PhaseOutput, batches_per_step, make_step, update_players
from ganjax.training.state import Player, TrainState
from tests.training.tiny import REAL, gan_step, make_state, tiny_gan

ONES = jnp.ones(2)


class Vector(nn.Module):
    """One learned vector ``w`` of 2 values, starting at ones."""

    @nn.compact
    def __call__(self, x, train=True):
        return x * self.param("w", nn.initializers.ones, (2,))


def toy_state(ema_decay=None, **buffers) -> TrainState:
    players = {name: Player.create(Vector(), optax.sgd(1.0), jax.random.key(i), ONES) for i, name in enumerate("ab")}
    return TrainState.create(jax.random.key(0), players, ema_decay, buffers)


def w(state, name):
    return state.players[name].params["w"]


def linear_loss(name, metrics=None):
    """``w . mean(batch x)`` for player ``name``: its gradient is the batch's mean."""

    def loss(params, inputs):
        return jnp.dot(params[name]["w"], inputs.batch["x"].mean(0)), PhaseOutput(metrics=metrics or {})

    return loss


def step(phases, state, batch):
    return jax.jit(make_step(phases))(state, batch)


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"players": ()}, "Phase 'p': names no player to update"),
        ({"every": 0}, "Phase 'p': every and repeat must be at least 1, got 0, 1"),
        ({"repeat": 0}, "Phase 'p': every and repeat must be at least 1, got 1, 0"),
    ],
)
def test_phase_refuses_no_player_and_counts_below_one(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Phase(**{"name": "p", "players": ("a",), "loss": linear_loss("a"), **kwargs})


def test_a_step_takes_the_most_repetitions_of_real_batches_and_refuses_others():
    phases = (Phase("a", ("a",), linear_loss("a"), repeat=3), Phase("b", ("b",), linear_loss("b"), repeat=2))
    assert batches_per_step(phases) == 3
    with pytest.raises(ValueError, match="train step: a batch of 8 rows does not split into 3 real batches"):
        step(phases, toy_state(), {"x": jnp.ones((8, 2))})


# ----------------------------------------------------------------------------- repeat and every


def recording_loss(name):
    """A linear loss of player ``name`` that pushes its batch's mean and a draw from its key to ``'seen'``."""

    def loss(params, inputs):
        mean = inputs.batch["x"].mean(0)
        record = jnp.stack([mean[0], jax.random.uniform(inputs.key)])
        seen = inputs.state.buffers["seen"].push_one(record)
        return jnp.dot(params[name]["w"], mean), PhaseOutput(metrics={f"{name}_mean": mean[0]}, buffers={"seen": seen})

    return loss


def test_repeat_updates_once_per_chunk_in_order_and_later_phases_see_the_last():
    phases = (Phase("critic", ("a",), recording_loss("a"), repeat=3), Phase("after", ("b",), recording_loss("b")))
    state = toy_state(seen=ReplayBuffer.create(4, (2,)))
    x = jnp.arange(12.0).reshape(6, 2)  # three chunks of two rows
    chunk_means = x.reshape(3, 2, 2).mean(1)
    new, metrics = step(phases, state, {"x": x})
    seen = new.buffers["seen"].items
    np.testing.assert_array_equal(seen[:, 0], [*chunk_means[:, 0], chunk_means[2, 0]])
    np.testing.assert_array_equal(w(new, "a"), ONES - chunk_means.sum(0))  # one update per chunk
    np.testing.assert_array_equal(w(new, "b"), ONES - chunk_means[2])
    # Metrics average over the repetitions; the last repetition draws from the step's own key, as 'after' does.
    np.testing.assert_allclose(metrics["a_mean"], chunk_means[:, 0].mean())
    np.testing.assert_allclose(metrics["critic_grad_norm"], jnp.linalg.norm(chunk_means, axis=1).mean(), rtol=1e-6)
    keys = seen[:, 1]
    assert keys[2] == keys[3] == jax.random.uniform(rng.step_key(state.key, 0))
    assert len(set(keys[:3].tolist())) == 3


def test_every_runs_a_lazy_phase_only_at_multiples_and_reports_zeros_between():
    phases = (
        Phase("lazy", ("a",), linear_loss("a", {"ran": jnp.float32(1)}), every=3),
        Phase("main", ("b",), linear_loss("b")),
    )
    state, batch = toy_state(), {"x": jnp.ones((2, 2))}
    run = jax.jit(make_step(phases))
    for t in range(7):
        new, metrics = run(state, batch)
        runs = t % 3 == 0
        assert (float(metrics["ran"]), float(metrics["lazy_grad_norm"]) > 0) == (float(runs), runs), t
        assert np.array_equal(w(new, "a"), w(state, "a") - 1) == runs, t
        np.testing.assert_array_equal(w(new, "b"), w(state, "b") - 1)
        state = new
    assert int(state.step) == 7


# ----------------------------------------------------------------------------- several players, what flows


def test_per_player_losses_give_each_player_the_gradient_of_its_own_scalar():
    """``{a: f, b: h}``: a descends f only, b descends h only; one scalar: both descend it."""

    def f_and_h(params):
        wa, wb = params["a"]["w"], params["b"]["w"]
        return jnp.sum(wa**2 * wb), jnp.sum(wa * wb**3)  # at ones: df/da = 2, dh/db = 3, dh/da = 1, df/db = 1

    per_player = Phase("joint", ("a", "b"), lambda p, _: (dict(zip("ab", f_and_h(p))), PhaseOutput()))
    one_scalar = Phase("joint", ("a", "b"), lambda p, _: (sum(f_and_h(p)), PhaseOutput()))
    batch = {"x": jnp.ones((2, 2))}
    for phase, grad_a, grad_b in ((per_player, 2.0, 3.0), (one_scalar, 3.0, 4.0)):
        new, metrics = step((phase,), toy_state(), batch)
        np.testing.assert_allclose(w(new, "a"), 1 - grad_a)
        np.testing.assert_allclose(w(new, "b"), 1 - grad_b)
        # A phase of several players names each gradient norm after its player.
        np.testing.assert_allclose(
            [metrics["a_grad_norm"], metrics["b_grad_norm"]], np.sqrt(2) * np.array([grad_a, grad_b]), rtol=1e-6
        )


def test_shared_values_reach_the_later_phases_of_the_same_step_only():
    def publish(params, inputs):
        value = jnp.sum(params["a"]["w"])
        return value, PhaseOutput(metrics={"first_saw": jnp.float32(len(inputs.shared))}, shared={"v": value})

    def read(params, inputs):
        return jnp.sum(params["b"]["w"]) * inputs.shared["v"], PhaseOutput(metrics={"got": inputs.shared["v"]})

    run = jax.jit(make_step((Phase("publish", ("a",), publish), Phase("read", ("b",), read))))
    state, batch = toy_state(), {"x": jnp.ones((2, 2))}
    for expected in (2.0, 0.0):  # each step publishes a's w before its update: ones, then zeros
        state, metrics = run(state, batch)
        assert float(metrics["first_saw"]) == 0  # nothing carries over from the step before
        np.testing.assert_allclose(metrics["got"], expected)
    np.testing.assert_allclose(w(state, "b"), 1 - 2.0)


def test_ema_is_updated_right_after_its_players_update():
    def watch(params, inputs):
        state = inputs.state
        seen = {"ema_a": jnp.sum(state.ema["a"].params["w"]), "a": jnp.sum(state.players["a"].params["w"])}
        return jnp.sum(params["b"]["w"]), PhaseOutput(metrics=seen)

    phases = (Phase("a", ("a",), linear_loss("a")), Phase("watch", ("b",), watch))
    state = toy_state(ema_decay={"a": 0.5, "b": 0.0})
    assert set(state.ema) == {"a"}  # a decay of 0 keeps no average
    new, metrics = step(phases, state, {"x": jnp.full((2, 2), 4.0)})
    np.testing.assert_allclose(metrics["a"], 2 * (1 - 4.0))  # the later phase sees a's new params...
    # ...and their new average, which after its first update is the new params (ganjax.optim.EMA is debiased).
    np.testing.assert_allclose(metrics["ema_a"], 2 * (1 - 4.0))
    chex.assert_trees_all_close(new.ema["a"].params["w"], w(new, "a"))
    newer, metrics = step(phases, new, {"x": jnp.full((2, 2), 4.0)})
    chex.assert_trees_all_close(newer.ema["a"].params["w"], (0.5 * w(new, "a") + w(newer, "a")) / 1.5)
    np.testing.assert_allclose(metrics["ema_a"], jnp.sum(newer.ema["a"].params["w"]))


def test_update_players_takes_new_statistics_and_the_gradient_norm_and_averages_over_devices():
    """A player left out of ``batch_stats`` keeps its own; under a device axis gradients are averaged."""
    stats = {"mean": jnp.full(2, 7.0)}

    def loss(params, inputs):
        return linear_loss("a")(params, inputs)[0] + jnp.sum(params["b"]["w"]), PhaseOutput(batch_stats={"a": stats})

    phase, state = Phase("p", ("a", "b"), loss), toy_state()
    x = jnp.arange(8.0).reshape(4, 2)
    new, metrics, _ = update_players(phase, PhaseInputs(state, {"x": x}, jax.random.key(0), None, {}))
    chex.assert_trees_all_equal((new.players["a"].batch_stats, new.players["b"].batch_stats), (stats, {}))
    np.testing.assert_allclose(metrics["a_grad_norm"], optax.tree.norm(x.mean(0)), rtol=1e-6)
    # Four devices of one row each: the mean of their gradients is the gradient of the whole batch.
    per_device = jax.vmap(
        lambda rows: (
            update_players(phase, PhaseInputs(state, {"x": rows}, jax.random.key(0), "i", {}))[0].players["a"].params
        ),
        axis_name="i",
    )(x[:, None])
    chex.assert_trees_all_close(jax.tree.map(lambda a: a[0], per_device), new.players["a"].params, rtol=1e-6)


# ----------------------------------------------------------------------------- the GAN step as a whole


def test_same_seed_gives_bit_identical_players_and_another_seed_differs():
    run = jax.jit(gan_step(tiny_gan()))

    def train(seed):
        state = make_state(seed=seed)
        for _ in range(3):
            state, _ = run(state, REAL)
        return state

    a, b, c = train(0), train(0), train(1)
    chex.assert_trees_all_equal(jax.tree.leaves(a.players), jax.tree.leaves(b.players))  # each has its own Adam
    assert not np.array_equal(a.players["g"].params["Dense_0"]["kernel"], c.players["g"].params["Dense_0"]["kernel"])


def test_step_compiles_once_and_donates_the_state():
    chex.clear_trace_counter()
    run = jax.jit(chex.assert_max_traces(gan_step(tiny_gan()), n=1), donate_argnums=0)
    state = make_state()
    old = state.players["d"].params["Dense_0"]["kernel"]
    for _ in range(3):
        state, metrics = run(state, REAL)
    chex.assert_tree_all_finite(metrics)
    assert int(state.step) == 3
    assert old.is_deleted()  # the state's arrays were donated to the step
