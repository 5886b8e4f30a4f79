"""The configs of image GANs: the parts every one uses, and their class conditioning."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from ganjax import data
from ganjax.augment import Augmentation
from ganjax.evaluation.settings import ClassAccuracy
from ganjax.latent import Latent
from ganjax.noise import InputNoise
from ganjax.run.models import ConditionalModel
from ganjax.run.parts import BatchNormDevices, Data, GANSchedule, Monitor, Optimizers, Run, StateOptions
from ganjax.training import gan
from ganjax.training.objective import Conditioning, Objective
from ganjax.validate import at_least, refuse

PyTree = Any


@dataclasses.dataclass(frozen=True)
class ImageGAN:
    """The parts every image GAN experiment uses; an experiment adds its model (and changes defaults)."""

    data: Data = Data()
    latent: Latent = Latent()
    objective: Objective = Objective()
    noise: InputNoise = InputNoise()
    augment: Augmentation = Augmentation()
    optim: Optimizers = Optimizers()
    state: StateOptions = StateOptions()
    schedule: GANSchedule = GANSchedule()
    run: Run = Run()
    devices: BatchNormDevices = BatchNormDevices()
    monitor: Monitor = Monitor()

    def make_gan(self, conditioning: Conditioning | None = None) -> gan.GAN:
        """The objective these parts make (with ``conditioning`` for a class-conditional GAN)."""
        return gan.GAN(self.latent, self.objective, conditioning or Conditioning(), self.noise, self.augment)


@dataclasses.dataclass(frozen=True)
class UnconditionalGAN(ImageGAN):
    """An image GAN sampled from one fixed z into grids of ``num_samples`` images."""

    num_samples: int = 100
    """images in each sample grid (rows of 10)."""

    def __post_init__(self):
        at_least(self, "num_samples", 1)

    @property
    def conditioning(self) -> Conditioning:
        """The GAN's :class:`ganjax.training.objective.Conditioning`: none."""
        return Conditioning()

    @property
    def d_conditioning(self) -> str:
        """How D sees a class: not at all."""
        return "none"


@dataclasses.dataclass(frozen=True)
class ClassHead:
    """D's class head for an unconditional G: D also learns the classes of the labelled reals.

    ganhacks #12 ("if you have labels, use them"): the AC-GAN class head (Odena et al. 2017) on the reals alone, as the
    semi-supervised D of Salimans et al. 2016, so D's features separate the classes while G still draws from z
    alone; with ``entropy_weight`` G also takes CatGAN's term (Springenberg 2016,
    :func:`ganjax.losses.class_entropy_g_loss`). The data must carry labels.
    """

    weight: float = 0.0
    """weight of the class head's cross-entropy on the reals in D's loss (0: no head, and no labels needed)."""
    num_classes: int = 10
    """classes of the labels."""
    entropy_weight: float = 0.0
    """weight of CatGAN's term in G's loss: each sample one class by D's head, the batch spread over all."""

    def __post_init__(self):
        at_least(self, "weight", 0.0)
        at_least(self, "num_classes", 2)
        at_least(self, "entropy_weight", 0.0)
        if not self.weight:
            for field in ("num_classes", "entropy_weight"):
                if getattr(self, field) != ClassHead.__dataclass_fields__[field].default:
                    refuse(self, field, f"is {getattr(self, field)} with no class head: set weight > 0")

    @property
    def conditioning(self) -> Conditioning:
        """The GAN's :class:`ganjax.training.objective.Conditioning`: an unconditional G, and D's head if any."""
        if not self.weight:
            return Conditioning()
        return Conditioning(
            self.num_classes,
            aux_class_weight=self.weight,
            aux_fake_class_weight=0.0,
            conditional_g=False,
            class_entropy_weight=self.entropy_weight,
        )


