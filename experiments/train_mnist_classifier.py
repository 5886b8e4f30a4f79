"""Trains the MNIST feature network of "MNIST FID" and class coverage, and saves it with orbax.

Run::

  python -m experiments.train_mnist_classifier --out runs/mnist_classifier

The last ``test_size`` digits of the folder are held out; the rest train it
(:func:`ganjax.evaluation.train_classifier`: a player with one phase, the
cross-entropy on digits randomly shifted by up to ``shift`` pixels, Adam with a
cosine-decayed rate, run by the train loop). Prints the held-out accuracy and
writes it, with the config, to ``{out}/result.json``.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Sequence

from ganjax import data, evaluation, validate
from ganjax.evaluation import ClassifierTraining
from ganjax.evaluation import mnist_classifier as mc
from ganjax.run import Data, TrainingFailed, command, to_dict


@dataclasses.dataclass(frozen=True)
class Config:
    """Trains the MNIST classifier."""

    data: Data = Data()
    """labelled 28x28 grey digits: the embedded MNIST test set unless --data.dir or --data.tfds-name."""
    out: str = "runs/mnist_classifier"
    """where the classifier is saved."""
    training: ClassifierTraining = ClassifierTraining()
    min_accuracy: float = 0.9
    """the held-out accuracy below which the classifier is not saved and the run fails (a working run reaches
    about 0.98, docs/results.md)."""

    def __post_init__(self):
        validate.at_least(self, "min_accuracy", 0.0, 1.0)


def train(config: Config) -> dict:
    """Trains, saves and scores the classifier; returns and prints ``result.json``'s values."""
    if config.data.shape != (28, 28, 1):
        validate.refuse(
            config.data, "image_size", f"the MNIST classifier reads 28x28x1 digits, not {config.data.shape}"
        )
    digits = config.data.load()
    if digits.labels is None:
        raise data.DataError(f"{digits.name}: the classifier trains on labelled digits; these have no labels")
    if config.training.test_size >= len(digits):
        raise data.DataError(
            f"{digits.name}: holds {len(digits)} digits; training.test_size={config.training.test_size} leaves none"
        )
    train_set, test_set = digits.split(1.0 - config.training.test_size / len(digits))
    classifier = evaluation.train_classifier(config.training, train_set)
    learnt = evaluation.accuracy(classifier, test_set)
    if not learnt >= config.min_accuracy:
        raise TrainingFailed(
            f"held-out accuracy {learnt:.3f} is below min_accuracy {config.min_accuracy}: the classifier was not "
            f"saved (training.lr is {config.training.lr})"
        )
    out = mc.save_mnist_classifier(classifier, config.out)
    result = {
        "test_accuracy": evaluation.accuracy(mc.load_mnist_classifier(out), test_set),
        "train_size": len(train_set),
        "test_size": len(test_set),
        **to_dict(config),
    }
    (pathlib.Path(config.out) / "result.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result))
    return result


def main(argv: Sequence[str] | None = None) -> dict:
    return command(Config, train, argv)


if __name__ == "__main__":
    main()
