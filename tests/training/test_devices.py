"""ganjax.training.devices: 8 simulated devices, and 2 processes, train as one device does.

A JAX process fixes its device count when it starts, so each test runs this
file as a script in fresh processes (``python tests/test_parallel.py MODE ...``)
that save their final params to ``.npz`` files for the test to compare.

The runs use plain SGD: Adam's update hardly depends on the gradient's scale, so
it would hide a gradient summed instead of averaged over devices, and it blows
float rounding in near-zero gradients up to whole steps.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import chex
import jax
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

from experiments import dcgan_mnist
from ganjax import data, latent, train
from ganjax.training import devices as parallel
from ganjax.models import dcgan

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = train.StepConfig(latent_dim=16)
BATCH, STEPS = 64, 5


def flat_params(state) -> dict[str, np.ndarray]:
    return {f"{name}{jax.tree_util.keystr(path)}": np.asarray(leaf) for name in ("g", "d")
            for path, leaf in jax.tree_util.tree_leaves_with_path(getattr(state, name).params)}


def assert_close(actual: dict, expected: dict, rtol: float = 1e-5) -> None:
    """Every param array within ``rtol`` of the reference, relative to the array's norm."""
    assert actual.keys() == expected.keys()
    errors = {k: np.linalg.norm(actual[k] - expected[k]) / np.linalg.norm(expected[k]) for k in expected}
    assert max(errors.values()) < rtol, sorted(errors.items(), key=lambda kv: -kv[1])[:3]


# ----------------------------------------------------------------------------- scripts run in subprocesses

