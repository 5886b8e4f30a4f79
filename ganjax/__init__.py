"""ganjax: GAN training tricks as pure JAX functions, optax transforms and Flax modules.

The tricks are small modules at the top (``losses``, ``penalties``, ``labels``,
``latent``, ``noise``, ``optim``, ``replay``, ``swaps``); ``ganjax.training``
is the core every model trains on (players, phases, the one update, keys,
devices); ``ganjax.evaluation`` judges generators; ``ganjax.models`` and
``ganjax.nn`` hold the networks and layers. The core's names are re-exported here.
"""

from ganjax import data
from ganjax import labels
from ganjax import latent
from ganjax import losses
from ganjax import noise
from ganjax import optim
from ganjax import penalties
from ganjax import replay
from ganjax.checkpoint import Checkpointer
from ganjax.training import devices
from ganjax.training import rng
from ganjax.training.gan import GAN
from ganjax.training.gan import Conditioning
from ganjax.training.gan import InputNoise
from ganjax.training.gan import Latent
from ganjax.training.gan import Objective
from ganjax.training.gan import create_state
from ganjax.training.gan import generate
from ganjax.training.phases import Phase
from ganjax.training.phases import PhaseInputs
from ganjax.training.phases import PhaseOutput
from ganjax.training.phases import batches_per_step
from ganjax.training.phases import make_step
from ganjax.training.state import Player
from ganjax.training.state import TrainState

__version__ = "0.1.0"

__all__ = [
    "GAN",
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
