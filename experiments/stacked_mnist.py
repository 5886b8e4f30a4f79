"""DCGAN on Stacked MNIST (1,000 modes): ``python -m experiments.stacked_mnist [--part.field value ...]``.

The mode-collapse benchmark of Metz et al. 2017, Srivastava et al. 2017 (VEEGAN) and
Lin et al. 2018 (PacGAN), see :mod:`ganjax.benchmarks.stacked_mnist`: a DCGAN trained
on 28x28x3 images whose channels are three random digits (of the embedded MNIST
digits, or the labelled IDX digits of ``--data.dir``). Every ``--evaluation.eval-every``
steps and at the end, ``--evaluation.eval-samples`` samples (26,000 in the papers) are
labelled channel by channel with the MNIST classifier in
``--evaluation.classifier-dir`` (trained there on the digits first if missing), and
``modes`` (of 1,000) and ``mode_kl`` (KL of the samples' mode distribution to the
uniform one) are logged to ``metrics.jsonl``; ``ema_modes`` and ``ema_mode_kl`` too
for the moving average of G when kept. At the same steps ``duplicate_share`` and
``pairwise_distance_ratio`` of up to 1,000 RGB samples against the stacked reals (``ema_`` too),
which the failure monitor's ``mode_collapse`` check reads. Writes what :mod:`experiments.dcgan_mnist` writes.
``python -m experiments.stacked_mnist table ROOT`` prints the mean ± std over seeds of
the runs ``ROOT/{setting}_{seed}``.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np

from ganjax import data, evaluation, validate
from ganjax.benchmarks import stacked_mnist
from ganjax.run import DCGANModel, DCGANRecipe, Evaluate, GANSchedule, Monitor, Run, UnconditionalGAN
from ganjax.run import main as run_main


@dataclasses.dataclass(frozen=True)
class StackedData:
    """Stacked MNIST images (28x28x3) built from labelled 28x28x1 digits."""

    dir: str | None = None
    """folder of labelled MNIST-format IDX digits; None: the embedded MNIST test set (10,000 digits)."""
    split: str | None = None
    """the IDX file prefix (e.g. 'train'); None: the folder's only split."""
    size: int = 60_000
    """stacked images to build."""
    seed: int = 0
    """seeds the draw of each image's three digits."""

    def __post_init__(self):
        validate.at_least(self, "size", 1)
        validate.at_least(self, "seed", 0, validate.SEED_MAX)

    image_size = 28
    channels = 3
    shape = (28, 28, 3)

    def digits(self) -> data.ImageDataset:
        """The digits the images are stacked from (and the classifier is trained on)."""
        return data.load(self.dir or str(data.PACKAGED_MNIST), split=self.split)

    def load(self) -> data.ImageDataset:
        return stacked_mnist.stacked_dataset(self.digits(), self.size, self.seed)


@dataclasses.dataclass(frozen=True)
class ModeEvaluation:
    """Modes and KL of G's samples, each channel labelled by the MNIST classifier."""

    eval_every: int = 2500
    """steps between evaluations (0: none, not even at the end)."""
    eval_samples: int = stacked_mnist.EVAL_SAMPLES
    """samples per evaluation (26,000 in the papers)."""
    classifier_dir: str = "runs/mnist_classifier"
    """the MNIST classifier (trained there on the digits at the first evaluation if missing)."""

    def __post_init__(self):
        validate.at_least(self, "eval_every", 0)
        validate.at_least(self, "eval_samples", 1)
        validate.folder_or_missing(self, "classifier_dir")


@dataclasses.dataclass(frozen=True)
class Config(UnconditionalGAN):
    """DCGAN on Stacked MNIST."""

    data: StackedData = StackedData()
    model: DCGANModel = DCGANModel()
    schedule: GANSchedule = GANSchedule(steps=20_000)
    run: Run = Run(workdir="runs/stacked_mnist")
    evaluation: ModeEvaluation = ModeEvaluation()
    monitor: Monitor = Monitor(max_grad_norm=250.0, baseline=800, warmup=1000)
    """The failure monitor; D's BatchNorm makes its gradient norm large in healthy runs, and D wins most batches
    of the first 1,000 steps while G's loss falls as it catches up (docs/monitor.md)."""


def evaluation_hooks(config: Config):
    """``dataset -> [Evaluate hook]`` logging ``modes`` and ``mode_kl`` of ``eval_samples`` of G's samples and,
    of the first 1,000 of the same samples, the mode-collapse signals against the stacked reals (and ``ema_`` of
    the same for the moving average, when kept): one :func:`experiments.evaluation.evaluator` with the modes as
    its extra metrics. The classifier comes at the first evaluation."""
    settings, batch = config.evaluation, config.schedule.batch_size
    draw, ema_stats = evaluation.samplers(config, batch)

    @functools.cache
    def classify():
        return evaluation.classifier_for(settings.classifier_dir, config.data.digits()).class_fn()

    def modes(images: np.ndarray) -> dict[str, float]:
        found = stacked_mnist.mode_metrics(stacked_mnist.classify_channels(classify(), images))
        return {"modes": found["modes"], "mode_kl": found["kl"]}

    def hooks(dataset: data.ImageDataset) -> list:
        if not settings.eval_every or jax.process_count() > 1:
            return []
        build = functools.cache(
            lambda: evaluation.evaluator(
                settings.eval_samples, dataset, None, draw, batch, config.run.seed, ema_stats, extra=modes
            )
        )
        return [Evaluate(settings.eval_every, lambda state, step: build()(state, step))]

    return hooks


class StackedRecipe(DCGANRecipe):
    """DCGAN on Stacked MNIST, evaluated by the modes of its samples."""

    def evaluations(self, config, dataset: data.ImageDataset) -> list:
        return evaluation_hooks(config)(dataset)


RECIPE = StackedRecipe()


# The columns of ``python -m experiments.stacked_mnist table ROOT``: metric, header and format.
TABLE_COLUMNS = (("modes", "modes (of 1,000)", ".1f"), ("mode_kl", "KL to uniform", ".3f"))


def main(argv=None):
    return run_main(RECIPE, Config, argv, TABLE_COLUMNS)


if __name__ == "__main__":
    main()
