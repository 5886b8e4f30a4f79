"""The 2D Gaussian-mixture samplers, their mode metrics on hand-made samples, and the MLP players."""

import jax
import numpy as np
import pytest

from ganjax import data
from ganjax.evaluation import metrics
from ganjax.models import mlp


def test_ring_means_and_std():
    ring = data.ring_mixture()
    assert ring.means.shape == (8, 2) and ring.std == 0.01
    np.testing.assert_allclose(np.linalg.norm(ring.means, axis=1), 1.0, rtol=1e-6)
    angles = np.sort(np.mod(np.arctan2(ring.means[:, 1], ring.means[:, 0]), 2 * np.pi))
    np.testing.assert_allclose(np.diff(angles), np.pi / 4, rtol=1e-5)


def test_grid_means_and_std():
    grid = data.grid_mixture()
    assert grid.std == 0.05
    assert {tuple(m) for m in grid.means.tolist()} == {(x, y) for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)}


@pytest.mark.parametrize("make", [data.ring_mixture, data.grid_mixture])
def test_sampler_statistics(make):
    mixture = make()
    x = np.asarray(mixture.sample(jax.random.key(0), 20000))
    assert x.shape == (20000, 2) and x.dtype == np.float32
    nearest = np.argmin(((x[:, None] - mixture.means[None]) ** 2).sum(-1), axis=1)
    counts = np.bincount(nearest, minlength=len(mixture.means))
    expected = len(x) / len(mixture.means)
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))  # uniform over modes
    residual = x - mixture.means[nearest]
    np.testing.assert_allclose(residual.std(0), mixture.std, rtol=0.05)
    np.testing.assert_allclose(residual.mean(0), 0.0, atol=5 * mixture.std / np.sqrt(len(x)))


def test_sampler_is_a_pure_function_of_its_key():
    ring = data.ring_mixture()
    a, b, c = (np.asarray(ring.sample(k, 100)) for k in (jax.random.key(1), jax.random.key(1), jax.random.key(2)))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_mode_metrics_of_real_samples():
    grid = data.grid_mixture()
    got = metrics.mixture_metrics(grid.sample(jax.random.key(3), 2500), grid.means, grid.std)
    assert got["modes"] == 25
    assert got["high_quality"] > 0.98  # 3 std in 2D holds 98.9%
    assert got["mode_kl"] < 0.01


def test_mode_metrics_on_hand_made_samples():
    ring = data.ring_mixture()
    m = ring.means
    samples = np.concatenate(
        [
            np.repeat(m[:2], 10, axis=0),  # 20 exact samples on modes 0 and 1
            m[2:3] + [[0.02, 0.0]],  # 1 sample within 3 std of mode 2
            m[3:4] + [[0.05, 0.0]] * 4,  # 4 samples near mode 3 but 5 std away: low quality
            np.zeros((5, 2)) + [[0.0, 0.001]],  # 5 at the centre, nearest to mode 2 (90 degrees), far from it
        ]
    )
    got = metrics.mixture_metrics(samples, m, ring.std)
    assert got["modes"] == 3
    assert got["high_quality"] == pytest.approx(21 / 30)
    counts = np.array([10, 10, 6, 4, 0, 0, 0, 0]) / 30
    nz = counts > 0
    assert got["mode_kl"] == pytest.approx(np.sum(counts[nz] * np.log(counts[nz] * 8)))


def test_mode_kl_of_one_mode_is_log_k():
    grid = data.grid_mixture()
    got = metrics.mixture_metrics(np.zeros((100, 2)), grid.means, grid.std)
    assert got == {"modes": 1, "high_quality": 1.0, "mode_kl": pytest.approx(np.log(25))}


def test_mlp_players_shapes():
    g, d = mlp.Generator(latent_dim=3, hidden=(16, 16)), mlp.Discriminator(hidden=(16,))
    z = jax.random.normal(jax.random.key(0), (5, 3))
    points = g.apply(g.init(jax.random.key(1), z), z)
    logits = d.apply(d.init(jax.random.key(2), points), points)
    assert points.shape == (5, 2) and logits.shape == (5,)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        g.apply(g.init(jax.random.key(1), z), z[:, :2])
