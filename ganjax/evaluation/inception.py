"""InceptionV3 as the FID feature network: images -> pool3 features (2048-d).

The architecture is pytorch-fid's ``FIDInceptionA/C/E`` variant of torchvision's
InceptionV3 (Szegedy et al. 2016), which reproduces the TensorFlow graph of the
original FID code (Heusel et al. 2017, ``pt_inception-2015-12-05``): BatchNorm
with eps 1e-3, average pools that do not count padding, and a max pool in the
last block. Images in [-1, 1] (1 or 3 channels) are resized bilinearly to
299x299, as pytorch-fid does.

Weights file format
-------------------
An ``.npz`` whose keys are ``'{collection}/{module path}/{name}'``:

* ``params/<block>/conv/kernel``: a conv kernel in HWIO layout;
* ``params/<block>/bn/scale`` and ``params/<block>/bn/bias``: BatchNorm gamma and beta;
* ``batch_stats/<block>/bn/mean`` and ``batch_stats/<block>/bn/var``: its running statistics;

where ``<block>`` is a torchvision name such as ``Conv2d_1a_3x3`` or
``Mixed_5b/branch1x1`` (94 convolutions, 470 arrays; :func:`weight_keys` lists them).

Getting the weights
-------------------
This machine has no network, so the weights must be fetched by the user:
download pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (:data:`TORCH_WEIGHTS_URL`,
the TensorFlow FID graph's weights ported to PyTorch) and convert it, without torch::

  python -m ganjax.evaluation.inception convert pt_inception-2015-12-05-6726825d.pth inception_fid.npz

(:func:`convert_torch_file`), then ``load_inception("inception_fid.npz")`` anywhere.
"""

from __future__ import annotations

import argparse
import pathlib
from collections.abc import Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from ganjax.evaluation.torch_files import read_torch_state_dict

FEATURE_DIM = 2048
INPUT_SIZE = 299
MIN_INPUT_SIZE = 75
TORCH_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
)
Padding = str | Sequence[tuple[int, int]]


