"""ganjax: GAN training tricks as pure JAX functions, optax transforms and Flax modules.

The tricks are small modules at the top (``losses``, ``penalties``, ``labels``,
``latent``, ``noise``, ``optim``, ``replay``, ``swaps``) over ``rng``, the
keys; ``ganjax.training`` is the core every model trains on (players, phases,
the one update, devices); ``ganjax.evaluation`` judges generators; ``ganjax.models`` and
``ganjax.nn`` hold the networks and layers. The core's names are re-exported here.
"""

from ganjax import data, labels, latent, losses, noise, optim, penalties, replay, rng
from ganjax.augment import Augmentation
from ganjax.checkpoint import Checkpointer
from ganjax.latent import Latent
from ganjax.noise import InputNoise
from ganjax.training import devices
from ganjax.training.gan import GAN, create_state, ema_stats, generate
from ganjax.training.objective import Conditioning, Objective
from ganjax.training.phases import Phase, PhaseInputs, PhaseOutput, batches_per_step, make_step
from ganjax.training.state import Player, TrainState

__version__ = "0.1.0"

__all__ = [
    "GAN",
    "Augmentation",
    "Checkpointer",
    "Conditioning",
    "InputNoise",
    "Latent",
    "Objective",
    "Phase",
    "PhaseInputs",
    "PhaseOutput",
    "Player",
    "TrainState",
    "batches_per_step",
    "create_state",
    "data",
    "devices",
    "ema_stats",
    "generate",
    "labels",
    "latent",
    "losses",
    "make_step",
    "noise",
    "optim",
    "penalties",
    "replay",
    "rng",
]
