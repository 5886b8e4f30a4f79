"""The model parts of the image GAN configs: the options of the DCGAN players and of the conditional ones (the
recipes build the players from them, :mod:`ganjax.run.recipes`)."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from ganjax.models import dcgan
from ganjax.nn import precision
from ganjax.validate import at_least, known_dtype, refuse

PyTree = Any


@dataclasses.dataclass(frozen=True)
class DCGANModel:
    """The DCGAN G and D (ganjax.models.dcgan) and their options."""

    g_width: int = 64
    """channels of G's last hidden layer (doubling towards its input)."""
    d_width: int = 64
    """channels of D's first layer (doubling with depth)."""
    g_norm: Literal[dcgan.G_NORMS] = "batch"
    """G's normalization."""
    d_norm: Literal[dcgan.D_NORMS] = "batch"
    """D's normalization ('none' for a critic with a per-example penalty)."""
    upsampling: Literal[dcgan.UPSAMPLINGS] = "transposed"
    """G's 2x upsampling layers."""
    g_activation: Literal[tuple(dcgan.ACTIVATIONS)] = "relu"
    """G's hidden activation."""
    g_noise_std: float = 0.0
    """Gaussian noise after every hidden layer of G in training (EBGAN)."""
    g_dropout: float = 0.0
    """dropout in G, kept on at generation time (pix2pix: 0.5)."""
    compute_dtype: precision.ComputeDtype = "auto"
    """G's and D's activations and convolutions: float32, bfloat16 (params, optimizer state, losses and
    BatchNorm statistics stay float32), or auto: bfloat16 on GPU and TPU, float32 on CPU."""

    def __post_init__(self):
        for field in ("g_width", "d_width"):
            at_least(self, field, 1)
        at_least(self, "g_noise_std", 0.0)
        if not 0.0 <= self.g_dropout < 1.0:
            refuse(self, "g_dropout", f"must be in [0, 1), got {self.g_dropout}")
        known_dtype(self, "compute_dtype")


@dataclasses.dataclass(frozen=True)
class ConditionalModel:
    """The conditional DCGAN G and D (ganjax.models.conditional): G embeds the class beside z."""

    d_conditioning: Literal["channels", "projection", "auxiliary"] = "channels"
    """how D sees the class: extra image channels, the projection of Miyato and Koyama 2018, or an AC-GAN class
    head ('auxiliary', with conditioning.aux_class_weight > 0)."""
    g_embed_dim: int = 10
    """size of G's class embedding."""
    d_embed_dim: int = 4
    """size of D's class embedding (channels)."""
    g_width: int = 32
    """channels of G's last hidden layer."""
    d_width: int = 32
    """channels of D's first layer."""
    g_norm: Literal[dcgan.G_NORMS] = "batch"
    """G's normalization."""
    d_norm: Literal[dcgan.D_NORMS] = "batch"
    """D's normalization."""
    compute_dtype: precision.ComputeDtype = "auto"
    """G's and D's activations and convolutions: float32, bfloat16 (params, optimizer state, losses and
    BatchNorm statistics stay float32), or auto: bfloat16 on GPU and TPU, float32 on CPU."""

    def __post_init__(self):
        for field in ("g_embed_dim", "d_embed_dim", "g_width", "d_width"):
            at_least(self, field, 1)
        known_dtype(self, "compute_dtype")
