"""experiments/ablation.py: settings built from switches, members equal to single runs, each switch changes the
run, the comparison marks, and the workdir's results, resume and refusals."""

import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import ablation
from experiments import gaussian_mixture as gm
from ganjax import run
from ganjax.evaluation import metrics
from ganjax.training import population

TINY_BASE = (
    "schedule.steps=3",
    "schedule.batch_size=16",
    "model.g_width=8",
    "model.d_width=8",
    "model.g_depth=1",
    "model.d_depth=1",
    "evaluation.eval_samples=64",
)


def tiny(**changes) -> ablation.Config:
    return ablation.Config(**{"mixtures": ("ring",), "seeds": 2, "base": TINY_BASE, **changes})


@pytest.mark.parametrize(
    "setting, flags",
    [
        ("schedule.steps=2000", ["--schedule.steps", "2000"]),
        ("objective.d_labels=one_sided", ["--objective.d-labels", "one_sided"]),
        ("optim.optimistic=true", ["--optim.optimistic"]),
        ("optim.optimistic=False", ["--optim.no-optimistic"]),
    ],
)
def test_settings_become_the_experiments_flags(setting, flags):
    assert ablation._flags(setting, "base") == flags


@pytest.mark.parametrize("setting", ["steps=3", "schedule.steps", "schedule.steps=", "=3"])
def test_a_malformed_base_setting_is_refused_naming_it(setting):
    with pytest.raises(ValueError, match=rf"Config.base: '{setting}' is not part.field=value"):
        ablation.Config(base=(setting,))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"seeds": 1}, "Config.seeds: must be in"),
        ({"mixtures": ()}, "Config.mixtures: name at least one"),
        ({"switches": ("r1", "r1")}, "Config.switches: names one twice"),
        ({"resume": True, "overwrite": True}, "Config.overwrite"),
    ],
)
def test_bad_configs_are_refused_naming_the_field(changes, message):
    with pytest.raises(ValueError, match=message):
        ablation.Config(**changes)


def test_a_switch_whose_fields_do_not_fit_the_base_is_refused_before_anything_trains(tmp_path):
    config = tiny(
        switches=("one_sided_smoothing",), base=(*TINY_BASE, "objective.loss=hinge"), workdir=str(tmp_path / "a")
    )
    with pytest.raises(ValueError, match="one_sided_smoothing: the fields"):
        ablation.run_ablation(config)
    assert not (tmp_path / "a" / "results.jsonl").exists()


def test_every_switch_sets_fields_the_base_leaves_unset():
    config = tiny()
    base = ablation.setting_config(config, "ring", None)
    for switch in ablation.SWITCHES:
        assert ablation.setting_config(config, "ring", switch) != base, switch.name


@pytest.mark.slow
def test_a_member_of_the_population_is_the_single_run_of_its_seed(tmp_path):
    setting = ablation.setting_config(tiny(base=(*TINY_BASE, "schedule.steps=20")), "ring", None)
    parts = gm.benchmark(setting)
    keys = jax.vmap(run.run_keys)(jnp.arange(3))
    members = population.init_population(parts.init, keys.init)
    step = population.population_step(parts.step)
    for _ in range(20):
        members, _ = step(members, None)
    points = jax.vmap(parts.sample)(members, jax.vmap(lambda key: jax.random.fold_in(key, 20))(keys.evaluation))
    for seed in range(3):
        runs = dataclasses.replace(setting.run, seed=seed, workdir=str(tmp_path / str(seed)))
        single = run.train(gm.RECIPE, dataclasses.replace(setting, run=runs))
        member = population.member(members, seed)
        for mine, theirs in zip(jax.tree.leaves(member.players), jax.tree.leaves(single.state.players), strict=True):
            np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)
        scored = metrics.mixture_metrics(np.asarray(points[seed]), parts.mixture.means, parts.mixture.std)
        assert scored["modes"] == single.results["modes"]
        np.testing.assert_allclose(scored["high_quality"], single.results["high_quality"], atol=1 / 64)


def _after_two_steps(config: ablation.Config, switch) -> list[np.ndarray]:
    """The players, the buffers and the samples of a 2-member population after two steps."""
    parts = gm.benchmark(ablation.setting_config(config, "ring", switch))
    keys = jax.vmap(run.run_keys)(jnp.arange(2))
    members = population.init_population(parts.init, keys.init)
    step = population.population_step(parts.step)
    for _ in range(2):
        members, _ = step(members, None)
    samples = jax.vmap(parts.sample)(members, keys.evaluation)
    return [np.asarray(x) for x in jax.tree.leaves((members.players, members.ema, members.buffers, samples))]


@functools.cache
def _base_after_two_steps() -> list[np.ndarray]:
    return _after_two_steps(tiny(), None)


