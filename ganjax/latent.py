"""Latent codes: samplers for z, G's input z as a GAN's part, and interpolation paths between codes.

Samplers have the signature ``(key, shape) -> z`` with the code on the last
axis; :class:`Latent` draws a batch's z from one of them, per device.
Interpolations act on the last axis and broadcast over the others.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp

from ganjax import rng
from ganjax.validate import in_range, one_of

Array = jax.Array
Shape = tuple[int, ...]


def gaussian(key: Array, shape: Shape) -> Array:
    """z ~ N(0, I): the default.

    References:
      ganhacks #3 "Use a spherical Z": sample from a gaussian distribution, not a uniform one.
    """
    return jax.random.normal(key, shape)


def uniform(key: Array, shape: Shape) -> Array:
    """z ~ U[-1, 1]^d. Available for comparison but discouraged: ganhacks #3 advises against it.

    References:
      ganhacks #3 "Use a spherical Z": "Dont sample from a Uniform distribution".
    """
    return jax.random.uniform(key, shape, minval=-1.0, maxval=1.0)


def spherical(key: Array, shape: Shape) -> Array:
    """z uniform on the sphere of radius ``sqrt(d)``, where a d-dim Gaussian code concentrates.

    References:
      White 2016, Sampling Generative Networks; ganhacks trick 3 "use a spherical Z".
    """
    z = jax.random.normal(key, shape)
    return z * jnp.sqrt(shape[-1]) / jnp.linalg.norm(z, axis=-1, keepdims=True)


LATENTS: dict[str, Callable[[Array, Shape], Array]] = {
    "gaussian": gaussian,
    "uniform": uniform,
    "spherical": spherical,
}


@dataclasses.dataclass(frozen=True)
class Latent:
    """G's input z.

    Attributes:
      dim: the size of z.
      distribution: z's distribution, a key of :data:`LATENTS`.
    """

    dim: int = 100
    distribution: Literal[tuple(LATENTS)] = "gaussian"

    def __post_init__(self):
        in_range(self, "dim", 1)
        one_of(self, "distribution", LATENTS)

    def sample(self, key: jax.Array, batch_size: int, axis_name: str | None = None) -> jax.Array:
        """This device's latents for a batch (see :func:`ganjax.rng.per_device`)."""
        return rng.per_device(LATENTS[self.distribution], key, (batch_size, self.dim), axis_name)


def lerp(z0: Array, z1: Array, t: Array | float) -> Array:
    """Straight-line interpolation ``(1 - t) z0 + t z1``; ``t`` broadcasts over the leading axes."""
    t = jnp.asarray(t)[..., None]
    return (1.0 - t) * z0 + t * z1


def slerp(z0: Array, z1: Array, t: Array | float, eps: float = 1e-6) -> Array:
    """Great-circle interpolation ``sin((1-t) w)/sin(w) z0 + sin(t w)/sin(w) z1``, ``w`` the angle between codes.

    Between codes of equal norm the path stays on their sphere. Where the codes
    are (anti)parallel, so that ``sin(w) < eps``, it falls back to :func:`lerp`.

    References:
      White 2016, Sampling Generative Networks; ganhacks trick 3 "interpolate
      via a great circle".
    """
    t = jnp.asarray(t)
    unit = lambda z: z / jnp.linalg.norm(z, axis=-1, keepdims=True)
    omega = jnp.arccos(jnp.clip(jnp.sum(unit(z0) * unit(z1), axis=-1, keepdims=True), -1.0, 1.0))
    sin_omega = jnp.sin(omega)
    degenerate = sin_omega < eps
    safe_sin = jnp.where(degenerate, 1.0, sin_omega)
    arc = (jnp.sin((1.0 - t[..., None]) * omega) * z0 + jnp.sin(t[..., None] * omega) * z1) / safe_sin
    return jnp.where(degenerate, lerp(z0, z1, t), arc)


INTERPOLATIONS: dict[str, Callable[..., Array]] = {"slerp": slerp, "lerp": lerp}


def path(codes: Array, num: int, method: str = "slerp") -> Array:
    """``num`` codes along the piecewise path through ``codes`` (``(..., K, d)`` -> ``(..., num, d)``).

    Positions are evenly spaced in segment units, so the path starts at the
    first code, ends at the last, and passes every code when ``K - 1`` divides
    ``num - 1``.
    """
    k = codes.shape[-2]
    s = jnp.linspace(0.0, k - 1.0, num)
    segment = jnp.clip(jnp.floor(s).astype(jnp.int32), 0, k - 2)
    return INTERPOLATIONS[method](codes[..., segment, :], codes[..., segment + 1, :], s - segment)


def interpolation_grid(
    key: Array,
    rows: int,
    cols: int,
    latent_dim: int,
    anchors: int = 2,
    method: str = "slerp",
    sampler: str = "gaussian",
) -> Array:
    """Latents for an interpolation figure: ``(rows, cols, latent_dim)``, each row a path through random codes.

    Each row draws ``anchors`` codes from ``LATENTS[sampler]`` and walks
    :func:`path` through them in ``cols`` steps. Feed
    ``grid.reshape(-1, latent_dim)`` to G and tile the images ``rows x cols``.
    """
    codes = LATENTS[sampler](key, (rows, anchors, latent_dim))
    return path(codes, cols, method)
