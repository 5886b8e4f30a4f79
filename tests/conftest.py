"""Shared test fixtures: the real MNIST digits beside the checkout and a persistent JAX compile cache."""

import os
import pathlib

import jax
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
MNIST_DIR = ROOT.parent / "shared" / "data" / "mnist"

# Compiled steps are shared between test workers and runs.
jax.config.update("jax_compilation_cache_dir", os.environ.get("GANJAX_JAX_CACHE", str(ROOT / ".pytest_cache" / "jax")))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


@pytest.fixture(scope="session")
def mnist_dir() -> pathlib.Path:
    """The 10,000 real MNIST test digits in IDX format (``../shared/data/mnist``)."""
    if not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"MNIST IDX files not found in {MNIST_DIR}: tests expect ../shared/data/mnist beside the checkout")
    return MNIST_DIR


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    from ganjax import data

    return data.load_idx_folder(mnist_dir)
