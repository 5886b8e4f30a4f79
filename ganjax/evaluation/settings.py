"""The evaluation parts of a run's config."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from ganjax.validate import at_least, folder_or_missing, refuse

PyTree = Any


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """Periodic evaluation of G (ganjax.evaluation.quality_hooks): FID, KID, precision/recall, density/coverage,
    collapse."""

    eval_every: int = 1000
    """steps between evaluations (0: none); the first one builds the evaluator, none runs before training."""
    eval_samples: int = 2000
    """samples per evaluation."""
    feature_network: Literal["auto", "mnist", "inception"] = "auto"
    """the features FID, KID, precision/recall and density/coverage compare: the MNIST classifier, InceptionV3 (with
    fid_weights), or auto: the classifier for 28x28x1 images, InceptionV3 for others."""
    classifier_dir: str = "runs/mnist_classifier"
    """the MNIST feature network (if missing, trained there on labelled 28x28x1 data beside the run, which waits for
    it at the first evaluation)."""
    fid_weights: str | None = None
    """InceptionV3 FID weights, the .npz of python -m ganjax.evaluation.inception convert
    pt_inception-2015-12-05-6726825d.pth OUT.npz; None: $GANJAX_FID_WEIGHTS if set."""

    def __post_init__(self):
        at_least(self, "eval_every", 0)
        at_least(self, "eval_samples", 2)
        folder_or_missing(self, "classifier_dir")


@dataclasses.dataclass(frozen=True)
class Diversity:
    """The mode-collapse signals alone (:func:`ganjax.evaluation.diversity_hooks`): duplicate_share and
    pairwise_distance_ratio of G's samples against real images in pixel space, which the monitor reads."""

    eval_every: int = 500
    """steps between evaluations (0: none); none runs before training; one runs at the last step."""
    eval_samples: int = 1000
    """samples per evaluation (at most 1,000; compared with up to 1,000 real images)."""

    def __post_init__(self):
        at_least(self, "eval_every", 0)
        at_least(self, "eval_samples", 2, 1000)


@dataclasses.dataclass(frozen=True)
class ClassAccuracy:
    """How often the MNIST classifier labels G's class-c samples c (skipped without a classifier for the images)."""

    classifier_dir: str = "runs/mnist_classifier"
    """the MNIST classifier (experiments.train_mnist_classifier); '' or a missing folder: no class accuracy."""
    eval_every: int = 1000
    """steps between checks, logged as class_accuracy_min and _mean, and class_readable_min and _mean, and with or
    without a classifier duplicate_share and pairwise_distance_ratio of eval_per_class samples per class (0: none)."""
    eval_per_class: int = 100
    """samples per class for each check."""
    final_eval_per_class: int = 1000
    """samples per class for class_accuracy.json at the end."""

    def __post_init__(self):
        for field in ("eval_every", "eval_per_class", "final_eval_per_class"):
            at_least(self, field, 0 if field == "eval_every" else 1)
        if self.classifier_dir:
            folder_or_missing(self, "classifier_dir")


@dataclasses.dataclass(frozen=True)
class ClassifierTraining:
    """How the MNIST classifier is trained: Adam with a cosine-decayed rate and random shifts."""

    test_size: int = 2000
    """the last digits of the folder, held out."""
    width: int = 32
    """channels of the first conv; the second has twice as many."""
    feature_dim: int = 128
    """size of the features that MNIST FID compares."""
    steps: int = 1500
    """train steps."""
    batch_size: int = 128
    """digits per step."""
    lr: float = 2e-3
    """Adam's initial learning rate."""
    shift: int = 2
    """random shifts of up to this many pixels."""
    seed: int = 0
    """seeds the init, the batches and the shifts."""

    def __post_init__(self):
        for field in ("test_size", "width", "feature_dim", "steps", "batch_size"):
            if getattr(self, field) < 1:
                refuse(self, field, f"must be at least 1, got {getattr(self, field)}")
        at_least(self, "shift", 0, 13)  # less than half the 28-pixel side
        at_least(self, "seed", 0)
        if not self.lr > 0:
            refuse(self, "lr", f"must be positive, got {self.lr}")
