"""What an image GAN's players minimise: the :class:`Objective` (loss pair, D's labels, penalty and how
often it runs, G's target, packing) and the :class:`Conditioning` on classes.

Both are parts of :class:`ganjax.training.gan.GAN`, plain frozen values checked when made: a field that
does not fit the others is refused naming ``Part.field`` (:mod:`ganjax.validate`).

Example::

    objective = Objective(loss="wasserstein", penalty="wgan_gp", penalty_weight=10.0)
    conditioning = Conditioning(num_classes=10, aux_class_weight=1.0)  # AC-GAN
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Literal

import jax

from ganjax import labels, losses, optim, penalties
from ganjax.validate import in_range, one_of, refuse, traced

G_OBJECTIVES = ("adversarial", "feature_matching")


@dataclasses.dataclass(frozen=True)
class Objective:
    """What D and G minimise.

    Attributes:
      loss: the loss pair, a key of :data:`ganjax.losses.LOSSES`.
      d_labels: D's targets, a key of :data:`ganjax.labels.LABELS` (only for losses that take labels).
      label_flip_prob: probability of flipping each of D's targets.
      real_label: the real target of ``d_labels='one_sided'`` (0.9 in Salimans et al. 2016).
      penalty: ``'none'`` or a key of :data:`ganjax.penalties.PENALTIES`.
      penalty_weight: the penalty's weight in D's loss (at step 0 when annealed).
      penalty_weight_final: anneal the weight with a cosine from ``penalty_weight`` to this
        over ``penalty_anneal_steps`` steps (:func:`ganjax.optim.cosine_anneal`; R3GAN,
        Huang et al. 2024: gamma / 2 from 0.025 to 0.0025 on CIFAR-10); None: constant.
      penalty_anneal_steps: the steps of that cosine (0 with no final weight).
      penalty_every: lazy regularization (Karras et al. 2020, StyleGAN2): the penalty
        is its own phase every ``penalty_every`` steps, its weight times ``penalty_every``;
        1 adds it to D's main loss.
      g_objective: ``'adversarial'`` (G fools D through ``loss``) or ``'feature_matching'``
        (G matches D's mean hidden features on reals, Salimans et al. 2016; D must sow them).
      packing: PacGAN (Lin et al. 2018): D judges packs of ``packing`` samples, each batch
        packed along channels by :func:`ganjax.packing.pack` in both phases and in the penalty; 1 is off.
    """

    loss: Literal[tuple(losses.LOSSES)] = "non_saturating"
    d_labels: Literal[tuple(labels.LABELS)] = "none"
    label_flip_prob: float = 0.0
    real_label: float = 0.9
    penalty: Literal[("none", *penalties.PENALTIES)] = "none"
    penalty_weight: float = 0.0
    penalty_weight_final: float | None = None
    penalty_anneal_steps: int = 0
    penalty_every: int = 1
    g_objective: Literal[G_OBJECTIVES] = "adversarial"
    packing: int = 1

    def __post_init__(self):
        one_of(self, "loss", losses.LOSSES)
        one_of(self, "d_labels", labels.LABELS)
        one_of(self, "penalty", {"none": None, **penalties.PENALTIES})
        one_of(self, "g_objective", G_OBJECTIVES)
        in_range(self, "label_flip_prob", 0.0, 1.0)
        in_range(self, "real_label", 0.0, 1.0)
        if not traced(self.real_label) and self.real_label != 0.9 and self.d_labels != "one_sided":
            refuse(self, "real_label", f"is {self.real_label}: it is the real target of d_labels 'one_sided' only")
        in_range(self, "penalty_weight", 0.0)
        in_range(self, "penalty_every", 1)
        in_range(self, "packing", 1)
        if not isinstance(self.packing, int):
            refuse(self, "packing", f"must be a whole number of samples, got {self.packing!r}")
        if not self.pair.uses_labels:
            if self.d_labels != "none":
                refuse(self, "d_labels", f"{self.d_labels!r} needs a loss that takes labels; {self.loss!r} takes none")
            if traced(self.label_flip_prob) or self.label_flip_prob:
                refuse(self, "label_flip_prob", f"flipping needs a loss that takes labels; {self.loss!r} takes none")
        if not traced(self.penalty_weight) and (self.penalty == "none") != (self.penalty_weight == 0):
            refuse(
                self, "penalty_weight", f"is {self.penalty_weight} with penalty {self.penalty!r}: set both or neither"
            )
        if self.penalty == "none" and self.penalty_every != 1:
            refuse(self, "penalty_every", f"is {self.penalty_every} with no penalty")
        in_range(self, "penalty_anneal_steps", 0)
        if self.penalty_weight_final is None:
            if self.penalty_anneal_steps:
                refuse(self, "penalty_anneal_steps", f"is {self.penalty_anneal_steps} with no penalty_weight_final")
        else:
            in_range(self, "penalty_weight_final", 0.0)
            if self.penalty == "none":
                refuse(self, "penalty_weight_final", "anneals the penalty's weight: choose a penalty")
            if not self.penalty_anneal_steps:
                refuse(self, "penalty_weight_final", "needs penalty_anneal_steps, the steps it anneals over")

    @property
    def pair(self) -> losses.LossPair:
        return losses.LOSSES[self.loss]

    @property
    def least_d_loss(self) -> float:
        """The least D loss that D's targets allow (:func:`ganjax.losses.least_d_loss`), 0 for a loss without
        labels (a Wasserstein critic's is unbounded below): with one-sided smoothing a D that wins outright stops
        at 0.325, not at 0."""
        if not self.pair.uses_labels or (self.d_labels == "none" and not self.label_flip_prob):
            return 0.0  # hard targets, which every loss meets as D's logits grow
        return _least_d_loss(self.loss, self.d_labels, float(self.label_flip_prob), float(self.real_label))

    def penalty_weight_at(self, step: jax.Array) -> jax.Array | float:
        """The penalty's weight at ``step`` (traced in the step): constant, or annealed to ``penalty_weight_final``."""
        if self.penalty_weight_final is None:
            return self.penalty_weight
        return optim.cosine_anneal(self.penalty_weight, self.penalty_weight_final, self.penalty_anneal_steps)(step)


@functools.cache
def _least_d_loss(loss: str, scheme: str, flip_prob: float, real_label: float) -> float:
    """:attr:`Objective.least_d_loss` over 4,096 targets of each side, computed once per objective."""
    draw = functools.partial(labels.d_labels, scheme=scheme, flip_prob=flip_prob, real_label=real_label)
    return losses.least_d_loss(losses.LOSSES[loss].d, *draw(jax.random.key(0), (4096,)))


@dataclasses.dataclass(frozen=True)
class Conditioning:
    """Class conditioning: batches then carry ``'label'`` and G takes ``(z, labels)``.

    Attributes:
      num_classes: 0 for an unconditional GAN.
      aux_class_weight: weight of the AC-GAN class loss (Odena et al. 2017): D then
        returns ``(logit, class_logits)`` and takes no labels; at 0 a conditional D takes the labels.
      aux_fake_class_weight: weight of the fakes' term in D's class loss (1: Odena et
        al.'s loss; 0: D learns classes from reals only).
      conditional_g: whether G takes a drawn class. False: an unconditional G beside
        an AC-GAN D that learns the classes from the labelled reals alone (ganhacks
        trick 16, "use labels"; the semi-supervised D of Salimans et al. 2016);
        the batches still carry ``'label'``, and G's samples come from z alone.
      class_entropy_weight: weight of G's CatGAN term with an unconditional G
        (:func:`ganjax.losses.class_entropy_g_loss`, Springenberg 2016): each
        sample one class by D's class head, the batch spread over all of them.
      fake_classes: how a conditional G's classes are drawn in training:
        ``'uniform'``, or ``'reals'``, the real batch's own labels, so that the
        i-th fake has the i-th real's class and a penalty's interpolate between
        them (WGAN-GP's, Gulrajani et al. 2017) joins two images of one class
        scored as that class.
    """

    num_classes: int = 0
    aux_class_weight: float = 0.0
    aux_fake_class_weight: float = 1.0
    conditional_g: bool = True
    class_entropy_weight: float = 0.0
    fake_classes: Literal["uniform", "reals"] = "uniform"

    def __post_init__(self):
        for field in ("num_classes", "aux_class_weight", "aux_fake_class_weight", "class_entropy_weight"):
            in_range(self, field, 0.0)
        if self.aux_class_weight and not self.num_classes:
            refuse(self, "aux_class_weight", "the AC-GAN class loss needs num_classes > 0")
        if not self.conditional_g and self.num_classes:
            if not self.aux_class_weight:
                refuse(
                    self,
                    "conditional_g",
                    "an unconditional G uses the labels through D's class head only: set aux_class_weight > 0",
                )
            if self.aux_fake_class_weight:
                refuse(
                    self,
                    "aux_fake_class_weight",
                    f"is {self.aux_fake_class_weight} with conditional_g False: "
                    "an unconditional G's fakes have no class to learn; set it to 0",
                )
        if (traced(self.class_entropy_weight) or self.class_entropy_weight) and self.conditional_g:
            refuse(self, "class_entropy_weight", "is G's class term without a drawn class: set conditional_g False")
        if self.fake_classes not in ("uniform", "reals"):
            refuse(self, "fake_classes", f"is {self.fake_classes!r}, not 'uniform' or 'reals'")
        if self.fake_classes != "uniform" and not self.g_takes_labels:
            refuse(self, "fake_classes", f"is {self.fake_classes!r}, but G takes no class")

    @property
    def g_takes_labels(self) -> bool:
        """Whether G is called with a drawn class."""
        return bool(self.num_classes) and self.conditional_g

    @property
    def g_classes(self) -> int:
        """The classes G draws from (0: G takes no class)."""
        return self.num_classes if self.g_takes_labels else 0

    @property
    def d_takes_labels(self) -> bool:
        """Whether D is called with the class labels (a conditional GAN that is not an AC-GAN)."""
        return bool(self.num_classes) and not self.aux_class_weight
