"""ganjax.swaps: snapshots, the swap window, and exact restoration of the current players."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganjax import swaps
from tests.training.tiny import REAL, gan_step, make_state, tiny_gan


def recording_step():
    """The GAN step that also reports the players it was handed, and counts its traces."""
    traces, step = [], gan_step(tiny_gan())

    def recorded(state, batch):
        traces.append(1)
        new, metrics = step(state, batch)
        return new, {**metrics, "g_in": state.players["g"].params, "d_in": state.players["d"].params}

    return recorded, traces


def run(config, steps):
    """The states after each step (``states[t]``: after ``t`` steps), the players each step was handed, the traces."""
    step_fn, traces = recording_step()
    step = swaps.with_opponent_swaps(step_fn, config)
    state = swaps.init(make_state(), config)
    states, handed = [jax.tree.map(jnp.copy, state)], []
    for _ in range(steps):
        state, metrics = step(state, REAL)
        states.append(jax.tree.map(jnp.copy, state))
        handed.append(metrics)
    return states, handed, traces


def params(state, name):
    return state.players[name].params


def equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("swapped, other", [("d", "g"), ("g", "d")])
def test_window_trains_against_a_past_snapshot_and_restores_the_current_player_exactly(swapped, other):
    # Snapshots after steps 2, 6, 10; windows at steps 4-5 and 8-9.
    config = swaps.SwapConfig(every=4, duration=2, history=3, swapped=swapped)
    states, handed, traces = run(config, 10)
    assert len(traces) == 1  # compiled once
    # Outside windows each step gets the players the previous one left.
    for t in (0, 1, 2, 3, 6, 7):
        assert equal(handed[t][f"{swapped}_in"], params(states[t], swapped)), t
    # The window's first step plays the snapshot taken after step 2, not the current player.
    assert equal(handed[4][f"{swapped}_in"], params(states[2], swapped))
    assert not equal(handed[4][f"{swapped}_in"], params(states[4], swapped))
    assert equal(handed[4][f"{other}_in"], params(states[4], other))
    # After the window the current player is back exactly: params, statistics and optimizer state.
    current = lambda t: jax.tree.leaves(states[t].players[swapped])
    chex.assert_trees_all_equal(current(6), current(4))
    assert not equal(params(states[6], other), params(states[4], other))  # its opponent kept training
    # The second window plays the snapshot after step 2 or after step 6 (the restored player).
    assert any(equal(handed[8][f"{swapped}_in"], params(states[t], swapped)) for t in (2, 6))
    flags = [float(m[f"swapped_{swapped}"]) for m in handed]
    assert flags == [0, 0, 0, 0, 1, 1, 0, 0, 1, 1]
    assert not any(float(m[f"swapped_{other}"]) for m in handed)


def test_snapshot_ring_holds_both_players_weights_as_each_window_closes():
    config = swaps.SwapConfig(every=4, duration=2, history=2)
    states, _, _ = run(config, 10)
    ring = states[-1].buffers[swaps.SNAPSHOTS]
    assert int(ring.count) == 3 and int(ring.size) == 2
    # Slot i % 2 holds the i-th snapshot: after step 10 in slot 0, after step 6 in slot 1.
    for slot, t in ((0, 10), (1, 6)):
        for name in ("g", "d"):
            snapshot = ring.get(slot)[name]
            assert equal(snapshot["params"], params(states[t], name)), (slot, name)
            assert equal(snapshot["batch_stats"], states[t].players[name].batch_stats), (slot, name)


def test_either_swaps_each_player_sometimes():
    _, handed, _ = run(swaps.SwapConfig(every=2, duration=1, history=2, swapped="either"), 24)
    g_windows = [float(m["swapped_g"]) for m in handed[2::2]]
    d_windows = [float(m["swapped_d"]) for m in handed[2::2]]
    assert np.all(np.add(g_windows, d_windows) == 1)  # exactly one player per window
    assert 0 < sum(g_windows) < len(g_windows)


def test_swaps_off_runs_the_step_unchanged():
    states, handed, _ = run(swaps.SwapConfig(), 3)
    step = jax.jit(gan_step(tiny_gan()))
    plain = make_state()
    for _ in range(3):
        plain, _ = step(plain, REAL)
    chex.assert_trees_all_equal(jax.tree.leaves(states[-1].players), jax.tree.leaves(plain.players))
    assert int(states[-1].step) == 3 and not states[-1].buffers
    assert not any(float(m["swapped_g"]) + float(m["swapped_d"]) for m in handed)


def test_swaps_refuse_a_state_without_snapshots():
    step = swaps.with_opponent_swaps(gan_step(tiny_gan()), swaps.SwapConfig(every=4, duration=2))
    with pytest.raises(ValueError, match="the state keeps no snapshots; start it with swaps.init"):
        step(make_state(), REAL)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"swapped": "both"}, "SwapConfig.swapped: unknown player 'both'"),
        ({"every": 4, "duration": 4}, "SwapConfig.duration: must be in \\[1, every=4\\)"),
        ({"every": 4, "duration": 0}, "SwapConfig.duration"),
        ({"every": -1}, "SwapConfig.every: must be >= 0"),
        ({"history": 0}, "SwapConfig.history: must be >= 1"),
    ],
)
def test_bad_swap_configs_are_refused_naming_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        swaps.SwapConfig(**kwargs)
