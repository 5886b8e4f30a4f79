"""Mixed precision: the dtype a model computes in, its parameters and optimizer state staying float32.

A model built with ``dtype=jnp.bfloat16`` casts its input and runs its
activations, convolutions and matmuls in bfloat16, keeps its parameters (and
so its optimizer state) in float32, casting them at each use, computes its
normalization statistics in float32 (flax's ``force_float32_reductions``),
and returns float32, so losses and penalties stay float32: mixed-precision
training (Micikevicius et al. 2018) with bfloat16, whose float32 exponent range
needs no loss scaling (Kalamkar et al. 2019, A Study of BFLOAT16 for Deep
Learning Training).
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp

COMPUTE_DTYPES = ("auto", "float32", "bfloat16")
ComputeDtype = Literal[COMPUTE_DTYPES]


def compute_dtype(name: ComputeDtype, backend: str | None = None) -> jnp.dtype:
    """The dtype ``name`` means on ``backend`` (default: JAX's): ``'auto'`` is bfloat16 on GPU and TPU, float32 on CPU.

    Example::

        >>> compute_dtype("auto", "cpu"), compute_dtype("auto", "tpu")
        (dtype('float32'), dtype(bfloat16))

    Raises:
      ValueError: for a name not in :data:`COMPUTE_DTYPES`.
    """
    if name not in COMPUTE_DTYPES:
        raise ValueError(f"compute dtype: unknown name {name!r}; choose one of {list(COMPUTE_DTYPES)}")
    if name == "auto":
        name = "float32" if (backend or jax.default_backend()) == "cpu" else "bfloat16"
    return jnp.dtype(name)
