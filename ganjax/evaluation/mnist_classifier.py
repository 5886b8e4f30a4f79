"""A small MNIST conv net: its penultimate features give "MNIST FID", its logits class predictions.

Trained by ``python -m experiments.train_mnist_classifier``; saved as a folder
holding ``config.json`` (the :class:`ClassifierConfig`) and ``params/`` (an
orbax checkpoint of the Flax params). Inputs are NHWC float32 images in
[-1, 1], as :mod:`ganjax.data` and the generators produce.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from flax import struct

from ganjax.nn.resample import max_pool

CONFIG_FILE = "config.json"
PARAMS_DIR = "params"


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    """The architecture: conv widths (each conv 3x3, ReLU, 2x2 max-pool), feature width and class count."""

    conv_widths: tuple[int, ...] = (32, 64)
    feature_dim: int = 128
    num_classes: int = 10
    image_size: int = 28
    channels: int = 1

    @property
    def shape(self) -> tuple[int, int, int]:
        """The input images' ``(height, width, channels)``."""
        return self.image_size, self.image_size, self.channels


class MNISTClassifier(nn.Module):
    """Images ``(N, S, S, C)`` in [-1, 1] -> ``(logits (N, classes), features (N, feature_dim))``."""

    config: ClassifierConfig = ClassifierConfig()

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        c = self.config
        if x.ndim != 4 or x.shape[1:] != c.shape:
            raise ValueError(
                f"MNISTClassifier expects (N, {c.image_size}, {c.image_size}, {c.channels}), got {x.shape}"
            )
        for width in c.conv_widths:
            x = nn.relu(nn.Conv(width, (3, 3), padding="SAME")(x))
            x = max_pool(x, 2)
        features = nn.relu(nn.Dense(c.feature_dim)(x.reshape(x.shape[0], -1)))
        return nn.Dense(c.num_classes)(features), features


class Classifier(struct.PyTreeNode):
    """A trained classifier: its config (static) and params."""

    params: dict
    config: ClassifierConfig = struct.field(pytree_node=False)

    @property
    def module(self) -> MNISTClassifier:
        return MNISTClassifier(self.config)

    def _jitted(self, head: Callable[[jax.Array, jax.Array], jax.Array]) -> Callable[[jax.Array], jax.Array]:
        apply = jax.jit(lambda params, images: head(*self.module.apply({"params": params}, images)))
        return lambda images: apply(self.params, images)

    def feature_fn(self) -> Callable[[jax.Array], jax.Array]:
        """A jitted ``images -> penultimate features``, the feature network of "MNIST FID"."""
        return self._jitted(lambda logits, features: features)

    def class_fn(self) -> Callable[[jax.Array], jax.Array]:
        """A jitted ``images -> predicted class (N,)``."""
        return self._jitted(lambda logits, features: jnp.argmax(logits, -1))

    def probability_fn(self) -> Callable[[jax.Array], jax.Array]:
        """A jitted ``images -> class probabilities (N, num_classes)`` (softmax of the logits)."""
        return self._jitted(lambda logits, features: jax.nn.softmax(logits, -1))


def init(key: jax.Array, config: ClassifierConfig = ClassifierConfig()) -> Classifier:
    """A classifier with fresh params."""
    return Classifier(MNISTClassifier(config).init(key, jnp.zeros((1, *config.shape)))["params"], config)


def save_mnist_classifier(classifier: Classifier, path: str | pathlib.Path) -> pathlib.Path:
    """Writes ``{path}/config.json`` and the orbax checkpoint ``{path}/params``; returns ``path``."""
    path = pathlib.Path(path).absolute()
    path.mkdir(parents=True, exist_ok=True)
    (path / CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(classifier.config), indent=1))
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(path / PARAMS_DIR, classifier.params, force=True)
    return path


def saved_config(path: str | pathlib.Path) -> ClassifierConfig | None:
    """The config of the classifier saved in ``path``, or None when ``path`` is ``''`` or holds none (reads no params).

    The cheap check before :func:`load_mnist_classifier`: whether there is one, and for which images.
    """
    if not str(path):
        return None
    path = pathlib.Path(path).absolute()
    if not (path / CONFIG_FILE).is_file() or not (path / PARAMS_DIR).is_dir():
        return None
    raw = json.loads((path / CONFIG_FILE).read_text())
    return ClassifierConfig(**{**raw, "conv_widths": tuple(raw["conv_widths"])})


def load_mnist_classifier(path: str | pathlib.Path, image_shape: tuple[int, ...] | None = None) -> Classifier:
    """The classifier saved by :func:`save_mnist_classifier` in ``path``: the one way to load one.

    Args:
      path: the folder (``''`` names none).
      image_shape: the ``(height, width, channels)`` of the images it will read; None: any.

    Raises:
      FileNotFoundError: naming the folder and what is missing, if ``path`` holds no saved classifier.
      ValueError: naming the folder, if the classifier there reads other images than ``image_shape``.
    """
    if not str(path):
        raise FileNotFoundError("no MNIST classifier folder named (''); name the folder a classifier was saved in")
    config = saved_config(path)
    path = pathlib.Path(path).absolute()
    if config is None:
        raise FileNotFoundError(
            f"{path}: no saved MNIST classifier ({CONFIG_FILE} and {PARAMS_DIR}/ expected); "
            "train one with python -m experiments.train_mnist_classifier --out FOLDER"
        )
    if image_shape is not None and config.shape != tuple(image_shape):
        shape = lambda s: "x".join(str(n) for n in s)
        raise ValueError(
            f"{path}: the MNIST classifier there reads {shape(config.shape)} images, not {shape(image_shape)}"
        )
    abstract = jax.eval_shape(lambda: init(jax.random.key(0), config).params)
    with ocp.StandardCheckpointer() as checkpointer:
        params = checkpointer.restore(path / PARAMS_DIR, abstract)
    return Classifier(params, config)