class BasicConv(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 1e-3, running statistics) -> ReLU."""

    features: int
    kernel: tuple[int, int]
    strides: int = 1
    padding: Padding = "VALID"

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(self.features, self.kernel, self.strides, self.padding, use_bias=False, name="conv")(x)
        return nn.relu(nn.BatchNorm(use_running_average=True, epsilon=1e-3, name="bn")(x))


def _same(kernel: tuple[int, int]) -> list[tuple[int, int]]:
    return [(k // 2, k // 2) for k in kernel]


def _conv(name: str, features: int, kernel: tuple[int, int], strides: int = 1, padding: Padding | None = None):
    return BasicConv(features, kernel, strides, _same(kernel) if padding is None else padding, name=name)


def _avg_pool(x):
    return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


def _max_pool(x, strides: int = 2, padding: Padding = "VALID"):
    return nn.max_pool(x, (3, 3), (strides, strides), padding)


class InceptionA(nn.Module):
    pool_features: int

    @nn.compact
    def __call__(self, x):
        b1 = _conv("branch1x1", 64, (1, 1))(x)
        b5 = _conv("branch5x5_2", 64, (5, 5))(_conv("branch5x5_1", 48, (1, 1))(x))
        b3 = _conv("branch3x3dbl_1", 64, (1, 1))(x)
        b3 = _conv("branch3x3dbl_3", 96, (3, 3))(_conv("branch3x3dbl_2", 96, (3, 3))(b3))
        bp = _conv("branch_pool", self.pool_features, (1, 1))(_avg_pool(x))
        return jnp.concatenate([b1, b5, b3, bp], -1)


class InceptionB(nn.Module):
    @nn.compact
    def __call__(self, x):
        b3 = _conv("branch3x3", 384, (3, 3), 2, "VALID")(x)
        bd = _conv("branch3x3dbl_2", 96, (3, 3))(_conv("branch3x3dbl_1", 64, (1, 1))(x))
        bd = _conv("branch3x3dbl_3", 96, (3, 3), 2, "VALID")(bd)
        return jnp.concatenate([b3, bd, _max_pool(x)], -1)


class InceptionC(nn.Module):
    channels_7x7: int

    @nn.compact
    def __call__(self, x):
        c = self.channels_7x7
        b1 = _conv("branch1x1", 192, (1, 1))(x)
        b7 = _conv("branch7x7_1", c, (1, 1))(x)
        b7 = _conv("branch7x7_3", 192, (7, 1))(_conv("branch7x7_2", c, (1, 7))(b7))
        bd = _conv("branch7x7dbl_1", c, (1, 1))(x)
        for i, (features, kernel) in enumerate([(c, (7, 1)), (c, (1, 7)), (c, (7, 1)), (192, (1, 7))], start=2):
            bd = _conv(f"branch7x7dbl_{i}", features, kernel)(bd)
        bp = _conv("branch_pool", 192, (1, 1))(_avg_pool(x))
        return jnp.concatenate([b1, b7, bd, bp], -1)


class InceptionD(nn.Module):
    @nn.compact
    def __call__(self, x):
        b3 = _conv("branch3x3_2", 320, (3, 3), 2, "VALID")(_conv("branch3x3_1", 192, (1, 1))(x))
        b7 = _conv("branch7x7x3_1", 192, (1, 1))(x)
        b7 = _conv("branch7x7x3_3", 192, (7, 1))(_conv("branch7x7x3_2", 192, (1, 7))(b7))
        b7 = _conv("branch7x7x3_4", 192, (3, 3), 2, "VALID")(b7)
        return jnp.concatenate([b3, b7, _max_pool(x)], -1)


class InceptionE(nn.Module):
    """The last blocks; ``max_pool`` marks pytorch-fid's ``FIDInceptionE_2`` (Mixed_7c)."""

    max_pool: bool = False

    @nn.compact
    def __call__(self, x):
        b1 = _conv("branch1x1", 320, (1, 1))(x)
        b3 = _conv("branch3x3_1", 384, (1, 1))(x)
        b3 = jnp.concatenate([_conv("branch3x3_2a", 384, (1, 3))(b3), _conv("branch3x3_2b", 384, (3, 1))(b3)], -1)
        bd = _conv("branch3x3dbl_2", 384, (3, 3))(_conv("branch3x3dbl_1", 448, (1, 1))(x))
        bd = jnp.concatenate([_conv("branch3x3dbl_3a", 384, (1, 3))(bd), _conv("branch3x3dbl_3b", 384, (3, 1))(bd)], -1)
        pooled = _max_pool(x, 1, ((1, 1), (1, 1))) if self.max_pool else _avg_pool(x)
        bp = _conv("branch_pool", 192, (1, 1))(pooled)
        return jnp.concatenate([b1, b3, bd, bp], -1)


class InceptionV3(nn.Module):
    """Images ``(N, H, W, 1 or 3)`` in [-1, 1] -> pool3 features ``(N, 2048)``.

    Attributes:
      resize: side the images are resized to first (299 for FID); None feeds
        them as they are (at least 75x75), as the tests do to stay small.
    """

    resize: int | None = INPUT_SIZE

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim != 4 or x.shape[-1] not in (1, 3):
            raise ValueError(f"InceptionV3 expects NHWC images with 1 or 3 channels, got {x.shape}")
        if x.shape[-1] == 1:
            x = jnp.tile(x, (1, 1, 1, 3))
        if self.resize is not None:
            x = jax.image.resize(x, (x.shape[0], self.resize, self.resize, 3), "bilinear")
        if min(x.shape[1:3]) < MIN_INPUT_SIZE:
            raise ValueError(f"InceptionV3 needs inputs of at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE}, got {x.shape}")
        x = _conv("Conv2d_1a_3x3", 32, (3, 3), 2, "VALID")(x)
        x = _conv("Conv2d_2a_3x3", 32, (3, 3), 1, "VALID")(x)
        x = _max_pool(_conv("Conv2d_2b_3x3", 64, (3, 3))(x))
        x = _conv("Conv2d_3b_1x1", 80, (1, 1))(x)
        x = _max_pool(_conv("Conv2d_4a_3x3", 192, (3, 3), 1, "VALID")(x))
        for name, pool in (("Mixed_5b", 32), ("Mixed_5c", 64), ("Mixed_5d", 64)):
            x = InceptionA(pool, name=name)(x)
        x = InceptionB(name="Mixed_6a")(x)
        for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
            x = InceptionC(c7, name=name)(x)
        x = InceptionD(name="Mixed_7a")(x)
        x = InceptionE(name="Mixed_7b")(x)
        x = InceptionE(max_pool=True, name="Mixed_7c")(x)
        return jnp.mean(x, axis=(1, 2))


