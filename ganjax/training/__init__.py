"""The training core every model uses: players and the run state, phases and the one update, keys, devices."""

from ganjax.training import devices
from ganjax.training import gan
from ganjax.training import rng
from ganjax.training.phases import Phase
from ganjax.training.phases import PhaseInputs
from ganjax.training.phases import PhaseOutput
from ganjax.training.phases import batches_per_step
from ganjax.training.phases import make_step
from ganjax.training.phases import update_players
from ganjax.training.state import Player
from ganjax.training.state import TrainState

__all__ = [
    "Phase",
    "PhaseInputs",
    "PhaseOutput",
    "Player",
    "TrainState",
    "batches_per_step",
    "devices",
    "gan",
    "make_step",
    "rng",
    "update_players",
]
