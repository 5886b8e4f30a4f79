"""Conditional DCGAN on MNIST: ``python -m experiments.cgan_mnist [--data-dir ../shared/data/mnist] [--field v ...]``.

G takes the digit through a small embedding concatenated with z; D takes it as
extra image channels (``--conditioning channels``, the default), through the
projection of Miyato and Koyama 2018 (``--conditioning projection``), or
predicts it with a class head (``--conditioning auxiliary --aux-class-weight 1``,
the AC-GAN of ``experiments.acgan_mnist``); see :mod:`ganjax.models.conditional`.
Past-opponent swaps (:mod:`ganjax.swaps`) are on with ``--swap-every N --swap-duration M``.

Writes under ``--workdir``: ``samples/step_*.png`` (row ``r`` is digit ``r``, one
fixed z per column; EMA params when ``--ema-decay`` is set), ``samples.gif``, ``training.png``, ``metrics.jsonl``,
``tb/``, ``checkpoints/`` and, when the MNIST classifier is found in
``--classifier-dir``, ``class_accuracy.json``: per class ``c``, the share of
G's class-``c`` samples that the classifier labels ``c`` (also logged as
``class_accuracy_min`` every ``eval_every`` steps).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from experiments import common
from ganjax import swaps, train
from ganjax.training import devices as parallel
from ganjax.models import conditional
from ganjax.evaluation import mnist_classifier


@dataclasses.dataclass
class Config(common.GANConfig):
    """Conditional DCGAN on MNIST."""

    workdir: str = "runs/cgan_mnist"
    steps: int = 6000
    latent_dim: int = 64
    ema_decay: float = 0.999  # samples and class accuracy from the moving average of G
    num_classes: int = 10
    aux_class_weight: float = 0.0
    aux_fake_class_weight: float = 1.0
    conditioning: str = "channels"  # D: 'channels', 'projection' or 'auxiliary' (with aux_class_weight > 0)
    g_embed_dim: int = 10
    d_embed_dim: int = 4
    g_width: int = 32
    d_width: int = 32
    g_norm: str = "batch"
    d_norm: str = "batch"
    samples_per_class: int = 10  # columns of the sample grid
    classifier_dir: str = "runs/mnist_classifier"  # '' or a missing folder: no class accuracy
    eval_per_class: int = 100  # samples per class for the periodic check
    final_eval_per_class: int = 1000  # samples per class for class_accuracy.json
    swap_every: int = 0  # past-opponent swaps (ganjax.swaps); 0: off
    swap_duration: int = 0
    swap_history: int = 5
    swap_player: str = "d"


def create_state(config: Config, key: jax.Array, bn_axis_name: str | None = None) -> train.GANState:
    """The conditional G and D and their optimizers from ``key``."""
    if (config.conditioning == "auxiliary") != (config.aux_class_weight > 0):
        raise ValueError(f"conditioning={config.conditioning!r} with aux_class_weight={config.aux_class_weight}: "
                         "the AC-GAN D ('auxiliary') goes with a positive class-loss weight, and only it")
    generator = conditional.Generator(config.num_classes, config.g_embed_dim, config.image_size, config.channels,
                                      config.g_width, config.latent_dim, norm=config.g_norm, bn_axis_name=bn_axis_name)
    discriminator = conditional.Discriminator(config.conditioning, config.num_classes, config.d_embed_dim,
                                              config.image_size, config.d_width, config.d_norm, bn_axis_name)
    return common.gan_state(config, key, generator, discriminator)


def swap_config(config: Config) -> swaps.SwapConfig:
    return swaps.SwapConfig(every=config.swap_every, duration=config.swap_duration, history=config.swap_history,
                            swapped=config.swap_player)


def gan_state(state: train.GANState | swaps.SwapState) -> train.GANState:
    """The GAN state inside a swap state (or the state itself)."""
    return state.gan if isinstance(state, swaps.SwapState) else state


def per_class_accuracy(predictions, labels, num_classes: int) -> list[float]:
    """Per class ``c``: the share of the examples of label ``c`` that are predicted ``c``."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    return [float(np.mean(predictions[labels == c] == c)) for c in range(num_classes)]


