"""Shared test fixtures: the embedded MNIST digits and a persistent JAX compile cache."""

import os
import pathlib

import jax
import pytest

from ganjax.data import PACKAGED_MNIST

ROOT = pathlib.Path(__file__).resolve().parents[1]
MNIST_DIR = PACKAGED_MNIST

# Compiled steps are shared between test workers and runs.
jax.config.update("jax_compilation_cache_dir", os.environ.get("GANJAX_JAX_CACHE", str(ROOT / ".pytest_cache" / "jax")))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


@pytest.fixture(scope="session")
def mnist_dir() -> pathlib.Path:
    """The 10,000 real MNIST test digits in IDX format: the package's embedded copy."""
    return MNIST_DIR


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    from ganjax import data

    return data.load_idx_folder(mnist_dir)