@pytest.mark.slow  # a compilation per switch: a minute and a half on 2 cores
@pytest.mark.parametrize("switch", ablation.SWITCHES, ids=ablation.SWITCH_NAMES)
def test_each_switch_changes_what_the_population_trains_or_samples(switch):
    base = _base_after_two_steps()
    switched = _after_two_steps(tiny(), switch)
    differs = [a.shape != b.shape or not np.allclose(a, b) for a, b in zip(base, switched, strict=False)]
    assert len(base) != len(switched) or any(differs), switch.name


@pytest.mark.parametrize(
    "values, base, higher_is_better, mark",
    [
        ([8, 8, 8, 8, 7], [3, 4, 2, 5, 3], True, "▲"),
        ([8, 8, 8, 8, 7], [3, 4, 2, 5, 3], False, "▼"),
        ([0.1, 0.2, 0.1], [0.5, 0.6, 0.4], False, "▲"),
        ([4, 6, 5, 3], [5, 4, 6, 3], True, ""),  # within the seeds' spread
        ([8, 8, 8], [8, 8, 8], True, ""),
        ([8, 8, 8], [7, 7, 7], True, "▲"),  # no spread at all: any difference counts
    ],
)
def test_compare_marks_only_differences_beyond_twice_the_standard_error(values, base, higher_is_better, mark):
    assert ablation.compare(values, base, higher_is_better) == mark


def test_table_has_a_row_per_setting_with_mean_std_and_marks():
    rows = [
        {"mixture": "ring", "switch": name, "seed": seed, "modes": modes, "high_quality": hq, "mode_kl": kl}
        for name, modes, hq, kl in (("base", [2, 3, 4], 0.1, 0.5), ("packing", [8, 8, 8], 0.1, 0.5))
        for seed, modes in enumerate(modes)
    ]
    text = ablation.table(rows)
    assert "| base | 3 | 3.0 ± 1.0 | 0.100 ± 0.000 | 0.500 ± 0.000 | the base recipe |" in text
    assert "| packing | 3 | 8.0 ± 0.0 ▲ | 0.100 ± 0.000 | 0.500 ± 0.000 | PacGAN" in text


@pytest.mark.slow
def test_ablation_writes_results_table_and_plot_and_resumes_only_what_is_missing(tmp_path, capsys):
    workdir = tmp_path / "ablation"
    ablation.main(
        ["--mixtures", "ring", "--seeds", "2", "--switches", "r1", "--workdir", str(workdir), "--base", *TINY_BASE]
        + ["--workers", "1"]
    )
    results = [json.loads(line) for line in (workdir / "results.jsonl").read_text().splitlines()]
    assert [(r["switch"], r["seed"]) for r in results] == [("base", 0), ("base", 1), ("r1", 0), ("r1", 1)]
    assert all(0 <= r["modes"] <= 8 and 0 <= r["high_quality"] <= 1 and r["finite"] == 1.0 for r in results)
    assert "| r1 | 2 |" in (workdir / "ablation.md").read_text()
    assert (workdir / "ablation_ring.png").stat().st_size > 1000

    with pytest.raises(SystemExit) as refused:
        ablation.main(["--mixtures", "ring", "--seeds", "2", "--switches", "r1", "--workdir", str(workdir)])
    assert refused.value.code == 2 and "already holds an ablation" in capsys.readouterr().err

    resume = ["--mixtures", "ring", "--seeds", "2", "--workdir", str(workdir), "--resume", "--base", *TINY_BASE]
    with pytest.raises(SystemExit):
        ablation.main([*resume[:3], "3", *resume[4:], "--switches", "r1"])
    assert "changed: seeds" in capsys.readouterr().err

    ablation.main([*resume, "--switches", "r1", "packing"])  # more switches: only the new one trains
    printed = capsys.readouterr().out
    assert "ring packing" in printed and "ring r1" not in printed and "ring base" not in printed
    assert len((workdir / "results.jsonl").read_text().splitlines()) == 6


@pytest.mark.slow  # spawns worker processes (about 20 s of CPU)
def test_settings_trained_by_single_threaded_worker_processes_score_as_in_one_process(tmp_path):
    config = tiny(switches=("r1",))  # two settings, one per worker
    inline, workers = (
        ablation.run_ablation(dataclasses.replace(config, workers=n, workdir=str(tmp_path / str(n)))) for n in (1, 2)
    )
    assert workers == inline
    rows = [json.loads(line) for line in (tmp_path / "2" / "results.jsonl").read_text().splitlines()]
    assert sorted((r["switch"], r["seed"]) for r in rows) == sorted(
        (name, seed) for name in ("base", "r1") for seed in range(2)
    )
