"""ganjax: GAN training tricks as pure JAX functions, optax transforms and Flax modules.

The modules hold the pieces (``ganjax.losses``, ``labels``, ``latent``,
``noise``, ``penalties``, ``optim``, ``replay``, ``monitor``, ``metrics``,
``data``, ``parallel``, ``nn``, ``models``); the train state and steps are
re-exported here.
"""

from ganjax import data
from ganjax import labels
from ganjax import latent
from ganjax import losses
from ganjax import metrics
from ganjax import monitor
from ganjax import noise
from ganjax import optim
from ganjax import penalties
from ganjax import replay
from ganjax.checkpoint import Checkpointer
from ganjax.train import GANState
from ganjax.train import Player
from ganjax.train import StepConfig
from ganjax.train import create_state
from ganjax.train import d_step
from ganjax.train import g_step
from ganjax.train import generate
from ganjax.train import jit_step
from ganjax.train import train_step

__version__ = "0.1.0"

__all__ = [
    "Checkpointer",
    "GANState",
    "Player",
    "StepConfig",
    "create_state",
    "d_step",
    "data",
    "g_step",
    "generate",
    "jit_step",
    "labels",
    "latent",
    "losses",
    "metrics",
    "monitor",
    "noise",
    "optim",
    "penalties",
    "replay",
    "train_step",
]
