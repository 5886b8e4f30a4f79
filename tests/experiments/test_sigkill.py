"""SIGKILL a tiny DCGAN run at four moments, resume it, and compare with an uninterrupted run (slow tier)."""

import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

pytestmark = pytest.mark.slow

ARGS = [
    *("--schedule.steps", "60", "--schedule.batch-size", "16", "--latent.dim", "16"),
    *("--model.g-width", "8", "--model.d-width", "8", "--evaluation.eval-every", "0"),
    *("--run.log-every", "3", "--run.sample-every", "10", "--run.checkpoint-every", "10"),
]


def start(mnist_dir, workdir, *extra):
    command = [sys.executable, "-m", "experiments.dcgan_mnist", "--data.dir", str(mnist_dir), *ARGS]
    return subprocess.Popen(
        [*command, "--run.workdir", str(workdir), *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def finish(process):
    _, err = process.communicate()
    assert process.returncode == 0, err.decode()[-3000:]


def entries(workdir):
    folder = workdir / "checkpoints"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def logged(workdir):
    path = workdir / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


MOMENTS = {
    "training": lambda w: "10" in entries(w) and logged(w) >= 5,
    "checkpointing": lambda w: any("tmp" in name for name in entries(w)) and "10" in entries(w),
    "just_checkpointed": lambda w: "20" in entries(w),
    "logging": lambda w: logged(w) >= 12,
}


def arrays(path):
    with ocp.StandardCheckpointer() as checkpointer:
        leaves = jax.tree.leaves(checkpointer.restore(path))
    return [
        np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x) for x in leaves
    ]


@pytest.fixture(scope="module")
def straight(mnist_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("straight")
    finish(start(mnist_dir, workdir))
    return workdir


@pytest.mark.parametrize("moment", MOMENTS)
def test_a_run_killed_and_resumed_ends_bit_identical(moment, straight, mnist_dir, tmp_path):
    process = start(mnist_dir, tmp_path)
    while process.poll() is None and not MOMENTS[moment](tmp_path):
        time.sleep(0.002)
    if process.poll() is not None:
        pytest.skip(f"the run ended before the moment {moment!r} was seen")
    process.send_signal(signal.SIGKILL)
    process.wait()
    finish(start(mnist_dir, tmp_path, "--run.resume"))
    for a, b in zip(
        arrays(straight / "checkpoints" / "60" / "state"), arrays(tmp_path / "checkpoints" / "60" / "state")
    ):
        np.testing.assert_array_equal(a, b)
    for name in ("samples.gif", "interpolation.png"):
        assert (tmp_path / name).read_bytes() == (straight / name).read_bytes()
    # The checkpoint keeps the loop's host memory (metrics not logged yet, the monitor's window): same records.
    assert (tmp_path / "metrics.jsonl").read_text() == (straight / "metrics.jsonl").read_text()
