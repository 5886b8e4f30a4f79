"""Experience replay of past fakes for D, as a jit-friendly ring buffer.

D sees a share of its fake batch drawn from images G produced in earlier
steps, so G cannot win by hopping between modes D has forgotten (ganhacks
#8 "Use stability tricks from RL": experience replay; Pfau and Vinyals
2016, Connecting GANs and Actor-Critic Methods). CycleGAN's 50-image pool of
past fakes (Zhu et al. 2017, after Shrivastava et al. 2017) is this buffer with
capacity 50 and share 0.5.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from jax import lax

from ganjax import rng

Array = jax.Array


class ReplayBuffer(struct.PyTreeNode):
    """A FIFO ring buffer of ``capacity`` examples (arrays or pytrees) living in the train state.

    The one ring buffer of ganjax: replayed fakes, CycleGAN's pools and the
    past snapshots of the players (:mod:`ganjax.swaps`) are all this.

    Attributes:
      items: the storage, every leaf ``(capacity, *example_shape)``; slot ``i % capacity``
        holds the ``i``-th pushed example.
      count: how many examples were pushed in all (int32 scalar).
      share: the share of a fake batch that :func:`mix` replays from it (static).
    """

    items: Any
    count: Array
    share: float = struct.field(pytree_node=False, default=0.0)

    @classmethod
    def create(
        cls, capacity: int, example_shape: tuple[int, ...], dtype=jnp.float32, share: float = 0.0
    ) -> ReplayBuffer:
        """An empty buffer of array examples."""
        return cls.like(jax.ShapeDtypeStruct(example_shape, dtype), capacity, share)

    @classmethod
    def like(cls, example: Any, capacity: int, share: float = 0.0) -> ReplayBuffer:
        """An empty buffer for examples shaped like the pytree ``example``."""
        if capacity < 1:
            raise ValueError(f"ReplayBuffer: capacity must be at least 1, got {capacity}")
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"ReplayBuffer: share must be in [0, 1], got {share}")
        items = jax.tree.map(lambda a: jnp.zeros((capacity, *jnp.shape(a)), a.dtype), example)
        return cls(items=items, count=jnp.zeros((), jnp.int32), share=share)

    @property
    def capacity(self) -> int:
        return jax.tree.leaves(self.items)[0].shape[0]

    @property
    def size(self) -> Array:
        """How many examples are stored (at most ``capacity``)."""
        return jnp.minimum(self.count, self.capacity)

    def push(self, examples: Any) -> ReplayBuffer:
        """Stores a batch of examples, overwriting the oldest once full; keeps the newest if more than fit."""
        n = jax.tree.leaves(examples)[0].shape[0]
        kept = min(n, self.capacity)
        slots = (self.count + n - kept + jnp.arange(kept)) % self.capacity
        items = jax.tree.map(lambda s, a: s.at[slots].set(a[n - kept :].astype(s.dtype)), self.items, examples)
        return self.replace(items=items, count=self.count + n)

    def push_one(self, example: Any) -> ReplayBuffer:
        """Stores one example (a pytree without the batch axis)."""
        return self.push(jax.tree.map(lambda a: jnp.asarray(a)[None], example))

    def get(self, index: Array) -> Any:
        """The example in slot ``index``."""
        return jax.tree.map(lambda s: s[index], self.items)

    def sample(self, key: Array, n: int) -> Any:
        """``n`` stored examples drawn uniformly with replacement (zeros while the buffer is empty)."""
        return self.get(jax.random.randint(key, (n,), 0, jnp.maximum(self.size, 1)))


def mix(buffer: ReplayBuffer, key: Array, fresh: Array, share: float | None = None) -> Array:
    """``fresh`` with its first ``round(share * batch)`` examples replaced by replayed ones.

    ``share`` defaults to the buffer's own. The replaced count is exact every
    step, so the share holds; while the buffer is empty the fresh examples are
    kept. Fakes are i.i.d., so which positions are replaced does not matter.
    """
    share = buffer.share if share is None else share
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"replay share must be in [0, 1], got {share}")
    n = round(share * fresh.shape[0])
    if n == 0:
        return fresh
    replayed = jnp.where(buffer.size > 0, buffer.sample(key, n), fresh[:n])
    return fresh.at[:n].set(replayed)


def mix_and_push(
    pool: ReplayBuffer, key: jax.Array, fake: jax.Array, axis_name: str | None
) -> tuple[jax.Array, ReplayBuffer]:
    """D's fake batch with ``pool.share`` of it replayed, and the pool with this (global) batch pushed."""
    mixed = mix(pool, rng.device_key(key, axis_name), fake)
    pushed = fake if axis_name is None else lax.all_gather(fake, axis_name, tiled=True)
    return mixed, pool.push(pushed)
