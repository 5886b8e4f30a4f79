"""The failure monitor on measured, labelled runs (tests/data/monitor_traces, from experiments.monitor_traces).

Each trace is replayed at the runner's default cadence (a check every 50
steps). A flag on a healthy run, or before a failure begins, is a false alarm;
a failure is detected when its flag is raised after it begins.
"""

import pathlib

import pytest

from experiments import monitor_traces

FOLDER = pathlib.Path(__file__).parents[1] / "data" / "monitor_traces"
TRACES = monitor_traces.load(FOLDER)
HEALTHY = sorted(name for name, trace in TRACES.items() if trace.label == "healthy")
FAILING = sorted(name for name, trace in TRACES.items() if trace.label != "healthy")


@pytest.fixture(scope="module")
def scores() -> dict[str, monitor_traces.TraceScore]:
    return monitor_traces.scores(TRACES)


def test_the_set_covers_the_experiments_and_the_failures():
    assert {"dcgan_mnist", "wgan_gp_mnist", "cgan_mnist", "dcgan_rgb64", "gaussian_ring"} <= set(HEALTHY)
    assert {TRACES[name].label for name in FAILING} == {
        "d_loss_zero",
        "vanishing_gradients",
        "grad_explosion",
        "mode_collapse",
    }
    assert set(TRACES) == {case.name for case in monitor_traces.CASES}


@pytest.mark.parametrize("name", HEALTHY)
def test_a_healthy_run_ends_without_a_flag(name, scores):
    assert scores[name].last_flags == ()


def test_at_most_5_percent_of_a_healthy_runs_checks_raise_a_flag(scores):
    flagged = sum(scores[name].flagged for name in HEALTHY)
    checks = sum(scores[name].checks for name in HEALTHY)
    assert flagged <= 0.05 * checks, {name: scores[name].false_alarms for name in HEALTHY}


@pytest.mark.parametrize("name", FAILING)
def test_each_failure_is_detected_with_its_flag_and_none_before_it(name, scores):
    result = scores[name]
    assert result.first_detection is not None, result
    assert result.first_detection > TRACES[name].failure_step
    assert result.false_alarms == {}, result


def test_the_tables_name_every_flag_and_trace():
    text = monitor_traces.tables(TRACES)
    for name in (*TRACES, "vanishing_gradients", "precision", "recall"):
        assert name in text
