"""Experience replay of past fakes for D, as a jit-friendly ring buffer.

D sees a share of its fake batch drawn from images G produced in earlier
steps, so G cannot win by hopping between modes D has forgotten (ganhacks
trick 7, "use stability tricks from RL: experience replay"; Pfau and Vinyals
2016, Connecting GANs and Actor-Critic Methods). CycleGAN's 50-image pool of
past fakes (Zhu et al. 2017, after Shrivastava et al. 2017) is this buffer with
capacity 50 and share 0.5.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

Array = jax.Array


class ReplayBuffer(struct.PyTreeNode):
    """A FIFO ring buffer of ``capacity`` examples living in the train state.

    Attributes:
      items: ``(capacity, *example_shape)`` storage; slot ``i % capacity`` holds the ``i``-th pushed example.
      count: how many examples were pushed in all (int32 scalar).
    """

    items: Array
    count: Array

    @classmethod
    def create(cls, capacity: int, example_shape: tuple[int, ...], dtype=jnp.float32) -> ReplayBuffer:
        """An empty buffer."""
        if capacity < 1:
            raise ValueError(f"ReplayBuffer: capacity must be at least 1, got {capacity}")
        return cls(items=jnp.zeros((capacity, *example_shape), dtype), count=jnp.zeros((), jnp.int32))

    @property
    def capacity(self) -> int:
        return self.items.shape[0]

    @property
    def size(self) -> Array:
        """How many examples are stored (at most ``capacity``)."""
        return jnp.minimum(self.count, self.capacity)

    def push(self, examples: Array) -> ReplayBuffer:
        """Stores ``examples`` (a batch), overwriting the oldest once full; keeps the newest if more than fit."""
        n = examples.shape[0]
        kept = examples[-self.capacity:]
        slots = (self.count + n - kept.shape[0] + jnp.arange(kept.shape[0])) % self.capacity
        return self.replace(items=self.items.at[slots].set(kept.astype(self.items.dtype)), count=self.count + n)

    def sample(self, key: Array, n: int) -> Array:
        """``n`` stored examples drawn uniformly with replacement (zeros while the buffer is empty)."""
        index = jax.random.randint(key, (n,), 0, jnp.maximum(self.size, 1))
        return self.items[index]


def mix(buffer: ReplayBuffer, key: Array, fresh: Array, share: float) -> Array:
    """``fresh`` with its first ``round(share * batch)`` examples replaced by replayed ones.

    The replaced count is exact every step, so the share holds; while the
    buffer is empty the fresh examples are kept. Fakes are i.i.d., so which
    positions are replaced does not matter.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"replay share must be in [0, 1], got {share}")
    n = int(round(share * fresh.shape[0]))
    if n == 0:
        return fresh
    replayed = jnp.where(buffer.size > 0, buffer.sample(key, n), fresh[:n])
    return fresh.at[:n].set(replayed)
