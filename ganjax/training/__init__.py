"""The training core every model uses: players and the run state, phases and the one update, keys, devices."""

from ganjax.training import devices, gan, rng
from ganjax.training.phases import Phase, PhaseInputs, PhaseOutput, batches_per_step, make_step, update_players
from ganjax.training.state import Player, TrainState

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