def class_labels(num_classes: int, per_class: int) -> jax.Array:
    """``[0]*per_class + [1]*per_class + ...``: row ``c`` of a grid with ``per_class`` columns is class ``c``."""
    return jnp.repeat(jnp.arange(num_classes), per_class)


def sample_accuracy(state: train.GANState, classify, key: jax.Array, num_classes: int, per_class: int,
                    latent_dim: int, use_ema: bool = False, batch_size: int = 500) -> list[float]:
    """The classifier's per-class accuracy on ``per_class`` samples of each class from G (running statistics)."""
    labels = class_labels(num_classes, per_class)
    z = jax.random.normal(key, (len(labels), latent_dim))
    sample = jax.jit(functools.partial(train.generate, use_ema=use_ema))
    predictions = [np.asarray(classify(sample(state, z[i:i + batch_size], labels[i:i + batch_size])))
                   for i in range(0, len(labels), batch_size)]
    return per_class_accuracy(np.concatenate(predictions), labels, num_classes)


def load_classifier(config) -> mnist_classifier.Classifier | None:
    """The MNIST classifier in ``config.classifier_dir``, or None when there is none."""
    folder = pathlib.Path(config.classifier_dir) if config.classifier_dir else None
    if folder is None or not (folder / mnist_classifier.CONFIG_FILE).is_file():
        return None
    return mnist_classifier.load_mnist_classifier(folder)


def train_and_evaluate(config: Config) -> tuple[train.GANState, list[float] | None]:
    """Trains the conditional GAN; returns the final GAN state and the per-class accuracy (None without classifier)."""
    mesh = common.start(config)
    dataset = common.load_data(config)
    if dataset.labels is None:
        raise ValueError(f"{dataset.name}: a conditional GAN needs labelled data")
    init_key, sample_key, eval_key = jax.random.split(jax.random.key(config.seed), 3)
    state = create_state(config, init_key, parallel.bn_axis_name(config.cross_replica_bn, config.batch_size, mesh))
    step = parallel.data_parallel(train.train_step, mesh, common.step_config(config), stacked=config.n_critic)
    if config.swap_every:
        state = swaps.SwapState.create(state, swap_config(config))
        step = swaps.with_opponent_swaps(step, swap_config(config))
    labels = class_labels(config.num_classes, config.samples_per_class)
    fixed_z = jax.random.normal(sample_key, (len(labels), config.latent_dim))
    fixed = parallel.replicate((fixed_z, labels), mesh)
    sample = jax.jit(functools.partial(train.generate, use_ema=config.ema_decay > 0))
    writer = common.sample_writer(config, lambda s: sample(gan_state(s), *fixed), nrow=config.samples_per_class)
    classifier = load_classifier(config)
    accuracy = None if classifier is None else functools.partial(
        sample_accuracy, classify=classifier.class_fn(), num_classes=config.num_classes, latent_dim=config.latent_dim,
        use_ema=config.ema_decay > 0)

    def evaluate(state, step):
        shares = accuracy(gan_state(state), key=jax.random.fold_in(eval_key, step), per_class=config.eval_per_class)
        return {"class_accuracy_min": min(shares), "class_accuracy_mean": float(np.mean(shares))}

    state = common.fit(config, state, step, dataset, writer, evaluate if accuracy else None)
    common.write_animation(config)
    state = gan_state(state)
    if accuracy is None:
        return state, None
    shares = accuracy(state, key=eval_key, per_class=config.final_eval_per_class)
    if jax.process_index() == 0:
        result = {"per_class": shares, "min": min(shares), "mean": float(np.mean(shares)),
                  "samples_per_class": config.final_eval_per_class, "classifier_dir": config.classifier_dir}
        (pathlib.Path(config.workdir) / "class_accuracy.json").write_text(json.dumps(result, indent=1))
    return state, shares


def main(argv=None):
    train_and_evaluate(common.parse_config(Config, argv))


if __name__ == "__main__":
    main()
