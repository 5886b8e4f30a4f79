"""Neural style transfer: ``python -m experiments.style_transfer --content A --style B --weights vgg19.npz``.

Gatys et al. 2016 (:mod:`ganjax.style.transfer`): the content image is repainted in the
style of the style image by optimising its pixels against VGG-19 features
(:mod:`ganjax.style.vgg`; its docstring says how to make ``vgg19.npz`` from
torchvision's weights). ``--optimizer lbfgs`` (default) or ``adam --lr 0.02``.
Without ``--weights`` the network keeps random weights (for smoke tests only:
the result is not a style transfer). Writes ``--output`` (a PNG) and, beside
it, ``<output>.losses.json`` (every loss before each update).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from PIL import Image

from ganjax import validate
from ganjax.run import command
from ganjax.style import transfer, vgg


@dataclasses.dataclass(frozen=True)
class Config:
    """Neural style transfer with VGG-19 features."""

    content: str
    """the image to repaint."""
    style: str
    """the image whose style it takes."""
    weights: str | None = None
    """.npz of VGG-19 (see ganjax.style.vgg); None: random weights (smoke tests only)."""
    output: str = "runs/style_transfer/output.png"
    """the PNG written; its losses go beside it."""
    size: int = 256
    """the longer side of both images."""
    steps: int = 200
    """optimizer updates of the pixels."""
    optimizer: Literal["lbfgs", "adam"] = "lbfgs"
    """L-BFGS or Adam."""
    lr: float | None = None
    """Adam's learning rate (None: 0.02); only with --optimizer adam."""
    content_weight: float = 1.0
    """weight of the content loss."""
    style_weight: float = 1e3
    """weight of the Gram style loss."""
    tv_weight: float = 1e-2
    """weight of the total-variation loss."""
    vgg_width: int = 64
    """VGG's base channels: 64 for real weights; smaller only for tests with random weights."""
    seed: int = 0
    """seeds the random weights when there are none."""

    def __post_init__(self):
        if self.lr is not None and self.optimizer != "adam":
            validate.refuse(self, "lr", f"is Adam's learning rate; the optimizer is {self.optimizer!r}")
        for field in ("size", "steps", "vgg_width"):
            validate.at_least(self, field, 1)
        for field in ("content_weight", "style_weight", "tv_weight"):
            validate.at_least(self, field, 0.0)
        validate.at_least(self, "seed", 0, validate.SEED_MAX)
        if self.lr is not None:
            validate.positive(self, "lr")
        output = pathlib.Path(self.output)
        if output.is_dir() or output.suffix.lower() not in Image.registered_extensions():
            validate.refuse(self, "output", f"{output} is not an image file name (e.g. output.png)")


def load_image(path: str, size: int) -> jax.Array:
    """An RGB image file as ``(1, H, W, 3)`` in [0, 1], resized so its longer side is ``size``."""
    image = Image.open(path).convert("RGB")
    scale = size / max(image.size)
    image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.LANCZOS)
    return jnp.asarray(np.asarray(image, np.float32) / 255.0)[None]


def optimizer(config: Config) -> optax.GradientTransformationExtraArgs:
    return optax.lbfgs() if config.optimizer == "lbfgs" else optax.adam(0.02 if config.lr is None else config.lr)


def run(config: Config) -> dict[str, np.ndarray]:
    """Transfers the style; writes the output image and the losses; returns the losses."""
    style_config = transfer.StyleConfig(
        content_weight=config.content_weight, style_weight=config.style_weight, tv_weight=config.tv_weight
    )
    network = vgg.VGG19(outputs=style_config.layers, width=config.vgg_width)
    content, style_image = load_image(config.content, config.size), load_image(config.style, config.size)
    if config.weights:
        params = vgg.load_npz(config.weights)
    else:
        print("style_transfer: no --weights, VGG-19 keeps random weights", file=sys.stderr)
        params = network.init(jax.random.key(config.seed), content)["params"]
    tx = optimizer(config)

    @jax.jit
    def repaint(params, content, style_image):  # the weights are an argument, not constants of the program
        features_fn = lambda images: network.apply({"params": params}, images)
        return transfer.transfer(features_fn, content, style_image, style_config, tx, config.steps)

    image, history = repaint(params, content, style_image)
    if not np.all(np.isfinite(np.asarray(image))):
        raise FloatingPointError(f"the image became NaN or Inf (final loss {history['total'][-1]}): lower --lr")
    output = pathlib.Path(config.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(jnp.round(image[0] * 255.0), np.uint8)).save(output)
    history = {name: np.asarray(values) for name, values in history.items()}
    output.with_suffix(".losses.json").write_text(json.dumps({k: v.tolist() for k, v in history.items()}))
    print(f"total loss {history['total'][0]:.4g} -> {history['total'][-1]:.4g}; wrote {output}")
    return history


def main(argv=None):
    return command(Config, run, argv)


if __name__ == "__main__":
    main()
