"""ganjax.replay: the ring buffer of past fakes, alone and inside the jitted train step."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganjax import checkpoint, replay
from tests.training.tiny import REAL, jit_step, make_state, tiny_gan


def numbered(start, n):
    """Examples whose every value is their number: ``(n, 2)``."""
    return jnp.broadcast_to(jnp.arange(start, start + n, dtype=jnp.float32)[:, None], (n, 2))


def test_push_is_fifo_and_keeps_the_newest():
    buffer = replay.ReplayBuffer.create(5, (2,))
    buffer = buffer.push(numbered(0, 3)).push(numbered(3, 4))
    assert int(buffer.count) == 7 and int(buffer.size) == 5
    # Slot i % 5 holds the i-th example: 0..6 -> slots [5, 6, 2, 3, 4].
    np.testing.assert_array_equal(buffer.items[:, 0], [5, 6, 2, 3, 4])
    np.testing.assert_array_equal(buffer.push(numbered(10, 8)).items[:, 0], [13, 14, 15, 16, 17])


def test_sample_draws_only_stored_items():
    buffer = replay.ReplayBuffer.create(8, (2,)).push(numbered(1, 3))
    samples = jax.jit(buffer.sample, static_argnums=1)(jax.random.key(0), 1000)
    assert set(np.unique(samples[:, 0])) == {1.0, 2.0, 3.0}


def test_a_ring_of_pytrees_keeps_the_last_k_in_fifo_slots():
    ring = replay.ReplayBuffer.like({"w": jnp.zeros(2), "n": jnp.zeros((), jnp.int32)}, capacity=3)
    for i in range(5):
        ring = ring.push_one({"w": jnp.full(2, float(i)), "n": i})
    assert int(ring.size) == 3 and ring.items["n"].dtype == jnp.int32
    np.testing.assert_array_equal(ring.items["w"][:, 0], [3.0, 4.0, 2.0])
    chex.assert_trees_all_equal(ring.get(1), {"w": jnp.full(2, 4.0), "n": jnp.int32(4)})
    drawn = ring.sample(jax.random.key(0), 200)
    assert set(np.asarray(drawn["n"]).tolist()) == {2, 3, 4}
    np.testing.assert_array_equal(drawn["w"][:, 0], drawn["n"])  # leaves of one example stay together


def test_mix_share_holds_over_many_jitted_steps_with_donated_state():
    share, batch = 0.25, 16

    def step(buffer, key, start):
        fresh = numbered(0, batch) + 1000.0 + start
        mixed = replay.mix(buffer, key, fresh, share)
        return buffer.push(fresh), mixed

    step = jax.jit(step, donate_argnums=0)
    buffer, replayed = replay.ReplayBuffer.create(64, (2,)), []
    for t in range(30):
        buffer, mixed = step(buffer, jax.random.key(t), jnp.float32(100 * t))
        old = np.asarray(mixed[:, 0]) < 1000.0 + 100 * t
        replayed.append(old.mean() if t else 0.0)
    np.testing.assert_allclose(replayed[1:], share)
    assert replayed[0] == 0.0  # an empty buffer replays nothing


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: replay.mix(replay.ReplayBuffer.create(4, (2,)), jax.random.key(0), numbered(0, 4), 1.5),
            "replay share must be in \\[0, 1\\], got 1.5",
        ),
        (lambda: replay.ReplayBuffer.create(0, (2,)), "ReplayBuffer: capacity must be at least 1, got 0"),
        (
            lambda: replay.ReplayBuffer.create(4, (2,), share=-0.1),
            "ReplayBuffer: share must be in \\[0, 1\\], got -0.1",
        ),
    ],
)
def test_bad_shares_and_capacities_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_train_step_pushes_fakes_and_survives_checkpoints(tmp_path):
    step = jit_step(tiny_gan())
    state = make_state(replay_capacity=20, replay_share=0.5)
    for _ in range(3):
        state, metrics = step(state, REAL)
    chex.assert_tree_all_finite(metrics)
    pool = state.buffers["replay"]
    assert int(pool.count) == 3 * REAL["image"].shape[0]
    assert np.all(np.abs(np.asarray(pool.items)) > 0)  # 24 pushed into 20 slots: all filled

    saver = checkpoint.Checkpointer(tmp_path)
    saver.save(3, state)
    restored = saver.restore(make_state(replay_capacity=20, replay_share=0.5))
    saver.close()
    chex.assert_trees_all_equal(restored.state.buffers["replay"], pool)
