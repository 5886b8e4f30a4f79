"""The Dirac-GAN sweep: which loss, penalty, optimizer and update order converge (Mescheder et al. 2018).

Run::

  python -m experiments.dirac_gan --workdir runs/dirac

Every loss of :data:`ganjax.losses.LOSSES` x penalty x optimizer x
simultaneous or alternating updates runs the Dirac-GAN (:func:`ganjax.benchmarks.dirac.distance_after`)
for ``--steps`` steps of size ``--h`` from ``(1, 1)``. The table of final
distances to the equilibrium, marked converged below :data:`CONVERGED`, goes to
``{workdir}/dirac.md`` and stdout, the same rows to ``{workdir}/dirac.json``.

The penalties are none and those of :data:`ganjax.penalties.PENALTIES` that
act on a linear D of a point mass: R1 and R2 (both ``psi^2`` here), WGAN-GP
and the one-sided GP. DRAGAN is skipped: it perturbs the reals by their
spread, which a point mass lacks, so it is WGAN-GP's penalty again.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import pathlib
from collections.abc import Sequence

from ganjax import losses, optim, validate
from ganjax.benchmarks import dirac
from ganjax.run import command, to_dict

PENALTIES = (None, "r1", "r2", "wgan_gp", "one_sided_gp")
OPTIMIZERS = {
    "sgd": dict(name="sgd"),
    "adam": dict(name="adam"),
    "optimistic_sgd": dict(name="sgd", optimistic=True),
    "optimistic_adam": dict(name="adam", optimistic=True),
}
UPDATES = ("simultaneous", "alternating")
CONVERGED = 0.05
"""A final distance below this counts as converged."""


@dataclasses.dataclass(frozen=True)
class Config:
    """The Dirac-GAN of Mescheder et al. 2018 under every loss, penalty, optimizer and update order."""

    workdir: str = "runs/dirac"
    """where dirac.md and dirac.json go."""
    steps: int = 500
    """steps of each run."""
    h: float = 0.2
    """the step size: both players' learning rate."""
    penalty_weight: float = 0.5
    """every penalty's weight (gamma / 2 for R1 and R2, so 0.5 is gamma = 1)."""

    def __post_init__(self):
        validate.at_least(self, "steps", 1)
        validate.positive(self, "h")
        validate.at_least(self, "penalty_weight", 0.0)


def sweep(config: Config) -> list[dict]:
    """One row per loss x penalty x optimizer x update order, with its final distance."""
    txs = {name: optim.player_optimizer(learning_rate=config.h, **kwargs) for name, kwargs in OPTIMIZERS.items()}
    rows = []
    for loss, penalty, optimizer, updates in itertools.product(losses.LOSSES, PENALTIES, OPTIMIZERS, UPDATES):
        tx = txs[optimizer]
        distances = dirac.distance_after(
            loss, penalty, config.penalty_weight, tx, tx, config.steps, alternating=updates == "alternating"
        )
        distance = float(distances[-1])
        rows.append(
            dict(
                loss=loss,
                penalty=penalty or "none",
                optimizer=optimizer,
                updates=updates,
                final_distance=distance,
                converges=distance < CONVERGED,
            )
        )
    return rows


def table(rows: list[dict]) -> str:
    """The rows as a markdown table."""
    lines = ["| loss | penalty | optimizer | updates | final distance | converges |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['loss']} | {r['penalty']} | {r['optimizer']} | {r['updates']} "
            f"| {r['final_distance']:.3g} | {'yes' if r['converges'] else 'no'} |"
        )
    return "\n".join(lines)


def run(config: Config) -> str:
    """Sweeps, writes ``dirac.md`` and ``dirac.json`` under the workdir and returns the table."""
    rows = sweep(config)
    workdir = pathlib.Path(config.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    text = table(rows)
    (workdir / "dirac.md").write_text(text + "\n")
    (workdir / "dirac.json").write_text(json.dumps({"config": to_dict(config), "rows": rows}, indent=1))
    return text


def main(argv: Sequence[str] | None = None) -> None:
    command(Config, lambda config: print(run(config)), argv)


if __name__ == "__main__":
    main()
