"""The recipes of GANs of one G and one D: :class:`GANRecipe` (any players), DCGAN's, and the conditional DCGAN's.

A user's own G and D train on the whole run machinery by subclassing
:class:`GANRecipe` and overriding :meth:`GANRecipe.models`; the config is an
image GAN config (:class:`ganjax.run.UnconditionalGAN` or one of its
variants), whose parts choose the objective, the optimizers, the state's
options, the schedule, the run folder, the devices and the monitor::

    class MyRecipe(ganjax.run.GANRecipe):
        def models(self, config, bn_axis_name=None):
            return MyG(), MyD()

    result = ganjax.run.train(MyRecipe(), ganjax.run.UnconditionalGAN(run=ganjax.run.Run(workdir="runs/mine")))
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax

from ganjax import clusters, data, evaluation, validate
from ganjax.models import conditional, dcgan
from ganjax.nn import precision
from ganjax.run.fitting import gan_state
from ganjax.run.generator import Generator
from ganjax.run.grids import write_interpolation
from ganjax.run.models import ConditionalModel, DCGANModel
from ganjax.run.parts import Data
from ganjax.run.recipe import Grid, data_parallel_step, run_keys
from ganjax.training import devices
from ganjax.training.gan import GAN, ema_stats, generate
from ganjax.training.loop import Hook
from ganjax.training.phases import Phase
from ganjax.training.state import TrainState

PyTree = Any
DROPOUT_DRAW = 1  # fold_in data of the sample key that G's always-on dropout draws from when sampling
CLUSTERS_KEY = 3  # fold_in data of the seed's key that the data's k-means clusters are drawn from


class GANRecipe:
    """The recipe of a GAN of one G and one D on images (:class:`ganjax.run.Recipe`); override :meth:`models`.

    The defaults: the GAN step's phases (:meth:`ganjax.training.gan.GAN.phases`) for the config's objective,
    D updated ``schedule.n_critic`` times a step; the config's data; an unconditional G whose grid of
    ``num_samples`` images comes from one fixed z; G's moving average sampled when the state keeps one, with
    BatchNorm statistics recomputed for it; MNIST FID and the other sample metrics when the config has an
    ``evaluation`` part (:func:`ganjax.evaluation.quality_hooks`); the failure monitor of its ``monitor`` part.
    """

    def models(self, config, bn_axis_name: str | None = None) -> tuple[nn.Module, nn.Module]:
        """``(G, D)``, called as ``G(z, train=...)`` (``G(z, classes, ...)`` when conditional) and
        ``D(images, train=...)``; BatchNorm synchronized over ``bn_axis_name`` (None: per device)."""
        raise NotImplementedError(f"{type(self).__name__}.models: say how to build G and D")

    def gan(self, config) -> GAN:
        """The GAN's objective."""
        return config.make_gan()

    def phases(self, config) -> tuple[Phase, ...]:
        return self.gan(config).phases(config.schedule.n_critic)

    def load(self, config) -> data.ImageDataset:
        return config.data.load()

    def training_data(self, config, dataset: data.ImageDataset) -> data.ImageDataset:
        """The loaded data, refused when the GAN needs labels it lacks or has fewer classes than it holds."""
        classes = self.gan(config).conditioning
        if not classes.num_classes:
            return dataset
        if dataset.labels is None:
            needs = "a conditional GAN needs" if classes.g_takes_labels else "D's class head needs"
            hint = "" if classes.g_takes_labels else "; --class-head.weight 0 trains without labels"
            raise data.DataError(
                f"{dataset.name}: {needs} labelled data (for an image folder: --data.folder-labels){hint}"
            )
        if dataset.labels.max() >= classes.num_classes:
            raise data.DataError(
                f"{dataset.name}: holds {dataset.labels.max() + 1} classes, but the config's num_classes is "
                f"{classes.num_classes}"
            )
        return dataset

    def example_shape(self, config) -> tuple[int, ...]:
        """D's input shape."""
        return config.data.shape

    def init(self, config, key: jax.Array, dataset: data.ImageDataset, bn_axis_name: str | None) -> TrainState:
        generator, discriminator = self.models(config, bn_axis_name)
        return gan_state(key, self.gan(config), generator, discriminator, self.example_shape(config), config)

    def step(self, config, phases: tuple[Phase, ...], mesh: jax.sharding.Mesh):
        return data_parallel_step(phases, mesh)

    def sampler(self, config):
        """``sample(state, *inputs) -> images`` (jitted): G's moving average when kept, with BatchNorm
        statistics recomputed for it from the sample key (as :mod:`ganjax.sample` recomputes them), else G."""
        use_ema, batch_size = config.state.keeps_ema, config.schedule.batch_size
        gan, key = self.gan(config), run_keys(config.run.seed).sample
        rngs = {"dropout": jax.random.fold_in(key, DROPOUT_DRAW)}

        def draw(state: TrainState, *inputs) -> jax.Array:
            g_classes = gan.conditioning.g_classes
            stats = ema_stats(state, key, gan.latent.sample, batch_size, g_classes) if use_ema else None
            return generate(state, *inputs, use_ema=use_ema, rngs=rngs, ema_stats=stats)

        return jax.jit(draw)

    def view(self, config, images: jax.Array) -> jax.Array:
        """G's output as the grid's images."""
        return images

    def grid(self, config, mesh: jax.sharding.Mesh, dataset: data.ImageDataset) -> Grid:
        g, sample = self.generator(config), self.sampler(config)
        fixed = devices.replicate(g.grid(g.key), mesh)
        viewed = lambda state, *inputs: self.view(config, sample(state, *inputs))
        return Grid(lambda state: viewed(state, *fixed), g.nrow, viewed)

    def generator(self, config) -> Generator:
        """An unconditional G; its grid is ``config.num_samples`` images, ten to a row, from the sample key;
        G's always-on dropout, if any, draws from ``fold_in`` of that key and :data:`DROPOUT_DRAW`."""
        module = self.models(config)[0]
        classes = self.gan(config).conditioning.g_classes
        return Generator(
            module,
            draw=config.latent.sample,
            key=run_keys(config.run.seed).sample,
            num=config.num_samples,
            nrow=10,
            num_classes=classes,
            draws_classes=bool(classes),
            latent=config.latent,
            apply=lambda variables, inputs, key, step: module.apply(
                variables, *inputs, train=False, rngs={"dropout": jax.random.fold_in(key, DROPOUT_DRAW)}
            ),
        )

    def evaluations(self, config, dataset: data.ImageDataset) -> Sequence[Hook]:
        if getattr(config, "evaluation", None) is None:
            return []
        return evaluation.quality_hooks(config)(dataset)

    def monitor(self, config):
        return config.monitor.build(self.gan(config).objective)

    def finish(self, config, state: TrainState, grid: Grid, dataset: data.ImageDataset) -> Mapping[str, Any]:
        """``interpolation.png``: great-circle paths between codes (a row per class for a G that takes one)."""
        classes = self.gan(config).conditioning.g_classes
        key = run_keys(config.run.seed).evaluation
        write_interpolation(config.run.workdir, state, grid.sample, key, config.latent, num_classes=classes)
        return {}


