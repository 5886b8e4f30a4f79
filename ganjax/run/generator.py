"""What a run samples: G, how to call it and how the run draws its grid's inputs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax

from ganjax.latent import Latent

PyTree = Any
CLASS_DRAW = 2  # fold_in data of the key a G that draws its classes draws them from (z takes the key itself)

Apply = Callable[[PyTree, tuple, jax.Array, int], jax.Array]


@dataclasses.dataclass(frozen=True, eq=False)
class Generator:
    """What sampling needs of an experiment's G; every experiment's ``generator(config)`` returns one.

    Attributes:
      module: G.
      draw: ``(key, n) -> G's first input for n images``, as the run draws it: z, or the images G translates.
      key: the key the run draws its sample grid's inputs from (and G's own noise or dropout, if any).
      num: images in the run's sample grid.
      nrow: images per row of the run's sample grid.
      labels: the class of each image of the run's grid, for a conditional G (taking them after z); else None.
      num_classes: the classes a conditional G knows (0: unconditional).
      draws_classes: the classes are part of G's latent (clusters of the data): the grid, and any draw that
        names no classes, gives each image a class drawn uniformly with the key, as the run drew them.
      latent: z's size and distribution (for interpolation paths); None when G takes no z.
      player: G's name in the state's players and moving averages.
      apply: ``(variables, inputs, key, step) -> images`` in [-1, 1], NHWC, of G at checkpoint ``step``;
        None: ``module.apply(variables, *inputs, train=False)``.
    """

    module: nn.Module
    draw: Callable[[jax.Array, int], jax.Array]
    key: jax.Array
    num: int
    nrow: int
    labels: jax.Array | None = None
    num_classes: int = 0
    draws_classes: bool = False
    latent: Latent | None = None
    player: str = "g"
    apply: Apply | None = None

    def grid(self, key: jax.Array) -> tuple[jax.Array, ...]:
        """G's inputs for the run's sample grid drawn from ``key`` (the run's own with :attr:`key`)."""
        if self.draws_classes:
            return self.inputs(key, self.num)
        first = self.draw(key, self.num)
        return (first,) if self.labels is None else (first, self.labels)

    def inputs(self, key: jax.Array, n: int) -> tuple[jax.Array, ...]:
        """G's inputs for ``n`` images drawn from ``key``: z, and a class each when :attr:`draws_classes`."""
        z = self.draw(key, n)
        if not self.draws_classes:
            return (z,)
        return z, jax.random.randint(jax.random.fold_in(key, CLASS_DRAW), (n,), 0, self.num_classes)

    def __call__(self, variables: PyTree, inputs: tuple, key: jax.Array, step: int) -> jax.Array:
        """G's images for ``inputs`` with ``variables`` (``params`` and any ``batch_stats``)."""
        if self.apply is not None:
            return self.apply(variables, inputs, key, step)
        return self.module.apply(variables, *inputs, train=False)
