"""VGG-19's convolutional features (Simonyan and Zisserman 2015), for the losses of neural style transfer.

:class:`VGG19` maps RGB images in [0, 1] (normalized inside with the ImageNet
mean and std, as torchvision's weights expect) to the ReLU outputs of its 16
convolutions, named ``conv{block}_{index}`` (``conv1_1`` ... ``conv5_4``), with
2x2 max pooling between blocks. It stops at the deepest layer asked for.

Weights file: an ``.npz`` with, for every layer name ``L`` above, ``L/kernel``
``(3, 3, C_in, C_out)`` (HWIO) and ``L/bias`` ``(C_out,)``, 32 arrays in all.
Source: torchvision's ImageNet VGG-19 (``IMAGENET1K_V1``), converted once with
:func:`from_torchvision` where torch is installed::

    import numpy as np, torchvision
    from ganjax.style import vgg
    features = torchvision.models.vgg19(weights="IMAGENET1K_V1").features.state_dict()
    np.savez("vgg19.npz", **vgg.from_torchvision({k: v.numpy() for k, v in features.items()}))

and read with :func:`load_npz`.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ganjax.nn.conv import Conv

BLOCKS = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))
"""(channels, convolutions) of VGG-19's five blocks."""

LAYERS = tuple(f"conv{b + 1}_{i + 1}" for b, (_, n) in enumerate(BLOCKS) for i in range(n))
"""The 16 layer names, input to output."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _torchvision_indices() -> dict[str, int]:
    """Layer name -> index of its conv in torchvision's ``vgg19().features`` (ReLUs and pools in between)."""
    index, out = 0, {}
    for b, (_, n) in enumerate(BLOCKS):
        for i in range(n):
            out[f"conv{b + 1}_{i + 1}"] = index
            index += 2  # conv, ReLU
        index += 1  # max pool
    return out


class VGG19(nn.Module):
    """RGB images ``(N, H, W, 3)`` in [0, 1] -> ``{layer: ReLU output}`` for the layers in ``outputs``.

    Attributes:
      outputs: layer names (of :data:`LAYERS`) to return.
      width: channels of the first block (64 for the real network; smaller for tests).
    """

    outputs: Sequence[str] = LAYERS
    width: int = 64

    @nn.compact
    def __call__(self, images: jax.Array) -> dict[str, jax.Array]:
        unknown = set(self.outputs) - set(LAYERS)
        if unknown:
            raise ValueError(f"VGG19: unknown layers {sorted(unknown)}; choose from {LAYERS}")
        last = max(LAYERS.index(name) for name in self.outputs)
        x = (images - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)
        features = {}
        for b, (channels, n) in enumerate(BLOCKS):
            if b:
                x = nn.max_pool(x, (2, 2), strides=(2, 2))
            for i in range(n):
                name = f"conv{b + 1}_{i + 1}"
                x = nn.relu(Conv(channels * self.width // 64, (3, 3), name=name)(x))
                if name in self.outputs:
                    features[name] = x
                if LAYERS.index(name) == last:
                    return features
        return features


def from_torchvision(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """torchvision ``vgg19().features.state_dict()`` (as numpy) -> the ``.npz`` layout of this module.

    Kernels go from ``(C_out, C_in, kh, kw)`` to HWIO.
    """
    out = {}
    for name, index in _torchvision_indices().items():
        out[f"{name}/kernel"] = np.asarray(state_dict[f"{index}.weight"]).transpose(2, 3, 1, 0)
        out[f"{name}/bias"] = np.asarray(state_dict[f"{index}.bias"])
    return out


class WeightsError(ValueError):
    """A weights file that is not VGG-19's."""


def load_npz(path: str | pathlib.Path) -> dict:
    """VGG-19's params from an ``.npz`` of the layout in this module's docstring.

    Raises:
      WeightsError: naming the file, when it is not an ``.npz`` or lacks an array (naming the first one missing).
    """
    try:
        arrays = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise WeightsError(f"{path}: not an .npz of VGG-19 weights ({e})") from e
    if not isinstance(arrays, np.lib.npyio.NpzFile):
        raise WeightsError(f"{path}: a single array, not an .npz of VGG-19 weights")
    with arrays:
        missing = [f"{name}/{part}" for name in LAYERS for part in ("kernel", "bias") if f"{name}/{part}" not in arrays]
        if missing:
            raise WeightsError(f"{path}: missing {missing[0]} (and {len(missing) - 1} more); see ganjax.style.vgg")
        return {name: {part: jnp.asarray(arrays[f"{name}/{part}"]) for part in ("kernel", "bias")} for name in LAYERS}