# ----------------------------------------------------------------------------- weights


def init_variables(key: jax.Array, module: InceptionV3 | None = None) -> dict:
    """Random variables (``params`` and ``batch_stats``) of the right shapes, e.g. for tests.

    Conv kernels are He-normal (one draw for all, split by shape), BatchNorm is
    the identity; the network is only traced for its shapes, never compiled.
    """
    module = module or InceptionV3()
    side = module.resize or MIN_INPUT_SIZE
    abstract = jax.eval_shape(module.init, key, jnp.zeros((1, side, side, 3)))
    flat = traverse_util.flatten_dict(abstract)
    kernels = [path for path in flat if path[-1] == "kernel"]
    sizes = [int(np.prod(flat[path].shape)) for path in kernels]
    noise = np.split(np.asarray(jax.random.normal(key, (sum(sizes),))), np.cumsum(sizes)[:-1])
    out = {
        path: np.full(leaf.shape, 1.0 if path[-1] in ("scale", "var") else 0.0, np.float32)
        for path, leaf in flat.items()
    }
    for path, draw in zip(kernels, noise):
        shape = flat[path].shape
        out[path] = draw.reshape(shape) * np.float32(np.sqrt(2.0 / np.prod(shape[:-1])))
    return traverse_util.unflatten_dict(out)


def weight_keys(variables: Mapping) -> list[str]:
    """The ``.npz`` keys of ``variables``: ``'{collection}/{module path}/{name}'``."""
    return ["/".join(path) for path in traverse_util.flatten_dict(variables)]


def save_weights(variables: Mapping, path: str | pathlib.Path) -> pathlib.Path:
    """Writes ``variables`` as the documented ``.npz``."""
    flat = {"/".join(k): np.asarray(v) for k, v in traverse_util.flatten_dict(variables).items()}
    path = pathlib.Path(path)
    np.savez(path, **flat)
    return path


