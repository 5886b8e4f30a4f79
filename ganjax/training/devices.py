"""Data parallelism over a 1-D ``'data'`` mesh, and multi-host start-up.

A train step of :func:`ganjax.training.phases.make_step` runs unchanged on every device under
``jax.shard_map``: the state is replicated, the batch is split along its first
axis, and the step averages gradients, metrics and BatchNorm statistics over
the ``'data'`` axis. Its random draws are made for the global batch and sliced
per device, so a run gives the same result on 1, 8 or 256 devices (up to the
order of floating-point sums).

Several hosts run the same program, one process each: :func:`initialize_distributed`
joins them before any other JAX call, the mesh then spans every device of every
process, and each process puts only its own rows of a step's batch on its own
devices (:func:`shard_batch`).

Example::

    mesh = devices.make_mesh()
    step = devices.data_parallel(make_step(phases), mesh, batches_per_step(phases))
    state = devices.replicate(state, mesh)
    state, metrics = step(state, devices.shard_batch(batcher.batch(0), mesh))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

PyTree = Any

DATA_AXIS = "data"
# Below this many examples per device, per-device BatchNorm statistics get noisy and the run drifts from the
# one-device run, so 'auto' averages them over the mesh. 32 is the per-device batch with which Goyal et al.
# (2017, "ImageNet in 1 hour") keep BatchNorm per device.
CROSS_REPLICA_BN_BELOW = 32
CROSS_REPLICA_BN_MODES = ("auto", "on", "off")


def initialize_distributed(
    coordinator_address: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> None:
    """Joins this process to a multi-process run; call it before any other JAX call.

    Arguments left as None are detected by JAX where it can (Cloud TPU pods,
    SLURM, Open MPI, Kubernetes). On CPU the processes talk through gloo.
    Calling it again once joined does nothing.

    Args:
      coordinator_address: ``host:port`` of process 0, the same on every process.
      num_processes: how many processes take part.
      process_id: this process's index in ``[0, num_processes)``.
    """
    if jax.distributed.is_initialized():
        return
    jax.distributed.initialize(coordinator_address, num_processes, process_id)


def make_mesh(num_devices: int = 0) -> Mesh:
    """A 1-D mesh with axis ``'data'`` over ``num_devices`` devices of every process (0: all of them).

    The devices are ordered by process, so each process's devices hold one
    contiguous block of the batch.

    Raises:
      ValueError: if a process has fewer than ``num_devices`` devices.
    """
    local = jax.local_device_count()
    if not 0 <= num_devices <= local:
        raise ValueError(f"num_devices={num_devices}: each process has {local} devices (0 uses all of them)")
    per_process = [
        sorted((d for d in jax.devices() if d.process_index == p), key=lambda d: d.id)
        for p in range(jax.process_count())
    ]
    return Mesh(np.asarray([d for devices in per_process for d in devices[: num_devices or local]]), (DATA_AXIS,))


def check_batch_size(batch_size: int, mesh: Mesh) -> int:
    """The per-device batch size of a global ``batch_size`` on ``mesh``.

    Raises:
      ValueError: if ``batch_size`` does not divide evenly over the mesh's devices.
    """
    n = mesh.shape[DATA_AXIS]
    if batch_size % n:
        raise ValueError(
            f"the global batch size {batch_size} does not divide evenly over {n} devices; "
            f"use a multiple of {n} or fewer devices"
        )
    return batch_size // n


def bn_axis_name(mode: str, batch_size: int, mesh: Mesh) -> str | None:
    """The axis to give models' ``bn_axis_name`` for cross-replica BatchNorm, or None.

    On a single device there is nothing to synchronize: ``'auto'`` gives None
    there and ``'on'``, which cannot apply, is refused.

    Args:
      mode: ``'on'``, ``'off'``, or ``'auto'``: on when each device gets fewer
        than :data:`CROSS_REPLICA_BN_BELOW` examples.

      batch_size: the global batch size.
      mesh: the mesh the step runs on.

    Raises:
      ValueError: for ``'on'`` on one device, an unknown mode, or a batch that does not divide over the mesh.
    """
    if mode not in CROSS_REPLICA_BN_MODES:
        raise ValueError(f"cross-replica BatchNorm: unknown mode {mode!r}; choose one of {CROSS_REPLICA_BN_MODES}")
    per_device = check_batch_size(batch_size, mesh)
    if mode == "on" and mesh.size == 1:
        raise ValueError("cross-replica BatchNorm 'on' needs several devices; this run has one")
    on = mode == "on" or (mode == "auto" and per_device < CROSS_REPLICA_BN_BELOW)
    return DATA_AXIS if on and mesh.size > 1 else None


def replicate(tree: PyTree, mesh: Mesh) -> PyTree:
    """``tree`` (the same values on every process) copied to every device of ``mesh``."""
    sharding = NamedSharding(mesh, P())

    def put(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(put(jax.random.key_data(x)), impl=jax.random.key_impl(x))
        return jax.make_array_from_process_local_data(sharding, np.asarray(x))

    return jax.tree.map(put, tree)


def shard_batch(batch: PyTree, mesh: Mesh) -> PyTree:
    """A step's global batch (host arrays) split along its first axis over the mesh's devices.

    Every process holds the same global batch (as :class:`ganjax.data.Batcher`
    makes it from the step) and puts only its own rows on its own devices:
    process ``i`` of ``P`` rows ``i*B/P`` to ``(i+1)*B/P`` of each ``B``-row array.

    Raises:
      ValueError: if ``B`` does not divide evenly over the mesh's devices.
    """
    sharding = NamedSharding(mesh, P(DATA_AXIS))
    process, count = jax.process_index(), jax.process_count()

    def put(x):
        check_batch_size(len(x), mesh)
        rows = len(x) // count
        return jax.make_array_from_process_local_data(
            sharding, np.asarray(x[process * rows : (process + 1) * rows]), x.shape
        )

    return jax.tree.map(put, batch)


def data_parallel(step_fn: Callable, mesh: Mesh, batches: int = 1) -> Callable:
    """``step_fn(state, batch, axis_name)`` on every device of ``mesh``, jitted once with the state donated.

    The state is replicated and every array of the batch is split along its
    first axis; the step gets ``axis_name='data'``, so gradients, metrics and
    BatchNorm statistics are averaged over the devices. For cross-replica
    BatchNorm, build the models with ``bn_axis_name='data'`` (see :func:`bn_axis_name`).

    Args:
      step_fn: a step of :func:`ganjax.training.phases.make_step`.
      mesh: a mesh with a ``'data'`` axis (:func:`make_mesh`).
      batches: how many real batches the batch holds one after another
        (:func:`ganjax.training.phases.batches_per_step`); each is split over the devices on its own.

    Returns:
      ``step(state, batch) -> (state, metrics)``, with the replicated state and
      metrics. It raises ValueError if the batch does not divide over the devices.
      On a one-device mesh it is the plain jitted step (no axis), so a run on one
      device is bit-for-bit what it is without this wrapper.
    """
    if mesh.size == 1:
        return jax.jit(lambda state, batch: step_fn(state, batch, None), donate_argnums=0)

    def per_device(state, batch):
        batch = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), batch)
        return step_fn(state, batch, DATA_AXIS)

    # The pmap model: without check_vma, gradients with respect to the replicated params stay per device
    # until the step's pmean (with it, their transpose would already sum them over devices).
    mapped = jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P(None, DATA_AXIS)), out_specs=P(), check_vma=False)

    def step(state, batch):
        for x in jax.tree.leaves(batch):
            check_batch_size(x.shape[0] // batches, mesh)
        return mapped(state, jax.tree.map(lambda x: x.reshape(batches, -1, *x.shape[1:]), batch))

    return jax.jit(step, donate_argnums=0)
