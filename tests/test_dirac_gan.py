"""The Dirac-GAN of Mescheder et al. 2018 (ganjax.benchmarks.dirac) and its sweep (experiments.dirac_gan).

Real data is a point mass at 0, G is a point mass at theta and D(x) = psi x.
The only equilibrium is (theta, psi) = (0, 0). Both players start from (1, 1).
"""

import json

import chex
import jax.numpy as jnp
import pytest

from experiments import dirac_gan as experiment
from ganjax import losses, optim
from ganjax.benchmarks.dirac import distance_after


def dirac_gan(loss, penalty_weight, g_tx, d_tx, steps):
    """Simultaneous steps with R1 of the given weight (0: unregularised)."""
    distances = distance_after(loss, "r1", penalty_weight, g_tx, d_tx, steps)
    chex.assert_shape(distances, (steps,))
    return distances


SGD = optim.player_optimizer("sgd", 0.1)


@pytest.mark.parametrize("loss", ["minimax", "wasserstein"])
def test_unregularised_gan_moves_away(loss):
    distances = dirac_gan(loss, 0.0, SGD, SGD, 2000)
    chex.assert_tree_all_finite(distances)
    assert distances[-1] > 2.0 * jnp.sqrt(2.0), distances[-1]  # spirals out from sqrt(2)
    assert distances[-1] > distances[999] > distances[99]


@pytest.mark.parametrize(
    "loss", ["minimax", "non_saturating", "wasserstein", "hinge", "relativistic", "relativistic_average"]
)
def test_r1_converges(loss):
    """With R1 (gamma = 1, so weight gamma / 2) simultaneous gradient descent converges to (0, 0)."""
    distances = dirac_gan(loss, 0.5, SGD, SGD, 2000)
    assert distances[-1] < 1e-3, distances[-1]


def test_optimism_damps_the_rotation():
    """Optimistic GD converges on the unregularised WGAN where SGD spirals out; optimistic Adam beats Adam."""
    optimistic = optim.player_optimizer("sgd", 0.1, optimistic=True)
    assert dirac_gan("wasserstein", 0.0, optimistic, optimistic, 1000)[-1] < 0.05
    adam = optim.player_optimizer("adam", 0.01, b1=0.5, b2=0.9)
    optimistic_adam = optim.player_optimizer("adam", 0.01, b1=0.5, b2=0.9, optimistic=True)
    assert dirac_gan("wasserstein", 0.0, adam, adam, 3000)[-1] > 0.1
    assert dirac_gan("wasserstein", 0.0, optimistic_adam, optimistic_adam, 3000)[-1] < 0.05


H = optim.player_optimizer("sgd", 0.2)  # the paper's protocol: h = 0.2, 500 steps from (1, 1)


def test_unregularised_non_saturating_gd_does_not_converge():
    """Simultaneous GD on the unregularised non-saturating GAN circles the equilibrium, never nearing it."""
    distances = distance_after("non_saturating", None, 0.0, H, H)
    assert distances.min() > 0.5, distances.min()


@pytest.mark.parametrize("penalty", ["r1", "r2", "r1_r2"])
@pytest.mark.parametrize("alternating", [False, True])
def test_zero_centred_penalty_converges(penalty, alternating):
    """R1, R2 or both (R3GAN's pair) with gamma = 1 make the non-saturating GAN converge with either update order."""
    assert distance_after("non_saturating", penalty, 0.5, H, H, alternating=alternating)[-1] < 1e-3


def test_wgan_gp_does_not_converge():
    """WGAN-GP's penalty holds ||grad D|| = |psi| at 1, away from the equilibrium."""
    assert distance_after("wasserstein", "wgan_gp", 0.5, H, H)[-1] > 0.5


def test_alternating_differs_from_simultaneous():
    """Unregularised WGAN: simultaneous GD spirals out, alternating GD stays on a bounded orbit."""
    simultaneous = distance_after("wasserstein", None, 0.0, H, H)[-1]
    alternating = distance_after("wasserstein", None, 0.0, H, H, alternating=True)[-1]
    assert simultaneous > 100.0, simultaneous
    assert 1.0 < alternating < 2.0, alternating


@pytest.mark.slow  # compiles all 140 combinations; the dynamics are tested above
def test_the_experiment_writes_one_row_per_combination(tmp_path, capsys):
    experiment.main(["--workdir", str(tmp_path), "--steps", "20"])
    table = (tmp_path / "dirac.md").read_text().splitlines()
    combinations = len(losses.LOSSES) * len(experiment.PENALTIES) * len(experiment.OPTIMIZERS) * 2
    assert table[0] == "| loss | penalty | optimizer | updates | final distance | converges |"
    assert len(table) == 2 + combinations
    assert capsys.readouterr().out.strip() == "\n".join(table)
    saved = json.loads((tmp_path / "dirac.json").read_text())
    assert saved["config"]["steps"] == 20
    rows = saved["rows"]
    assert len({(r["loss"], r["penalty"], r["optimizer"], r["updates"]) for r in rows}) == combinations
    assert all(r["converges"] == (r["final_distance"] < experiment.CONVERGED) for r in rows)
