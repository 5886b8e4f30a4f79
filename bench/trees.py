"""What the benches share: whether two variants ended at the same numbers."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np


def equal_bit_for_bit(*trees: Any) -> bool:
    """Whether ``trees`` have one structure and equal leaves, bit for bit.

    >>> equal_bit_for_bit({"w": np.zeros(2)}, {"w": np.zeros(2)}, {"w": np.ones(2)})
    False
    """
    first = trees[0]
    return all(
        jax.tree.structure(tree) == jax.tree.structure(first)
        and all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(tree), strict=True))
        for tree in trees[1:]
    )
