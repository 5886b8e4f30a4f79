"""The training core every model uses.

- :mod:`ganjax.training.state`: players and the run state (with its EMA and ring-buffer options);
- :mod:`ganjax.training.phases`: a step as a list of phases, and the one player update;
- :mod:`ganjax.training.gan`: the phases of an image GAN, its objective split by concern;
- :mod:`ganjax.training.devices`: meshes, ``shard_map`` data parallelism, multi-host start-up;
- :mod:`ganjax.training.population`: K GANs (seeds and hyperparameters) trained in one compiled program.

Its keys come from :mod:`ganjax.rng`; the names most programs need are re-exported by :mod:`ganjax` itself.
"""
