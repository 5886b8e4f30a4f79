"""Synthetic metric traces made to show each failure raise exactly that flag; a healthy trace is quiet.

The measured, labelled traces are scored in test_monitor_traces.py."""

import dataclasses
import pathlib

import numpy as np
import pytest

from ganjax.evaluation import monitor

T = 600  # longer than the warmup, so that every check judges


def healthy(seed=0) -> dict[str, np.ndarray]:
    """D loss settling slowly downward with small noise, D(x) ~ 0.6, D(G(z)) ~ 0.4, moderate gradients."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    noise = lambda scale: scale * rng.normal(size=T)
    return {
        "d_loss": 1.3 - 0.1 * t / T + noise(0.05),
        "g_loss": 0.9 + noise(0.05),
        "d_real": 0.6 + noise(0.02),
        "d_fake": 0.4 + noise(0.02),
        "d_grad_norm": 2.0 + np.abs(noise(0.5)),
        "g_grad_norm": 3.0 + np.abs(noise(0.5)),
        "duplicate_share": np.full(T, 0.01),
        "pairwise_distance_ratio": np.full(T, 0.95),
    }


def _with(**changes):
    return {**healthy(), **changes}


def _d_loss_jumps():
    """After 2T healthy steps, D's loss jumping between two levels every 40 steps, far apart in its batch noise."""
    trace = {name: np.tile(values, 3) for name, values in healthy().items()}
    trace["d_loss"][2 * T :][(np.arange(T) // 40) % 2 == 1] += 1.0
    return trace


FAILURES = {
    "d_loss_zero": _with(d_loss=np.full(T, 0.01)),
    "grad_explosion": _with(g_grad_norm=np.concatenate([np.full(T - 20, 3.0), np.geomspace(120.0, 450.0, 20)])),
    "d_loss_unstable": _d_loss_jumps(),
    "g_fools_with_garbage": _with(
        g_loss=np.linspace(4.0, 2.0, T), d_real=np.full(T, 0.95), d_fake=np.full(T, 0.05), d_loss=np.full(T, 0.3)
    ),
    "mode_collapse": _with(duplicate_share=np.full(T, 0.8)),
    "vanishing_gradients": _with(g_grad_norm=np.full(T, 1e-5)),
}


@pytest.mark.parametrize("seed", range(5))
def test_healthy_trace_is_quiet(seed):
    assert monitor.Monitor().check(healthy(seed)) == []


@pytest.mark.parametrize("name", sorted(FAILURES))
def test_each_failure_raises_its_flag_only(name):
    flags = monitor.Monitor().check(FAILURES[name])
    assert [f.name for f in flags] == [name]
    assert flags[0].message and len(flags[0].message) < 200


def test_batch_noise_is_not_instability():
    """A D loss swinging by 80% of its mean from one batch to the next, but with a steady level, is healthy."""
    trace = {name: np.tile(values, 3) for name, values in healthy().items()}
    trace["d_loss"] = 1.0 + 0.8 * np.sin(np.arange(3 * T))
    assert monitor.Monitor().check(trace) == []


def _earlier_then(name: str, earlier: float, recent: np.ndarray) -> dict[str, np.ndarray]:
    """A healthy trace of ``3 * T`` steps whose ``name`` holds ``earlier`` until its last ``len(recent)`` steps."""
    trace = {k: np.tile(v, 3) for k, v in healthy().items()}
    trace[name] = np.concatenate([np.full(3 * T - len(recent), earlier), recent])
    return trace


@pytest.mark.parametrize(
    ("name", "earlier", "recent", "flag"),
    [
        ("g_grad_norm", 3.0, np.full(50, 0.01), "vanishing_gradients"),  # 300x below its earlier level
        ("g_grad_norm", 3.0, np.full(50, 0.5), None),  # 6x below: G's gradients shrink as training settles
        ("d_grad_norm", 20.0, np.full(50, 400.0), "grad_explosion"),  # 20x above, and above max_grad_norm
        ("d_grad_norm", 20.0, np.full(50, 90.0), None),  # 4.5x above: a D sharpening
        ("d_grad_norm", 150.0, np.full(50, 400.0), None),  # above max_grad_norm, but near its earlier level
    ],
)
def test_gradient_norms_are_judged_against_their_earlier_level(name, earlier, recent, flag):
    flags = monitor.Monitor().check(_earlier_then(name, earlier, recent))
    assert [f.name for f in flags] == ([flag] if flag else [])


def test_pairwise_distance_collapse():
    flags = monitor.Monitor().check(_with(pairwise_distance_ratio=np.full(T, 0.1)))
    assert [f.name for f in flags] == ["mode_collapse"]
    assert "0.10x" in flags[0].message


def test_collapse_is_read_under_each_prefix_on_its_own():
    directions = monitor.MonitorConfig(collapse_prefixes=("a_to_b_", "b_to_a_"))
    trace = {k: v for k, v in healthy().items() if k not in ("duplicate_share", "pairwise_distance_ratio")}
    trace.update(a_to_b_duplicate_share=np.full(T, 0.01), a_to_b_pairwise_distance_ratio=np.full(T, 0.95))
    trace.update(b_to_a_duplicate_share=np.full(T, 0.9), b_to_a_pairwise_distance_ratio=np.full(T, 0.95))
    (flag,) = monitor.Monitor(directions).check(trace)
    assert flag.message == "mode collapse: b_to_a: 90% of samples are near-duplicates"
    assert monitor.Monitor().check(trace) == []  # the plain names only, by default
    # G's own signals, not its moving average's, unless named.
    assert monitor.Monitor().check(_with(ema_duplicate_share=np.full(T, 0.9))) == []


def test_thresholds_are_configurable():
    trace = FAILURES["grad_explosion"]
    assert monitor.Monitor(monitor.MonitorConfig(max_grad_norm=1000.0)).check(trace) == []
    assert monitor.Monitor(monitor.MonitorConfig(d_loss_floor=1.5)).check(healthy())[0].name == "d_loss_zero"


def test_window_only_looks_at_recent_values():
    d = healthy()["d_loss"].copy()
    d[-50:] = 0.01
    names = lambda window: [
        f.name for f in monitor.Monitor(monitor.MonitorConfig(window=window)).check(_with(d_loss=d))
    ]
    assert "d_loss_zero" in names(50)
    assert "d_loss_zero" not in names(T)


def test_stop_on_selects_flags():
    gate = monitor.Monitor(monitor.MonitorConfig(stop_on=("grad_explosion",)))
    flags = gate.check({**FAILURES["grad_explosion"], "duplicate_share": np.full(T, 0.9)})
    assert {f.name for f in flags} == {"grad_explosion", "mode_collapse"}
    assert [f.name for f in gate.should_stop(flags)] == ["grad_explosion"]
    assert monitor.Monitor().should_stop(flags) == []
    with pytest.raises(ValueError, match="unknown flags"):
        monitor.MonitorConfig(stop_on=("nope",))


def test_missing_metrics_are_skipped():
    assert monitor.Monitor().check({"d_loss": np.full(10, 1.2)}) == []


def test_check_finite_names_metric_and_step():
    history = healthy()
    monitor.check_finite(history, step=1000)
    history["g_loss"] = history["g_loss"].copy()
    history["g_loss"][T - 5] = np.nan
    with pytest.raises(monitor.NonFiniteLossError, match=r"g_loss = nan at step 996"):
        monitor.check_finite(history, step=1000)
    with pytest.raises(monitor.NonFiniteLossError, match=r"d_loss = inf at step 7"):
        monitor.check_finite({"d_loss": np.float32(np.inf)}, step=7)


def test_stack_history():
    window = [{"d_loss": np.float32(i), "g_loss": np.float32(2 * i)} for i in range(4)]
    stacked = monitor.stack_history(window)
    np.testing.assert_array_equal(stacked["g_loss"], [0, 2, 4, 6])
    resumed = [*window, {"d_loss": np.float32(9)}, {"d_loss": np.float32(8), "penalty": np.float32(1)}]
    assert {k: v.tolist() for k, v in monitor.stack_history(resumed).items()} == {
        "d_loss": [0, 1, 2, 3, 9, 8],
        "penalty": [1],
    }
    assert dataclasses.is_dataclass(monitor.MonitorConfig())


def test_isolated_spikes_are_not_failures():
    spiky = healthy()
    spiky["d_grad_norm"][[40, 190]] = 450.0
    spiky["d_loss"][[60, 140]] = 6.0
    assert monitor.Monitor().check(spiky) == []


def test_measured_healthy_dcgan_trace_is_quiet():
    """Per-step metrics of a real MNIST DCGAN run (width 32, seed 0, steps 600-1500), whose samples are digits.

    Made with experiments.dcgan_mnist's step; D's global gradient norm (BatchNorm in D) has a
    median of 66-114 and 90th percentiles up to 254, above the default max_grad_norm, but steady.
    """
    with np.load(pathlib.Path(__file__).parents[1] / "data" / "dcgan_mnist_trace.npz") as stored:
        trace = dict(stored)
    assert all(flags == [] for _, flags in monitor.replay(trace, every=50))


def test_replay_checks_at_the_runners_cadence():
    """Checks at every multiple of ``every`` and at the last step, each on the last ``kept`` steps, with the
    evaluations made since the previous check."""
    d_loss = np.full(230, 1.0)
    d_loss[:100] = 0.01  # near 0, but only in steps older than the last kept ones from step 150 on
    config = monitor.MonitorConfig(window=50, baseline=0)
    replayed = monitor.replay({"d_loss": d_loss}, 50, config, evaluations={120: {"duplicate_share": 0.9}})
    assert [step for step, _ in replayed] == [50, 100, 150, 200, 230]
    names = {step: [f.name for f in flags] for step, flags in replayed}
    assert names == {50: ["d_loss_zero"], 100: ["d_loss_zero"], 150: ["mode_collapse"], 200: [], 230: []}


def test_evaluations_are_read_as_one_value_histories():
    """The live hook and the replay pass evaluations apart from the per-step history; they override it."""
    history = {name: values for name, values in healthy().items() if name != "duplicate_share"}
    check = monitor.Monitor().check
    assert [f.name for f in check(history, {"duplicate_share": 0.9})] == ["mode_collapse"]
    assert check(history, {"duplicate_share": 0.9}) == check({**history, "duplicate_share": np.array([0.9])})
    assert check(_with(duplicate_share=np.full(T, 0.9)), {"duplicate_share": 0.01}) == []


@pytest.mark.parametrize(
    ("metrics", "every", "match"),
    [({"d_loss": np.ones(5)}, 0, "every"), ({"d_loss": np.ones(5), "g_loss": np.ones(4)}, 1, "lengths")],
)
def test_replay_refuses_bad_input(metrics, every, match):
    with pytest.raises(ValueError, match=match):
        monitor.replay(metrics, every)


@pytest.mark.parametrize("name", sorted(FAILURES))
def test_only_outright_failures_are_flagged_in_the_warmup(name):
    """The last 300 steps of each failure, as if the run had just begun (warmup 400 steps)."""
    short = {metric: values[-300:] for metric, values in FAILURES[name].items()}
    outright = name in ("d_loss_zero", "grad_explosion", "vanishing_gradients")
    assert [f.name for f in monitor.Monitor().check(short)] == ([name] if outright else [])


def _stage_change(at: int) -> dict[str, np.ndarray]:
    """A healthy trace whose D loss, at a new stage after step ``at``, rises by 1 for 50 steps and falls back."""
    trace = {name: np.tile(values, 2) for name, values in healthy().items()}
    trace["d_loss"][at : at + 50] += 1.0
    return trace


def test_a_check_reads_only_the_steps_since_the_latest_restart():
    """A swing right after a restart is the new stage's start, judged (after its warmup) on its own steps."""
    trace, config = _stage_change(T), monitor.MonitorConfig()
    flagged = lambda cfg: {s: [f.name for f in flags] for s, flags in monitor.replay(trace, 50, cfg) if flags}
    unrestarted = flagged(config)  # without the restart the swing is read as instability
    assert unrestarted and all(names == ["d_loss_unstable"] for names in unrestarted.values())
    assert flagged(dataclasses.replace(config, restarts=(T,))) == {}
    assert [config.reads(s) for s in (100, T, T + 100, 2 * T)] == [100, 600, 600, 600]
    restarted = dataclasses.replace(config, restarts=(T,))
    assert [restarted.reads(s) for s in (100, T, T + 100, 2 * T)] == [100, 600, 100, 600]
