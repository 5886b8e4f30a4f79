"""Layers and normalizations for GANs, as Flax linen modules."""

from ganjax.nn.attention import SelfAttention
from ganjax.nn.conv import Conv, ConvTranspose, conv, conv_transpose
from ganjax.nn.equalized import EqualizedConv, EqualizedDense, he_constant
from ganjax.nn.minibatch import MinibatchDiscrimination, MinibatchStdDev
from ganjax.nn.normalization import (
    ConditionalBatchNorm,
    InstanceNorm,
    PixelNorm,
    SelfModulatedBatchNorm,
    SpectralConv,
    SpectralDense,
    VirtualBatchNorm,
)
from ganjax.nn.precision import COMPUTE_DTYPES, compute_dtype
from ganjax.nn.resample import (
    AvgPoolDown,
    NearestUpsampleConv,
    PixelShuffle,
    StridedConvDown,
    max_pool,
    nearest_upsample,
    pixel_shuffle,
)
from ganjax.nn.residual import ResBlockD, ResBlockG

__all__ = [
    "COMPUTE_DTYPES",
    "AvgPoolDown",
    "ConditionalBatchNorm",
    "Conv",
    "ConvTranspose",
    "EqualizedConv",
    "EqualizedDense",
    "InstanceNorm",
    "MinibatchDiscrimination",
    "MinibatchStdDev",
    "NearestUpsampleConv",
    "PixelNorm",
    "PixelShuffle",
    "ResBlockD",
    "ResBlockG",
    "SelfAttention",
    "SelfModulatedBatchNorm",
    "SpectralConv",
    "SpectralDense",
    "StridedConvDown",
    "VirtualBatchNorm",
    "compute_dtype",
    "conv",
    "conv_transpose",
    "he_constant",
    "max_pool",
    "nearest_upsample",
    "pixel_shuffle",
]