class DCGANRecipe(GANRecipe):
    """DCGAN's G and D (``config.model``: :class:`ganjax.run.DCGANModel`), unconditional, conditioned on
    k-means clusters of the data (``config.clusters``), or with D's class head (``config.class_head``)."""

    def models(self, config, bn_axis_name: str | None = None) -> tuple[nn.Module, nn.Module]:
        classes = self.gan(config).conditioning.num_classes
        return dcgan_players(config.model, config.data, config.latent.dim, bn_axis_name, classes, config.d_conditioning)

    def training_data(self, config, dataset: data.ImageDataset) -> data.ImageDataset:
        """The data labelled by ``config.clusters.k`` balanced k-means clusters of its images, when the config has
        them (:func:`ganjax.clusters.label_by_clusters`, from ``fold_in`` of the seed's key and
        :data:`CLUSTERS_KEY`)."""
        part = getattr(config, "clusters", None)
        if part is None or not part.k:
            return super().training_data(config, dataset)
        if part.k > len(dataset):
            validate.refuse(part, "k", f"is {part.k}, more clusters than {dataset.name}'s {len(dataset)} images")
        print(f"clustering {dataset.name}'s {len(dataset)} images into {part.k} clusters", file=sys.stderr, flush=True)
        key = jax.random.fold_in(jax.random.key(config.run.seed), CLUSTERS_KEY)
        return super().training_data(config, clusters.label_by_clusters(key, dataset, part.k, part.iterations))


