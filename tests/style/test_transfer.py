"""ganjax.style, ganjax.style.vgg and experiments.style_transfer, with small random VGG weights (no network access)."""

import json

import jax
import numpy as np
import optax
import pytest
from PIL import Image

from experiments import style_transfer as experiment
from ganjax.style import transfer, vgg

CONFIG = transfer.StyleConfig(
    content_layers=("conv2_2",), style_layers=("conv1_1", "conv2_1", "conv3_1"), style_weight=10.0
)
NETWORK = vgg.VGG19(outputs=CONFIG.layers, width=8)


def _images(key, shape=(1, 16, 16, 3)):
    return jax.random.uniform(key, shape)


def test_style_loss_equals_a_numpy_gram_reference():
    keys = jax.random.split(jax.random.key(0), 4)
    features = {"a": jax.random.normal(keys[0], (1, 5, 6, 4)), "b": jax.random.normal(keys[1], (1, 3, 3, 7))}
    style_features = {"a": jax.random.normal(keys[2], (1, 8, 4, 4)), "b": jax.random.normal(keys[3], (1, 2, 5, 7))}

    def np_gram(f):
        flat = np.asarray(f, np.float64)[0].reshape(-1, f.shape[-1])
        return flat.T @ flat / flat.shape[0]

    expected = np.mean([np.mean((np_gram(features[layer]) - np_gram(style_features[layer])) ** 2) for layer in "ab"])
    grams = {layer: transfer.gram(style_features[layer]) for layer in "ab"}
    np.testing.assert_allclose(transfer.style_loss(features, grams), expected, rtol=1e-5)
    np.testing.assert_allclose(transfer.gram(features["a"])[0], np_gram(features["a"]), rtol=1e-5)


def test_vgg_layers_shapes_and_torchvision_conversion(tmp_path):
    network = vgg.VGG19(width=8)
    x = _images(jax.random.key(0), (2, 32, 32, 3))
    params = network.init(jax.random.key(1), x)["params"]
    features = network.apply({"params": params}, x)
    assert list(features) == list(vgg.LAYERS)
    assert features["conv1_2"].shape == (2, 32, 32, 8) and features["conv5_4"].shape == (2, 2, 2, 64)
    indices = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]  # convs of torchvision's vgg19().features
    torch_layout = {}
    for name, index in zip(vgg.LAYERS, indices):
        torch_layout[f"{index}.weight"] = np.asarray(params[name]["kernel"]).transpose(3, 2, 0, 1)
        torch_layout[f"{index}.bias"] = np.asarray(params[name]["bias"])
    np.savez(tmp_path / "vgg19.npz", **vgg.from_torchvision(torch_layout))
    loaded = vgg.load_npz(tmp_path / "vgg19.npz")
    jax.tree.map(np.testing.assert_array_equal, loaded, params)
    np.savez(tmp_path / "partial.npz", **{"conv1_1/kernel": np.zeros((3, 3, 3, 64))})
    with pytest.raises(vgg.WeightsError, match="missing conv1_1/bias"):
        vgg.load_npz(tmp_path / "partial.npz")


@pytest.mark.parametrize("tx", [optax.adam(0.05), optax.lbfgs()], ids=["adam", "lbfgs"])
def test_optimising_the_image_lowers_the_total_loss(tx):
    content, style_image = _images(jax.random.key(0)), _images(jax.random.key(1), (1, 20, 20, 3))
    params = NETWORK.init(jax.random.key(2), content)["params"]
    features_fn = lambda images: NETWORK.apply({"params": params}, images)
    run = jax.jit(transfer.transfer, static_argnums=(0, 3, 4, 5))
    image, history = run(features_fn, content, style_image, CONFIG, tx, 10)
    assert history["total"].shape == (10,) and float(history["total"][-1]) < float(history["total"][0])
    assert float(history["content"][0]) == 0.0  # it starts at the content image
    assert image.shape == content.shape and float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    final = transfer.losses(image, features_fn, transfer.targets(features_fn, content, style_image, CONFIG), CONFIG)
    assert float(final["total"]) < float(history["total"][0])


def test_experiment_writes_the_image_and_losses(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("content", "style"):
        Image.fromarray(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(tmp_path / f"{name}.png")
    output = tmp_path / "out" / "styled.png"
    experiment.main(
        [
            "--content",
            str(tmp_path / "content.png"),
            "--style",
            str(tmp_path / "style.png"),
            "--output",
            str(output),
            "--size",
            "16",
            "--steps",
            "4",
            "--vgg-width",
            "8",
            "--optimizer",
            "adam",
        ]
    )
    assert Image.open(output).size == (13, 16)
    losses = json.loads(output.with_suffix(".losses.json").read_text())
    assert len(losses["total"]) == 4