def eight_devices(mnist_dir: str, out: str) -> None:
    """STEPS steps of batch BATCH on 1 device and on 8; saves both runs' params; checks z and compilation."""
    assert jax.device_count() == 8
    batcher = data.Batcher(data.load_idx_folder(mnist_dir), BATCH, seed=0)
    tx = optax.sgd(0.01)

    def create(bn_axis_name):
        g = dcgan.Generator(28, 1, 8, CONFIG.latent_dim, bn_axis_name=bn_axis_name)
        d = dcgan.Discriminator(28, 8, bn_axis_name=bn_axis_name)
        return train.create_state(jax.random.key(0), g, d, (28, 28, 1), CONFIG, g_tx=tx, d_tx=tx)

    one = create(None)
    one_step = train.jit_step(train.train_step)
    mesh = parallel.make_mesh()
    assert parallel.bn_axis_name("auto", BATCH, mesh) == "data"
    eight = parallel.replicate(create("data"), mesh)
    eight_step = parallel.data_parallel(chex.assert_max_traces(train.train_step, n=1), mesh, CONFIG)
    for step in range(STEPS):
        batch = batcher.batch(step)
        one, _ = one_step(one, batch, config=CONFIG)
        eight, metrics = eight_step(eight, parallel.shard_batch(batch, mesh))
    chex.assert_tree_all_finite(metrics)
    np.savez(f"{out}/one.npz", **flat_params(one))
    np.savez(f"{out}/eight.npz", **flat_params(eight))

    # Each device keeps its own rows of one draw for the global batch.
    draw = lambda key: train.per_device(latent.LATENTS["gaussian"], key, (BATCH // 8, 16), "data")
    key = jax.random.key(1)
    z = np.asarray(jax.jit(jax.shard_map(draw, mesh=mesh, in_specs=P(), out_specs=P("data")))(key))
    np.testing.assert_array_equal(z, jax.random.normal(key, (BATCH, 16)))
    assert len({row.tobytes() for row in z.reshape(8, -1)}) == 8

    with np.testing.assert_raises_regex(ValueError, "batch size 60 does not divide evenly over 8 devices"):
        parallel.data_parallel(train.train_step, mesh, CONFIG)(eight, {"image": np.zeros((60, 28, 28, 1))})


def tiny_config(mnist_dir, workdir, **overrides) -> dcgan_mnist.Config:
    values = dict(data_dir=str(mnist_dir), workdir=str(workdir), steps=3, batch_size=16, latent_dim=16, g_width=8,
                  d_width=8, num_samples=4, log_every=1, sample_every=3, checkpoint_every=3, g_optimizer="sgd",
                  d_optimizer="sgd", lr_g=0.01, lr_d=0.01, eval_every=0)
    return dcgan_mnist.Config(**{**values, **overrides})


def process(process_id: str, port: str, mnist_dir: str, out: str) -> None:
    """One of two processes (2 devices each) running the DCGAN experiment together; saves its params."""
    config = tiny_config(mnist_dir, f"{out}/run", coordinator_address=f"localhost:{port}", num_processes=2,
                         process_id=int(process_id))
    state = dcgan_mnist.train_and_evaluate(config)
    assert (jax.process_count(), jax.device_count(), jax.local_device_count()) == (2, 4, 2)
    np.savez(f"{out}/process_{process_id}.npz", **flat_params(state))


# ----------------------------------------------------------------------------- tests

def start(*args, devices: int, log: pathlib.Path) -> subprocess.Popen:
    """This file run as a script with ``args`` in a process with ``devices`` CPU devices; output to ``log``."""
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
           "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu",
           "JAX_COMPILATION_CACHE_DIR": jax.config.jax_compilation_cache_dir or "",
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.5"}
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, __file__, *map(str, args)], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def finish(runs: dict[pathlib.Path, subprocess.Popen], timeout: float = 300) -> None:
    """Waits for every run; the first failure, or the timeout, stops the others and shows its output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(r.poll() is None for r in runs.values()) and not any(
            r.returncode for r in runs.values()):
        time.sleep(0.2)
    for run in runs.values():
        if run.poll() is None:
            run.kill()
        run.wait()
    for log, run in runs.items():
        assert run.returncode == 0, f"{log.name} ended with {run.returncode}:\n{log.read_text()[-4000:]}"


def test_eight_devices_train_as_one(mnist_dir, tmp_path):
    log = tmp_path / "eight_devices.log"
    finish({log: start("eight_devices", mnist_dir, tmp_path, devices=8, log=log)})
    one, eight = np.load(tmp_path / "one.npz"), np.load(tmp_path / "eight.npz")
    assert_close(dict(eight), dict(one))


def test_two_processes_train_as_one(mnist_dir, tmp_path):
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    out = tmp_path / "two"
    logs = [tmp_path / f"process_{i}.log" for i in range(2)]
    runs = {log: start("process", i, port, mnist_dir, out, devices=2, log=log) for i, log in enumerate(logs)}
    try:
        single = dcgan_mnist.train_and_evaluate(tiny_config(mnist_dir, tmp_path / "one"))
    finally:
        finish(runs)
    first, second = dict(np.load(out / "process_0.npz")), dict(np.load(out / "process_1.npz"))
    chex.assert_trees_all_equal(first, second)
    assert_close(first, flat_params(single))
    # Process 0 alone wrote the logs and samples; the checkpoint holds the last step.
    records = (out / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in records] == [1, 2, 3]
    assert sorted(p.name for p in (out / "run" / "samples").iterdir()) == ["step_000003.png"]
    assert sorted(p.name for p in (out / "run" / "checkpoints").iterdir()) == ["3"]


def test_batch_must_divide_over_devices():
    mesh = parallel.make_mesh()
    assert parallel.check_batch_size(6, mesh) == 6 // mesh.size
    assert parallel.bn_axis_name("on", 6, mesh) is None  # nothing to synchronize on one device
    with pytest.raises(ValueError, match="unknown mode 'sometimes'"):
        parallel.bn_axis_name("sometimes", 6, mesh)
    with pytest.raises(ValueError, match="num_devices=2: each process has 1 devices"):
        parallel.make_mesh(2)


if __name__ == "__main__":
    mode, *arguments = sys.argv[1:]
    {"eight_devices": eight_devices, "process": process}[mode](*arguments)