@dataclasses.dataclass(frozen=True)
class Clusters:
    """G and D conditioned on balanced k-means clusters of the unlabelled data (:mod:`ganjax.clusters`).

    Sage et al. 2018, Liu et al. 2020: before training, the data's images (pixels in [0, 1]) are split into
    ``k`` clusters of equal size; G takes a cluster drawn uniformly beside z (so as often as the data holds it)
    and D sees the cluster of each image it scores, as a conditional GAN's players see the class. G learns each
    mode from its own code instead of passing through in-between images where its latent space crosses from
    one mode to the next. No labels are needed; the clusters are the run seed's.
    """

    k: int | None = 0
    """clusters (0: no clusters, an unconditional G and D; None: one per 200 images of the data, at most 50,
    none below 2)."""
    iterations: int = 20
    """k-means's most assignment steps."""
    d_conditioning: Literal["channels", "projection"] = "channels"
    """how D sees the cluster: extra image channels, or the projection of Miyato and Koyama 2018."""
    fake_classes: Literal["uniform", "reals"] = "uniform"
    """G's clusters in training: drawn uniformly, or the real batch's (one fake beside each real of its cluster)."""

    def __post_init__(self):
        if self.k:
            at_least(self, "k", 2)
        at_least(self, "iterations", 1)

    def refuse_unused(self, defaults: Clusters) -> None:
        """Refuses a field changed from ``defaults`` (an experiment's own) that no clusters (``k`` 0) would use."""
        if self.k == 0:
            for field in ("iterations", "d_conditioning", "fake_classes"):
                if getattr(self, field) != getattr(defaults, field):
                    refuse(self, field, f"is {getattr(self, field)!r} with no clusters: set k > 0")

    def for_images(self, count: int) -> Clusters:
        """These clusters with ``k`` None (as many as the data's size calls for) set for ``count`` images."""
        if self.k is not None:
            return self
        k = min(AUTO_MAX_CLUSTERS, count // AUTO_IMAGES_PER_CLUSTER)
        return dataclasses.replace(self, k=k if k >= 2 else 0)


AUTO_IMAGES_PER_CLUSTER, AUTO_MAX_CLUSTERS = 200, 50  # Clusters(k=None): 10,000 MNIST digits make 50 clusters


@dataclasses.dataclass(frozen=True)
class ClassHeadGAN(UnconditionalGAN):
    """An unconditional image GAN that may use classes: D's head on the reals' labels (:class:`ClassHead`), or
    both players conditioned on clusters of the data (:class:`Clusters`)."""

    class_head: ClassHead = ClassHead()
    clusters: Clusters = Clusters()

    def __post_init__(self):
        super().__post_init__()
        if self.clusters.k and self.class_head.weight:
            refuse(self.clusters, "k", "conditions on clusters, with class_head.weight > 0 on labels: choose one")
        self.clusters.refuse_unused(type(self).__dataclass_fields__["clusters"].default)

    @property
    def conditioning(self) -> Conditioning:
        """The GAN's :class:`ganjax.training.objective.Conditioning`: the clusters' or the class head's."""
        if self.clusters.k:
            return Conditioning(self.clusters.k, fake_classes=self.clusters.fake_classes)
        return self.class_head.conditioning

    @property
    def d_conditioning(self) -> str:
        """How D sees a class: the clusters' way, an AC-GAN head, or not at all."""
        if self.clusters.k:
            return self.clusters.d_conditioning
        return "auxiliary" if self.class_head.weight else "none"

    def make_gan(self, conditioning: Conditioning | None = None) -> gan.GAN:
        """The objective of these parts, with the class head's or the clusters' conditioning."""
        return super().make_gan(conditioning or self.conditioning)

    def resolved(self) -> ClassHeadGAN:
        """With ``clusters.k`` None, the clusters the data's size calls for (:meth:`Clusters.for_images`; none
        beside a class head)."""
        if self.clusters.k is not None:
            return self
        count = 0 if self.class_head.weight else data.native_count(self.data.source, self.data.split)
        return dataclasses.replace(self, clusters=self.clusters.for_images(count))


@dataclasses.dataclass(frozen=True)
class ConditionalGAN(ImageGAN):
    """The parts of a class-conditional image GAN."""

    model: ConditionalModel = ConditionalModel()
    conditioning: Conditioning = Conditioning(num_classes=10)
    class_accuracy: ClassAccuracy = ClassAccuracy()
    samples_per_class: int = 10
    """columns of the sample grid (row c is class c)."""

    def __post_init__(self):
        if (self.model.d_conditioning == "auxiliary") != (self.conditioning.aux_class_weight > 0):
            refuse(
                self.model,
                "d_conditioning",
                f"is {self.model.d_conditioning!r} with conditioning.aux_class_weight="
                f"{self.conditioning.aux_class_weight}: the AC-GAN D ('auxiliary') "
                "goes with a positive class-loss weight, and only it",
            )
        if not self.conditioning.num_classes:
            refuse(self.conditioning, "num_classes", "a conditional GAN needs classes")
        at_least(self, "samples_per_class", 1)
