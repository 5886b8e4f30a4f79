"""Checkpoints: only finite states are saved, unreadable ones fall back, mismatched ones are named."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganjax import checkpoint


def state(w=0.0, width=2):
    return {"step": jnp.int32(1), "w": jnp.full((width,), w), "key": jax.random.key(0), "bn": {"mean": jnp.zeros(3)}}


@pytest.mark.parametrize(
    "tree, bad",
    [
        (state(), None),
        (state(np.nan), "w"),
        (state(np.inf), "w"),
        ({"a": {"b": jnp.ones(2), "c": jnp.array([1.0, -np.inf])}}, "a/c"),
        ({"n": jnp.arange(3), "k": jax.random.key(1)}, None),  # integer and key leaves are not checked
    ],
)
def test_first_non_finite_names_the_leaf(tree, bad):
    assert checkpoint.first_non_finite(tree) == bad


def test_a_non_finite_state_is_refused_and_the_last_good_checkpoint_kept(tmp_path):
    saver = checkpoint.Checkpointer(tmp_path)
    saver.save(1, state(1.0))
    with pytest.raises(
        checkpoint.NonFiniteStateError, match="step 2: w holds NaN or Inf; .*last good checkpoint is step 1"
    ):
        saver.save(2, state(np.nan))
    saver.close()
    assert checkpoint.saved_steps(tmp_path) == [1]
    restored, _, _, step = checkpoint.Checkpointer(tmp_path).restore(state())
    assert step == 1 and float(restored["w"][0]) == 1.0


def test_an_unreadable_latest_checkpoint_falls_back_to_the_previous_one(tmp_path):
    saver = checkpoint.Checkpointer(tmp_path)
    for step in (1, 2):
        saver.save(step, state(float(step)), {"step": step})
    saver.close()
    for path in (tmp_path / "2" / "state").rglob("*"):
        if path.is_file():
            path.write_bytes(b"")  # a damaged disk: every file of the newest checkpoint truncated
    saver = checkpoint.Checkpointer(tmp_path)
    with pytest.warns(UserWarning, match="checkpoint 2 cannot be read .*moved to 2.unreadable"):
        restored, config, _, step = saver.restore(state())
    assert (step, config, float(restored["w"][0])) == (1, {"step": 1}, 1.0)
    assert (tmp_path / "2.unreadable").is_dir()
    saver.save(2, state(5.0))  # the run goes on and writes step 2 again
    saver.close()
    assert checkpoint.saved_steps(tmp_path) == [1, 2]


def test_nothing_readable_is_an_error_and_moves_nothing(tmp_path):
    saver = checkpoint.Checkpointer(tmp_path)
    saver.save(1, state())
    saver.close()
    for path in (tmp_path / "1" / "state").rglob("*"):
        if path.is_file():
            path.write_bytes(b"")
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint can be read \\(step 1: "):
        checkpoint.Checkpointer(tmp_path).restore(state())
    assert checkpoint.saved_steps(tmp_path) == [1]
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint to resume from"):
        checkpoint.Checkpointer(tmp_path / "empty").restore(state())


def test_a_checkpoint_of_another_model_is_named_not_buried(tmp_path):
    saver = checkpoint.Checkpointer(tmp_path)
    saver.save(1, state(width=2))
    saver.close()
    with pytest.raises(
        checkpoint.CheckpointError, match="1 does not fit this model: w is \\(2,\\) there, \\(4,\\) here"
    ):
        checkpoint.Checkpointer(tmp_path).restore(state(width=4))
    assert checkpoint.saved_steps(tmp_path) == [1]  # not mistaken for a damaged one
