"""Layers and normalizations for GANs, as Flax linen modules."""

from ganjax.nn.attention import SelfAttention
from ganjax.nn.conv import Conv
from ganjax.nn.conv import ConvTranspose
from ganjax.nn.conv import conv
from ganjax.nn.conv import conv_transpose
from ganjax.nn.equalized import EqualizedConv
from ganjax.nn.equalized import EqualizedDense
from ganjax.nn.equalized import he_constant
from ganjax.nn.minibatch import MinibatchDiscrimination
from ganjax.nn.minibatch import MinibatchStdDev
from ganjax.nn.normalization import ConditionalBatchNorm
from ganjax.nn.normalization import InstanceNorm
from ganjax.nn.normalization import PixelNorm
from ganjax.nn.normalization import SelfModulatedBatchNorm
from ganjax.nn.normalization import SpectralConv
from ganjax.nn.normalization import SpectralDense
from ganjax.nn.normalization import VirtualBatchNorm
from ganjax.nn.resample import AvgPoolDown
from ganjax.nn.resample import NearestUpsampleConv
from ganjax.nn.resample import PixelShuffle
from ganjax.nn.resample import StridedConvDown
from ganjax.nn.resample import nearest_upsample
from ganjax.nn.resample import pixel_shuffle
from ganjax.nn.residual import ResBlockD
from ganjax.nn.residual import ResBlockG

__all__ = [
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
    "conv",
    "conv_transpose",
    "he_constant",
    "nearest_upsample",
    "pixel_shuffle",
]
