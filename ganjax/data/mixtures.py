"""2D Gaussian mixtures: the mode-coverage benchmarks of VEEGAN and PacGAN."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Mixture2D:
    """An equal-weight mixture of isotropic 2D Gaussians: ``means`` ``(K, 2)`` and one ``std``.

    The benchmarks of the VEEGAN (Srivastava et al. 2017) and PacGAN (Lin et al.
    2018) papers; see :func:`ring_mixture` and :func:`grid_mixture`.
    """

    name: str
    means: np.ndarray
    std: float

    def sample(self, key, n: int):
        """``n`` points ``(n, 2)`` float32: a uniform mode each, plus N(0, std²) noise. Jit-friendly."""
        import jax

        mode_key, noise_key = jax.random.split(key)
        modes = jax.random.randint(mode_key, (n,), 0, len(self.means))
        noise = self.std * jax.random.normal(noise_key, (n, 2))
        return jax.numpy.asarray(self.means, np.float32)[modes] + noise


def ring_mixture(n_modes: int = 8, radius: float = 1.0, std: float = 0.01) -> Mixture2D:
    """The ring of 8 Gaussians on the unit circle, std 0.01."""
    angles = 2 * np.pi * np.arange(n_modes) / n_modes
    means = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return Mixture2D("ring", means.astype(np.float32), std)


def grid_mixture(side: int = 5, spacing: float = 2.0, std: float = 0.05) -> Mixture2D:
    """The grid of 25 Gaussians with means {-4, -2, 0, 2, 4}², std 0.05."""
    ticks = spacing * (np.arange(side) - (side - 1) / 2)
    means = np.stack(np.meshgrid(ticks, ticks, indexing="ij"), axis=-1).reshape(-1, 2)
    return Mixture2D("grid", means.astype(np.float32), std)


MIXTURES = {"ring": ring_mixture, "grid": grid_mixture}