def load_weights(path: str | pathlib.Path, module: InceptionV3 | None = None) -> dict:
    """The variables in the ``.npz`` at ``path``, checked key by key and shape by shape.

    Raises:
      FileNotFoundError: if there is no file (with where to get one).
      ValueError: naming missing, unexpected or mis-shaped keys.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no InceptionV3 weights file; convert pytorch-fid's with "
            "python -m ganjax.evaluation.inception convert pt_inception-2015-12-05-6726825d.pth OUT.npz "
            "(see ganjax/evaluation/inception.py)"
        )
    with np.load(path) as stored:
        arrays = {k: stored[k] for k in stored.files}
    check_weights(arrays, path, module)
    return traverse_util.unflatten_dict({tuple(k.split("/")): jnp.asarray(v, jnp.float32) for k, v in arrays.items()})


def check_weights(
    arrays: Mapping[str, np.ndarray], where: str | pathlib.Path, module: InceptionV3 | None = None
) -> None:
    """Refuses ``.npz`` arrays that are not ``module``'s variables, naming missing, unexpected or mis-shaped keys.

    Raises:
      ValueError: naming ``where`` and the keys.
    """
    module = module or InceptionV3()
    side = module.resize or MIN_INPUT_SIZE
    expected = traverse_util.flatten_dict(jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, side, side, 3))))
    expected = {"/".join(k): v.shape for k, v in expected.items()}
    missing, extra = sorted(set(expected) - set(arrays)), sorted(set(arrays) - set(expected))
    wrong = sorted(k for k in set(expected) & set(arrays) if arrays[k].shape != expected[k])
    if missing or extra or wrong:
        raise ValueError(
            f"{where}: not InceptionV3 FID weights: missing {missing[:5]}, unexpected {extra[:5]}, "
            f"wrong shape {[(k, arrays[k].shape, expected[k]) for k in wrong[:5]]}"
        )


_TORCH_NAMES = {
    "weight": ("params", "scale"),
    "bias": ("params", "bias"),
    "running_mean": ("batch_stats", "mean"),
    "running_var": ("batch_stats", "var"),
}


def convert_torch_state_dict(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """pytorch-fid's InceptionV3 state dict (NumPy arrays) -> the ``.npz`` arrays of :func:`load_weights`.

    ``X.conv.weight`` (OIHW) becomes ``params/X/conv/kernel`` (HWIO); ``X.bn.weight``,
    ``bias``, ``running_mean`` and ``running_var`` become ``scale``, ``bias``,
    ``mean`` and ``var``; ``fc.*`` and ``num_batches_tracked`` are dropped.

    Raises:
      ValueError: naming a key that is neither (a state dict of another network).
    """
    out = {}
    for name, value in state_dict.items():
        *module, leaf = name.split(".")
        value = np.asarray(value)
        if module[:1] == ["fc"] or leaf == "num_batches_tracked":
            continue
        block = "/".join(module)
        if module[-1:] == ["conv"] and leaf == "weight" and value.ndim == 4:
            out[f"params/{block}/kernel"] = np.transpose(value, (2, 3, 1, 0))
        elif module[-1:] == ["bn"] and leaf in _TORCH_NAMES:
            collection, new = _TORCH_NAMES[leaf]
            out[f"{collection}/{block}/{new}"] = value
        else:
            raise ValueError(f"{name} {value.shape}: not a parameter of pytorch-fid's InceptionV3")
    return out


def feature_fn(variables: Mapping, module: InceptionV3 | None = None) -> Callable[[jax.Array], jax.Array]:
    """Jitted pool3 features, ``images in [-1, 1] -> (N, 2048)``, for ``metrics.extract_features``."""
    apply = jax.jit((module or InceptionV3()).apply)
    return lambda images: apply(variables, images)


def load_inception(path: str | pathlib.Path, resize: int | None = INPUT_SIZE) -> Callable[[jax.Array], jax.Array]:
    """The FID feature function of the InceptionV3 weights in ``path`` (see the module docstring)."""
    module = InceptionV3(resize)
    return feature_fn(load_weights(path, module), module)


def convert_torch_file(pth: str | pathlib.Path, npz: str | pathlib.Path) -> pathlib.Path:
    """pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` -> the ``.npz`` of :func:`load_weights` at ``npz``.

    Needs no torch (:func:`ganjax.evaluation.torch_files.read_torch_state_dict`); the arrays are checked
    against the network before writing.

    Raises:
      FileNotFoundError: if ``pth`` is missing.
      ValueError: if it is not a torch state dict, or not pytorch-fid's InceptionV3.
    """
    pth, npz = pathlib.Path(pth), pathlib.Path(npz)
    if not pth.is_file():
        raise FileNotFoundError(f"{pth}: no such file; download it from {TORCH_WEIGHTS_URL}")
    state = read_torch_state_dict(pth)
    try:
        arrays = convert_torch_state_dict(state)
    except ValueError as e:
        raise ValueError(f"{pth}: {e}") from e
    check_weights(arrays, pth)
    npz.parent.mkdir(parents=True, exist_ok=True)
    with npz.open("wb") as f:
        np.savez(f, **arrays)
    return npz


def main(argv: Sequence[str] | None = None) -> pathlib.Path:
    """``python -m ganjax.evaluation.inception convert FILE.pth OUT.npz`` (:func:`convert_torch_file`).

    Exits with ``error: ...`` on a missing or unreadable file.
    """
    parser = argparse.ArgumentParser(prog="python -m ganjax.evaluation.inception", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser(
        "convert", help=f"pytorch-fid's weights ({TORCH_WEIGHTS_URL}) to the .npz load_inception reads; no torch needed"
    )
    convert.add_argument("pth", help="pt_inception-2015-12-05-6726825d.pth")
    convert.add_argument("npz", help="the .npz to write, e.g. inception_fid.npz")
    args = parser.parse_args(argv)
    try:
        return convert_torch_file(args.pth, args.npz)
    except (OSError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
