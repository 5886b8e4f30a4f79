"""Past-opponent swaps: snapshots, the swap window, and exact restoration of the current players."""

import functools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganjax import swaps, train

CONFIG = train.StepConfig(latent_dim=3)
REAL = {"image": jax.random.uniform(jax.random.key(9), (8, 4), minval=-1, maxval=1)}


class TinyG(nn.Module):
    @nn.compact
    def __call__(self, z, train=True):
        x = nn.BatchNorm(use_running_average=not train)(nn.Dense(12)(z))
        return jnp.tanh(nn.Dense(4)(nn.relu(x)))


class TinyD(nn.Module):
    @nn.compact
    def __call__(self, x, train=True):
        return nn.Dense(1)(nn.relu(nn.Dense(8)(x)))[:, 0]


def recording_step():
    """train_step that also reports the players it was handed, and counts its traces."""
    traces = []

    def step(gan, batch):
        traces.append(1)
        new, metrics = train.train_step(gan, batch, CONFIG)
        return new, {**metrics, "g_in": gan.g.params, "d_in": gan.d.params}

    return step, traces


def run(swap_config, steps):
    """The swap state after each step and the players each step was handed."""
    step_fn, traces = recording_step()
    step = swaps.with_opponent_swaps(step_fn, swap_config)
    state = swaps.SwapState.create(train.create_state(jax.random.key(0), TinyG(), TinyD(), (4,), CONFIG), swap_config)
    states, handed = [jax.tree.map(jnp.copy, state)], []
    for _ in range(steps):
        state, metrics = step(state, REAL)
        states.append(jax.tree.map(jnp.copy, state))
        handed.append(metrics)
    return states, handed, traces


def equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("swapped, other", [("d", "g"), ("g", "d")])
def test_window_trains_against_a_past_snapshot_and_restores_the_current_player_exactly(swapped, other):
    # Snapshots after steps 2, 6, 10; windows at steps 4-5 and 8-9.
    config = swaps.SwapConfig(every=4, duration=2, history=3, swapped=swapped)
    states, handed, traces = run(config, 10)
    gan = [s.gan for s in states]  # gan[t]: after t steps
    assert len(traces) == 1  # compiled once
    # Outside windows each step gets the players the previous one left.
    for t in (0, 1, 2, 3, 6, 7):
        assert equal(handed[t][f"{swapped}_in"], getattr(gan[t], swapped).params), t
    # The window's first step plays the snapshot taken after step 2, not the current player.
    assert equal(handed[4][f"{swapped}_in"], getattr(gan[2], swapped).params)
    assert not equal(handed[4][f"{swapped}_in"], getattr(gan[4], swapped).params)
    assert equal(handed[4][f"{other}_in"], getattr(gan[4], other).params)
    # After the window the current player is back exactly: params, statistics and optimizer state.
    chex.assert_trees_all_equal(getattr(gan[6], swapped), getattr(gan[4], swapped))
    assert not equal(getattr(gan[6], other).params, getattr(gan[4], other).params)  # its opponent kept training
    # The second window plays the snapshot after step 2 or after step 6 (the restored player).
    assert any(equal(handed[8][f"{swapped}_in"], getattr(gan[t], swapped).params) for t in (2, 6))
    assert int(states[-1].snapshots.count) == 3
    flags = [float(m[f"swapped_{swapped}"]) for m in handed]
    assert flags == [0, 0, 0, 0, 1, 1, 0, 0, 1, 1]
    assert not any(float(m[f"swapped_{other}"]) for m in handed)


def test_either_swaps_each_player_sometimes():
    states, handed, _ = run(swaps.SwapConfig(every=2, duration=1, history=2, swapped="either"), 24)
    g_windows = [float(m["swapped_g"]) for m in handed[2::2]]
    d_windows = [float(m["swapped_d"]) for m in handed[2::2]]
    assert np.all(np.add(g_windows, d_windows) == 1)  # exactly one player per window
    assert 0 < sum(g_windows) < len(g_windows)


def test_swaps_off_runs_the_step_unchanged():
    states, handed, _ = run(swaps.SwapConfig(), 3)
    step = jax.jit(functools.partial(train.train_step, config=CONFIG))
    plain = train.create_state(jax.random.key(0), TinyG(), TinyD(), (4,), CONFIG)
    for _ in range(3):
        plain, _ = step(plain, REAL)
    chex.assert_trees_all_equal(states[-1].gan.g.params, plain.g.params)
    assert int(states[-1].step) == 3 and int(states[-1].snapshots.count) == 0


def test_snapshots_keep_the_last_k_in_fifo_slots():
    ring = swaps.Snapshots.create({"w": jnp.zeros(2)}, capacity=3)
    for i in range(5):
        ring = ring.push({"w": jnp.full(2, float(i))})
    assert int(ring.size) == 3
    np.testing.assert_array_equal(ring.items["w"][:, 0], [3.0, 4.0, 2.0])
    drawn = {float(ring.sample(jax.random.key(k))["w"][0]) for k in range(50)}
    assert drawn == {2.0, 3.0, 4.0}


@pytest.mark.parametrize("kwargs, message", [
    ({"swapped": "both"}, "SwapConfig.swapped: unknown player 'both'"),
    ({"every": 4, "duration": 4}, "SwapConfig.duration: must be in \\[1, every=4\\)"),
    ({"every": 4, "duration": 0}, "SwapConfig.duration"),
    ({"history": 0}, "history >= 1"),
])
def test_bad_swap_configs_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        swaps.SwapConfig(**kwargs)
