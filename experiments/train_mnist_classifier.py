"""Trains the MNIST feature network of "MNIST FID" and class coverage, and saves it with orbax.

Run::

  python -m experiments.train_mnist_classifier --data-dir ../shared/data/mnist --out runs/mnist_classifier

The last ``test_size`` digits of the folder are held out; the rest train it
with Adam and random shifts of up to 2 pixels. Prints the held-out accuracy and
writes it, with the config, to ``{out}/result.json``.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from experiments.common import parse_config
from ganjax import data
from ganjax.evaluation import mnist_classifier as mc


@dataclasses.dataclass
class ClassifierTrainConfig:
    """Trains the MNIST classifier."""

    data_dir: str = "../shared/data/mnist"
    out: str = "runs/mnist_classifier"
    test_size: int = 2000
    width: int = 32  # channels of the first conv; the second has twice as many
    feature_dim: int = 128
    steps: int = 1500
    batch_size: int = 128
    lr: float = 2e-3
    shift: int = 2
    seed: int = 0


def random_shift(key: jax.Array, images: jax.Array, shift: int) -> jax.Array:
    """Each image moved by an independent random offset in ``[-shift, shift]²`` (edges padded with -1)."""
    if shift == 0:
        return images
    padded = jnp.pad(images, ((0, 0), (shift, shift), (shift, shift), (0, 0)), constant_values=-1.0)
    offsets = jax.random.randint(key, (len(images), 2), 0, 2 * shift + 1)
    crop = lambda img, o: lax.dynamic_slice(img, (o[0], o[1], 0), images.shape[1:])
    return jax.vmap(crop)(padded, offsets)


def make_train_step(module: mc.MNISTClassifier, tx: optax.GradientTransformation, shift: int):
    """A jitted ``(params, opt_state, images, labels, key) -> (params, opt_state, loss)``."""

    def step(params, opt_state, images, labels, key):
        def loss_fn(p):
            logits, _ = module.apply({"params": p}, random_shift(key, images, shift))
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return jax.jit(step, donate_argnums=(0, 1))


def accuracy(classifier: mc.Classifier, dataset: data.ImageDataset, batch_size: int = 500) -> float:
    """The share of ``dataset`` that ``classifier`` labels correctly."""
    predict = classifier.class_fn()
    predictions = np.concatenate([np.asarray(predict(data.to_float(batch)))
                                  for batch in np.split(dataset.images, range(batch_size, len(dataset), batch_size))])
    return float(np.mean(predictions == dataset.labels))


def train(config: ClassifierTrainConfig, dataset: data.ImageDataset) -> mc.Classifier:
    """A classifier trained for ``config.steps`` on ``dataset`` (Adam, cosine-decayed learning rate)."""
    key = jax.random.key(config.seed)
    init_key, step_key = jax.random.split(key)
    classifier = mc.init(init_key, mc.ClassifierConfig(conv_widths=(config.width, 2 * config.width),
                                                        feature_dim=config.feature_dim))
    tx = optax.adam(optax.cosine_decay_schedule(config.lr, config.steps))
    step = make_train_step(classifier.module, tx, config.shift)
    params, opt_state = classifier.params, tx.init(classifier.params)
    batcher = data.Batcher(dataset, config.batch_size, config.seed)
    for i in range(config.steps):
        batch = batcher.batch(i)
        params, opt_state, _ = step(params, opt_state, batch["image"], batch["label"], jax.random.fold_in(step_key, i))
    return classifier.replace(params=params)


def main(argv: Sequence[str] | None = None) -> dict:
    config = parse_config(ClassifierTrainConfig, argv)
    digits = data.load_idx_folder(config.data_dir)
    train_set, test_set = digits.split(1.0 - config.test_size / len(digits))
    classifier = train(config, train_set)
    out = mc.save_mnist_classifier(classifier, config.out)
    result = {"test_accuracy": accuracy(mc.load_mnist_classifier(out), test_set), "train_size": len(train_set),
              "test_size": len(test_set), **dataclasses.asdict(config)}
    (pathlib.Path(config.out) / "result.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
