"""ganjax.training.devices: 8 simulated devices, and 2 processes, train as one device does.

A JAX process fixes its device count when it starts, so each test runs this
file as a script in fresh processes (``python tests/training/test_devices.py MODE ...``)
that save their final state to ``.npz`` files for the test to compare.

The runs use plain SGD: Adam's update hardly depends on the gradient's scale, so
it would hide a gradient summed instead of averaged over devices, and it blows
float rounding in near-zero gradients up to whole steps. The GAN switches on
every draw that is made per device (z, noisy and flipped labels, instance
noise), BatchNorm in G, several critic updates, a lazy penalty and an EMA.
"""

import math
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

ROOT = pathlib.Path(__file__).resolve().parents[2]
if __name__ == "__main__" and sys.argv[1] == "process":
    # A process joins the run before anything starts JAX's backend (the tiny module's constants do).
    from ganjax.training import devices

    devices.initialize_distributed(f"localhost:{sys.argv[3]}", 2, int(sys.argv[2]))

from ganjax import latent, rng  # noqa: E402
from ganjax.noise import InputNoise  # noqa: E402
from ganjax.training import devices  # noqa: E402
from ganjax.training.objective import Objective  # noqa: E402
from ganjax.training.phases import batches_per_step, make_step  # noqa: E402
from tests.training.tiny import TinyG, make_state, tiny_gan  # noqa: E402

GAN = tiny_gan(
    Objective(d_labels="noisy", label_flip_prob=0.1, penalty="r1", penalty_weight=1.0, penalty_every=2),
    noise=InputNoise(std=0.1, decay_steps=100),
)
PHASES = GAN.phases(n_critic=2)
BATCH, STEPS = 64, 5


def create(bn_axis_name=None):
    return make_state(GAN, g=TinyG(bn_axis_name), tx=optax.sgd(0.05), ema_decay=0.9)


def batch(step: int) -> dict[str, np.ndarray]:
    """Step ``step``'s global batch: two real batches (one per critic update), the same in every process."""
    rows = batches_per_step(PHASES) * BATCH
    return {"image": np.asarray(jax.random.uniform(jax.random.key(100 + step), (rows, 4), minval=-1, maxval=1))}


def flat(state) -> dict[str, np.ndarray]:
    """Every player's params and statistics, and G's moving average, by path."""
    trees = {"players": {name: (p.params, p.batch_stats) for name, p in state.players.items()}, "ema": state.ema}
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in jax.tree_util.tree_leaves_with_path(trees)}


def train(state, step_fn, put=lambda b: b):
    for t in range(STEPS):
        state, metrics = step_fn(state, put(batch(t)))
    chex.assert_tree_all_finite(metrics)
    return state


def assert_close(actual: dict, expected: dict, rtol: float = 1e-5) -> None:
    """Every array within ``rtol`` of the reference, relative to the array's norm."""
    assert actual.keys() == expected.keys()
    errors = {k: np.linalg.norm(actual[k] - expected[k]) / max(np.linalg.norm(expected[k]), 1e-12) for k in expected}
    assert max(errors.values()) < rtol, sorted(errors.items(), key=lambda kv: -kv[1])[:3]


# ----------------------------------------------------------------------------- scripts run in subprocesses


