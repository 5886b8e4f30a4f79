"""Named settings of some parts of a config: ``--preset NAME``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection
from typing import Any, NamedTuple, TypeVar

from ganjax.run.parts import Optimizers, Schedule, StateOptions
from ganjax.training.objective import Objective

PyTree = Any
Config = TypeVar("Config")


def r3gan(config: Config) -> Config:
    """R3GAN (Huang et al. 2024): RpGAN, R1 + R2, Adam b1 0, gamma, lrs, b2 and EMA half-life cosine-annealed.

    The recipe of Huang, Gokaslan, Kuleshov and Tompkin 2024 (The GAN is dead;
    long live the GAN! A Modern GAN Baseline) on an image GAN's objective,
    optimizers and state: the relativistic pairing loss RpGAN
    (``objective.loss='relativistic'``, no label smoothing) with R1 on the reals and R2 on the fakes
    (``penalty='r1_r2'``), weighted ``gamma / 2`` with gamma annealed from 0.05 to
    0.005 (their CIFAR-10 values); Adam with b1 0 and b2 annealed from 0.9 to
    0.99; both learning rates annealed from 2e-4 to 5e-5; and G's EMA half-life
    raised from 0 to a tenth of the images the run shows G (``steps *
    batch_size / 10``); each with :func:`ganjax.optim.cosine_anneal` over the
    run's ``schedule.steps``.

    The final half-life is for MNIST-scale runs of a few thousand steps: a
    tenth of the run averages G over its last stretch (dcgan_mnist's 6,000
    steps of 32: 19,200 images, 600 steps, a decay of 0.9988 per step) without
    reaching back to its early weights, where a fixed half-life taken from
    long CIFAR-10 runs would be out of proportion with the run.
    The experiment's players stay its own (R3GAN's are normalization-free ResNets;
    the penalty scores D with its running BatchNorm statistics where D has them).

    The config needs the parts of :data:`PRESETS` ``['r3gan'].parts``.
    """
    steps, images = config.schedule.steps, config.schedule.steps * config.schedule.batch_size
    return dataclasses.replace(
        config,
        objective=dataclasses.replace(
            config.objective,
            loss="relativistic",
            d_labels="none",
            penalty="r1_r2",
            penalty_weight=0.05 / 2,
            penalty_weight_final=0.005 / 2,
            penalty_anneal_steps=steps,
        ),
        optim=dataclasses.replace(
            config.optim,
            g_optimizer="adam",
            d_optimizer="adam",
            lr_g=2e-4,
            lr_d=2e-4,
            lr_g_final=5e-5,
            lr_d_final=5e-5,
            b1=0.0,
            b2=0.9,
            b2_final=0.99,
            anneal_steps=steps,
        ),
        state=dataclasses.replace(config.state, ema_decay=0.0, ema_half_life=images / 10, ema_anneal_steps=steps),
    )


class Preset(NamedTuple):
    """A named setting of some parts of a config: ``apply(config) -> config``, for configs with ``parts``.

    ``spans`` names the fields (``part.field``) whose values ``apply`` takes from the config's run (its steps
    and batch): :meth:`follow` sets them for the run the command line asked for.
    """

    apply: Callable[[Config], Config]
    parts: dict[str, type]
    spans: tuple[str, ...] = ()

    def follow(self, config: Config, given: Collection[str]) -> Config:
        """``config`` with the fields of :attr:`spans` that no flag named (``given``: ``part.field`` names) set
        as :attr:`apply` sets them for ``config``'s own run."""
        spanned = self.apply(config)
        for name in self.spans:
            if name in given:
                continue
            part, field = name.split(".")
            value = getattr(getattr(spanned, part), field)
            config = dataclasses.replace(config, **{part: dataclasses.replace(getattr(config, part), **{field: value})})
        return config

    def missing(self, cls: type) -> tuple[str, type] | None:
        """The first ``(field, part)`` of ``parts`` that the config class lacks; None when it has them all."""
        defaults = {field.name: field.default for field in dataclasses.fields(cls)}
        return next(
            ((field, part) for field, part in self.parts.items() if not isinstance(defaults.get(field), part)), None
        )

    def check(self, name: str, cls: type) -> None:
        """Refuses a config class without one of the parts, naming the preset and the field."""
        lacking = self.missing(cls)
        if lacking is not None:
            field, part = lacking
            raise ValueError(f"{PRESET_FLAG} {name}: {cls.__name__}.{field}: the config has no {part.__name__} part")


# Named settings of an experiment's parts: ``--preset NAME`` before, after or among the flags, which apply on top.
PRESETS = {
    "r3gan": Preset(
        r3gan,
        {"objective": Objective, "optim": Optimizers, "state": StateOptions, "schedule": Schedule},
        ("objective.penalty_anneal_steps", "optim.anneal_steps", "state.ema_anneal_steps", "state.ema_half_life"),
    ),
}
PRESET_FLAG = "--preset"