class ConditionalRecipe(GANRecipe):
    """The class-conditional DCGAN (``config.model``: :class:`ganjax.run.ConditionalModel`): G takes the class,
    D sees it or predicts it (AC-GAN). The grid's row ``c`` is class ``c``; the class checks and
    ``class_accuracy.json`` read G's samples with the MNIST classifier; past-opponent swaps when the config
    has a ``swaps`` part that is on."""

    def models(self, config, bn_axis_name: str | None = None) -> tuple[nn.Module, nn.Module]:
        return conditional_players(
            config.model, config.data, config.latent.dim, config.conditioning.num_classes, bn_axis_name
        )

    def gan(self, config) -> GAN:
        return config.make_gan(config.conditioning)

    def init(self, config, key: jax.Array, dataset: data.ImageDataset, bn_axis_name: str | None) -> TrainState:
        state = super().init(config, key, dataset, bn_axis_name)
        swaps = getattr(config, "swaps", None)
        return swaps.prepare(state) if swaps is not None else state

    def step(self, config, phases: tuple[Phase, ...], mesh: jax.sharding.Mesh):
        step = super().step(config, phases, mesh)
        swaps = getattr(config, "swaps", None)
        return swaps.wrap(step) if swaps is not None else step

    def generator(self, config) -> Generator:
        """Row ``c`` of the grid is class ``c``, ``samples_per_class`` to a row, one z per image."""
        labels = evaluation.class_labels(config.conditioning.num_classes, config.samples_per_class)
        return Generator(
            self.models(config)[0],
            draw=config.latent.sample,
            key=run_keys(config.run.seed).sample,
            num=len(labels),
            nrow=config.samples_per_class,
            labels=labels,
            num_classes=config.conditioning.num_classes,
            latent=config.latent,
        )

    def evaluations(self, config, dataset: data.ImageDataset) -> Sequence[Hook]:
        return evaluation.conditional_hooks(config, run_keys(config.run.seed).evaluation)(dataset)

    def finish(self, config, state: TrainState, grid: Grid, dataset: data.ImageDataset) -> Mapping[str, Any]:
        """``class_accuracy.json`` (when the classifier is found); the per-class accuracy as ``class_accuracy``."""
        key = run_keys(config.run.seed).evaluation
        return {"class_accuracy": evaluation.write_class_accuracy(config, state, key)}


def dcgan_players(
    model: DCGANModel,
    images: Data,
    latent_dim: int,
    bn_axis_name: str | None = None,
    num_classes: int = 0,
    d_conditioning: str = "auxiliary",
):
    """DCGAN's ``(G, D)`` with ``model``'s options for the ``images`` part's shape; BatchNorm synchronized over
    ``bn_axis_name``. With ``num_classes``, D is :class:`ganjax.models.conditional.Discriminator` with
    ``d_conditioning``: an unconditional G beside an AC-GAN class head (``'auxiliary'``), or a G that takes the
    class (:class:`ganjax.models.conditional.Generator`) beside a D that sees it."""
    dtype = precision.compute_dtype(model.compute_dtype)
    layers = dict(
        norm=model.g_norm,
        upsampling=model.upsampling,
        activation=model.g_activation,
        noise_std=model.g_noise_std,
        dropout=model.g_dropout,
        bn_axis_name=bn_axis_name,
        dtype=dtype,
    )
    if num_classes and d_conditioning != "auxiliary":
        generator = conditional.Generator(
            num_classes,
            image_size=images.image_size,
            channels=images.channels,
            width=model.g_width,
            latent_dim=latent_dim,
            **layers,
        )
    else:
        generator = dcgan.Generator(images.image_size, images.channels, model.g_width, latent_dim, **layers)
    if num_classes:
        discriminator = conditional.Discriminator(
            conditioning=d_conditioning,
            num_classes=num_classes,
            image_size=images.image_size,
            width=model.d_width,
            norm=model.d_norm,
            bn_axis_name=bn_axis_name,
            dtype=dtype,
        )
    else:
        discriminator = dcgan.Discriminator(
            images.image_size, model.d_width, norm=model.d_norm, bn_axis_name=bn_axis_name, dtype=dtype
        )
    return generator, discriminator


def conditional_players(
    model: ConditionalModel, images: Data, latent_dim: int, num_classes: int, bn_axis_name: str | None = None
):
    """The conditional DCGAN's ``(G, D)`` with ``model``'s options for the ``images`` part's shape and
    ``num_classes`` classes."""
    dtype = precision.compute_dtype(model.compute_dtype)
    generator = conditional.Generator(
        num_classes,
        model.g_embed_dim,
        images.image_size,
        images.channels,
        model.g_width,
        latent_dim,
        norm=model.g_norm,
        bn_axis_name=bn_axis_name,
        dtype=dtype,
    )
    discriminator = conditional.Discriminator(
        images.image_size,
        model.d_width,
        model.d_norm,
        bn_axis_name,
        dtype,
        conditioning=model.d_conditioning,
        num_classes=num_classes,
        embed_dim=model.d_embed_dim,
    )
    return generator, discriminator