def eight_devices(out: str) -> None:
    """STEPS steps on 1 device and on 8; saves both runs' states; checks z, compilation and refusals."""
    assert jax.device_count() == 8
    one = train(create(), jax.jit(make_step(PHASES), donate_argnums=0))
    mesh = devices.make_mesh()
    assert devices.bn_axis_name("auto", BATCH, mesh) == "data"
    step = devices.data_parallel(chex.assert_max_traces(make_step(PHASES), n=1), mesh, batches_per_step(PHASES))
    eight = train(devices.replicate(create("data"), mesh), step, lambda b: devices.shard_batch(b, mesh))
    np.savez(f"{out}/one.npz", **flat(one))
    np.savez(f"{out}/eight.npz", **flat(eight))

    # Each device keeps its own rows of one draw for the global batch.
    draw = lambda key: rng.per_device(latent.LATENTS["gaussian"], key, (BATCH // 8, 16), "data")
    key = jax.random.key(1)
    z = np.asarray(jax.jit(jax.shard_map(draw, mesh=mesh, in_specs=P(), out_specs=P("data")))(key))
    np.testing.assert_array_equal(z, jax.random.normal(key, (BATCH, 16)))
    assert len({row.tobytes() for row in z.reshape(8, -1)}) == 8

    with np.testing.assert_raises_regex(ValueError, "batch size 30 does not divide evenly over 8 devices"):
        step(eight, {"image": np.zeros((60, 4), np.float32)})


def process(process_id: str, port: str, out: str) -> None:
    """One of two processes (2 devices each) training together; saves its state."""
    devices.initialize_distributed(f"localhost:{port}", 2, int(process_id))  # done already: a no-op
    mesh = devices.make_mesh()
    assert (jax.process_count(), jax.device_count(), jax.local_device_count(), mesh.size) == (2, 4, 2, 4)
    step = devices.data_parallel(make_step(PHASES), mesh, batches_per_step(PHASES))
    state = train(devices.replicate(create("data"), mesh), step, lambda b: devices.shard_batch(b, mesh))
    np.savez(f"{out}/process_{process_id}.npz", **flat(state))


# ----------------------------------------------------------------------------- tests


def start(*args, devices: int, log: pathlib.Path) -> subprocess.Popen:
    """This file run as a script with ``args`` in a process with ``devices`` CPU devices; output to ``log``."""
    env = {
        **os.environ,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "PYTHONPATH": str(ROOT),
        "JAX_PLATFORMS": "cpu",
        "JAX_COMPILATION_CACHE_DIR": jax.config.jax_compilation_cache_dir or "",
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.5",
    }
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, __file__, *map(str, args)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def finish(runs: dict[pathlib.Path, subprocess.Popen], timeout: float = 300) -> None:
    """Waits for every run; the first failure, or the timeout, stops the others and shows its output."""
    deadline = time.monotonic() + timeout
    while (
        time.monotonic() < deadline
        and any(r.poll() is None for r in runs.values())
        and not any(r.returncode for r in runs.values())
    ):
        time.sleep(0.2)
    for run in runs.values():
        if run.poll() is None:
            run.kill()
        run.wait()
    for log, run in runs.items():
        assert run.returncode == 0, f"{log.name} ended with {run.returncode}:\n{log.read_text()[-4000:]}"


def test_eight_devices_train_as_one(tmp_path):
    log = tmp_path / "eight_devices.log"
    finish({log: start("eight_devices", tmp_path, devices=8, log=log)})
    assert_close(dict(np.load(tmp_path / "eight.npz")), dict(np.load(tmp_path / "one.npz")))


@pytest.mark.slow
def test_two_processes_train_as_one(tmp_path):
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    logs = [tmp_path / f"process_{i}.log" for i in range(2)]
    runs = {log: start("process", i, port, tmp_path, devices=2, log=log) for i, log in enumerate(logs)}
    try:
        single = flat(train(create(), jax.jit(make_step(PHASES), donate_argnums=0)))
    finally:
        finish(runs)
    first, second = dict(np.load(tmp_path / "process_0.npz")), dict(np.load(tmp_path / "process_1.npz"))
    chex.assert_trees_all_equal(first, second)
    assert_close(first, single)


def test_one_device_mesh_is_the_plain_jitted_step():
    mesh = devices.make_mesh(1)
    step = devices.data_parallel(make_step(PHASES), mesh, batches_per_step(PHASES))
    plain = train(create(), jax.jit(make_step(PHASES)))
    chex.assert_trees_all_equal(flat(train(devices.replicate(create(), mesh), step)), flat(plain))


def test_the_runs_step_donates_the_state():
    """The step experiments run aliases every byte of the state to the new one: it never holds two copies."""
    mesh = devices.make_mesh(1)
    step = devices.data_parallel(make_step(PHASES), mesh, batches_per_step(PHASES))
    state = create()
    batch = {"image": np.zeros((batches_per_step(PHASES) * 8, 4), np.float32)}
    compiled = step.lower(state, batch).compile()
    state_bytes = sum(math.prod(leaf.shape) * leaf.dtype.itemsize for leaf in jax.tree.leaves(state))
    assert compiled.memory_analysis().alias_size_in_bytes >= state_bytes > 0


def test_batch_must_divide_over_devices():
    mesh = devices.make_mesh()
    assert devices.check_batch_size(6, mesh) == 6 // mesh.size
    with pytest.raises(ValueError, match="'on' needs several devices"):
        devices.bn_axis_name("on", 6, mesh)  # nothing to synchronize on one device
    with pytest.raises(ValueError, match="unknown mode 'sometimes'"):
        devices.bn_axis_name("sometimes", 6, mesh)
    with pytest.raises(ValueError, match=f"num_devices=2: each process has {jax.local_device_count()} devices"):
        devices.make_mesh(jax.local_device_count() + 1)


if __name__ == "__main__":
    mode, *arguments = sys.argv[1:]
    {"eight_devices": eight_devices, "process": process}[mode](*arguments)
