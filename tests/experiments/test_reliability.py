"""Nothing lost, nothing hangs, nothing silent: the runner's checks on a toy state and on a tiny DCGAN run."""

import json
import struct
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tensorboardX.proto import event_pb2

from experiments import dcgan_mnist
from ganjax import checkpoint, data, run
from ganjax.evaluation import monitor
from tests.experiments.test_experiments import records, tiny_unevaluated

# ----------------------------------------------------------------------------- a toy run


def toy(nan_state_at=None):
    """A jitted step whose state ``w`` turns NaN at step ``nan_state_at`` while its metrics stay finite."""

    def step(state, batch):
        w = state["w"] + batch
        w = jnp.where(state["step"] + 1 == (nan_state_at or -1), jnp.nan, w)
        return {"step": state["step"] + 1, "w": w}, {"d_loss": 1.0 + batch, "g_loss": 1.0 + batch}

    return {"step": jnp.int32(0), "w": jnp.zeros(2)}, jax.jit(step), lambda start: iter(np.arange(start, 100.0))


def toy_train(workdir, steps, resume=False, nan_state_at=None, sample_every=2, log_every=3):
    state, step, batches = toy(nan_state_at)
    settings = run.Run(workdir=str(workdir), log_every=log_every, checkpoint_every=2, resume=resume)
    samples = []
    hooks = run.run_hooks(settings, {}, sample=lambda s, t: samples.append(t))
    hooks[-2] = run.Periodic(sample_every, lambda s, t: samples.append(t))
    final = run.train_loop(state, step, batches, steps, hooks, step_of=lambda s: int(s["step"]))
    return final, samples


def test_a_state_turning_non_finite_at_a_checkpoint_step_writes_nothing(tmp_path):
    # Step 4 is a checkpoint and sample step but not a logging step: the metrics are finite, the state is not.
    with pytest.raises(checkpoint.NonFiniteStateError, match="step 4: w holds NaN or Inf"):
        toy_train(tmp_path, 10, nan_state_at=4)
    assert checkpoint.saved_steps(tmp_path / "checkpoints") == [2]
    restored = checkpoint.Checkpointer(tmp_path / "checkpoints").restore(toy()[0])
    assert np.all(np.isfinite(restored.state["w"]))


def test_without_the_state_check_the_bad_state_would_be_sampled(tmp_path, monkeypatch):
    monkeypatch.setattr(run.Periodic, "needs_finite_state", False)
    monkeypatch.setattr(run.Checkpoint, "needs_finite_state", False)
    state, step, batches = toy(nan_state_at=4)
    seen = []
    hooks = [run.Periodic(2, lambda s, t: seen.append((t, bool(np.all(np.isfinite(s["w"]))))))]
    run.train_loop(state, step, batches, 4, hooks, step_of=lambda s: int(s["step"]))
    assert seen == [(2, True), (4, False)]


def test_resuming_a_finished_run_is_refused(tmp_path):
    toy_train(tmp_path, 4)
    for steps in (4, 3):
        with pytest.raises(run.ResumeError, match=f"at step 4 and schedule.steps is {steps}: nothing left to do"):
            toy_train(tmp_path, steps, resume=True)
    final, _ = toy_train(tmp_path, 6, resume=True)
    assert int(final["step"]) == 6


def test_a_torn_last_metrics_line_is_dropped_on_resume(tmp_path):
    toy_train(tmp_path, 6, log_every=1)
    path = tmp_path / "metrics.jsonl"
    path.write_text(path.read_text() + '{"step": 7, "d_lo')  # power lost mid-write
    toy_train(tmp_path, 8, resume=True, log_every=1)
    assert [r["step"] for r in records(tmp_path)] == list(range(1, 9))
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2] + ["garbage"] + lines[2:]) + "\n")
    with pytest.raises(run.WorkdirError, match=f"{path}:3: not a JSON record"):
        toy_train(tmp_path, 10, resume=True, log_every=1)


def tensorboard_events(folder):
    """Every event of the TFRecord event files under ``folder`` (length, crc, payload, crc)."""
    events = []
    for path in sorted(folder.glob("events.*")):
        raw, at = path.read_bytes(), 0
        while at < len(raw):
            (length,) = struct.unpack("<Q", raw[at : at + 8])
            events.append(event_pb2.Event.FromString(raw[at + 12 : at + 12 + length]))
            at += 12 + length + 4
    return events


def test_tensorboard_is_flushed_at_every_record_and_purged_on_resume(tmp_path):
    log = run.Log(1, tmp_path, config={"optim": {"lr_g": 0.001}})
    log.begin(0)
    log.write(1, {"d_loss": 0.5, "fid": 30.0, "flags": "D loss near 0"}, train_names=["d_loss"])
    log.image("samples", np.zeros((10, 12, 1), np.uint8), 1)
    # Flushed without a close, so a killed process keeps it; train and eval values in their groups.
    tags = [(e.step, v.tag) for e in tensorboard_events(tmp_path / "tb") for v in e.summary.value]
    assert tags == [
        (0, "config/text_summary"),
        (1, "train/d_loss"),
        (1, "eval/fid"),
        (1, "monitor/flags/text_summary"),
        (1, "samples"),
    ]
    image = next(v.image for e in tensorboard_events(tmp_path / "tb") for v in e.summary.value if v.tag == "samples")
    assert (image.height, image.width) == (10, 12)
    log.close()
    resumed = run.Log(1, tmp_path)
    resumed.begin(4)
    resumed.close()
    starts = [e for e in tensorboard_events(tmp_path / "tb") if e.HasField("session_log")]
    # TensorBoard drops the points after a SessionLog START at step 5: those the resumed run will write again.
    assert [(e.step, e.session_log.status) for e in starts] == [(5, event_pb2.SessionLog.START)]


# ----------------------------------------------------------------------------- resume checks


def saved_run(tmp_path, resolved):
    workdir = tmp_path / "w"
    run.prepare_workdir(run.Run(workdir=str(workdir)), resolved)
    saver = checkpoint.Checkpointer(workdir / "checkpoints")
    saver.save(4, {"w": jnp.zeros(2)})
    saver.close()
    return workdir


BASE = {"run": {"seed": 0, "log_every": 50}, "optim": {"lr_g": 1e-3}, "model": {"width": 8}, "schedule": {"steps": 4}}


def changed(**fields):
    config = json.loads(json.dumps(BASE))
    for name, value in fields.items():
        part, field = name.split("__")
        config[part][field] = value
    return config


@pytest.mark.parametrize(
    "now, allow, error",
    [
        (changed(schedule__steps=9, run__log_every=5), (), None),
        (changed(optim__lr_g=5e-4), ("optim.lr-g",), None),
        (changed(run__seed=1), (), "changed: run.seed \\(0 -> 1\\)$"),
        (changed(model__width=16), (), "changed: model.width \\(8 -> 16\\)$"),
        (changed(optim__lr_g=5e-4), (), "changed: optim.lr_g \\(0.001 -> 0.0005\\); to change them anyway pass "),
        (BASE, ("model.width",), "run.allow_changes: model.width shapes the model or its random streams"),
        (BASE, ("optim.nope",), "run.allow_changes: optim.nope is not a field of this config"),
    ],
)
def test_a_resumed_config_may_change_only_what_is_allowed(tmp_path, now, allow, error):
    workdir = saved_run(tmp_path, BASE)
    resume = run.Run(workdir=str(workdir), resume=True, allow_changes=allow)
    if error is None:
        run.prepare_workdir(resume, now)
        assert json.loads((workdir / "config.json").read_text()) == now
    else:
        with pytest.raises(run.WorkdirError, match=error):
            run.prepare_workdir(resume, now)


@pytest.mark.parametrize(
    "make", [lambda p: None, lambda p: p.mkdir(), lambda p: (p / "checkpoints").mkdir(parents=True)]
)
def test_resume_with_nothing_to_resume_says_so(tmp_path, make):
    make(tmp_path / "w")
    with pytest.raises(run.WorkdirError, match="w: nothing to resume \\(no checkpoint there\\)"):
        run.prepare_workdir(run.Run(workdir=str(tmp_path / "w"), resume=True), BASE)


# ----------------------------------------------------------------------------- no hangs


def test_an_exception_in_the_prefetch_thread_reaches_the_consumer(mnist):
    def put(batch):
        raise OSError("device lost")

    outcome = []

    def consume():
        try:
            next(data.Batcher(mnist, 8, seed=0).iterate(put=put))
        except OSError as e:
            outcome.append(str(e))

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive() and outcome == ["device lost"]


# ----------------------------------------------------------------------------- a tiny DCGAN run


@pytest.mark.slow
def test_dcgan_run_that_diverges_at_a_checkpoint_step_keeps_its_last_good_checkpoint(mnist_dir, tmp_path, capsys):
    run = tmp_path / "run"
    args = tiny_unevaluated(mnist_dir, run, "--run.checkpoint-every", "2")
    dcgan_mnist.main([*args, "--schedule.steps", "4"])
    capsys.readouterr()
    blow_up = [*args, "--run.resume", "--schedule.steps", "5", "--run.checkpoint-every", "1", "--optim.lr-g", "1e39"]
    with pytest.raises(SystemExit) as refused:
        dcgan_mnist.main(blow_up)
    err = capsys.readouterr().err.strip()
    assert refused.value.code == 2 and err.startswith("error: ") and "changed: optim.lr_g (0.001 -> 1e+39)" in err
    with pytest.raises(SystemExit) as failed:
        dcgan_mnist.main([*blow_up, "--run.allow-changes", "optim.lr_g"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert failed.value.code == 1
    assert err.startswith("error: step 5: players/g/params/") and err.endswith("holds NaN or Inf")
    assert checkpoint.saved_steps(run / "checkpoints") == [2, 4]
    assert not (run / "samples" / "step_000005.png").exists()


@pytest.mark.parametrize("debug", [False, True])
def test_an_expected_error_is_one_line_unless_debugging(tmp_path, capsys, debug):
    argv = ["--data.dir", str(tmp_path / "missing"), "--run.workdir", str(tmp_path / "run")]
    if debug:
        with pytest.raises(ValueError, match="Data.dir: .*missing: data folder not found"):
            dcgan_mnist.main([*argv, "--debug"])
    else:
        with pytest.raises(SystemExit) as exit:
            dcgan_mnist.main(argv)
        assert exit.value.code == 2
        assert capsys.readouterr().err == f"error: Data.dir: {tmp_path / 'missing'}: data folder not found\n"


def test_a_run_resumed_after_a_crash_logs_what_an_uninterrupted_run_logs(tmp_path):
    def crash_at(step):
        def batches(start):
            for t in np.arange(start, 100.0):
                if t == step:
                    raise KeyboardInterrupt  # the process dies mid-run, between checkpoints
                yield t

        return batches

    def hooks(workdir, resume=False):
        settings = run.Run(workdir=str(workdir), log_every=3, checkpoint_every=4, resume=resume)
        return run.run_hooks(settings, {}, watch=monitor.MonitorConfig(window=5, d_loss_floor=2.5))

    state, step, batches = toy()
    run.train_loop(state, step, batches, 12, hooks(tmp_path / "straight"), step_of=lambda s: int(s["step"]))
    with pytest.raises(KeyboardInterrupt):
        run.train_loop(state, step, crash_at(6), 12, hooks(tmp_path / "crashed"), step_of=lambda s: int(s["step"]))
    # The checkpoint at step 4 holds step 4's metrics (not logged yet) and the monitor's window.
    run.train_loop(state, step, batches, 12, hooks(tmp_path / "crashed", True), step_of=lambda s: int(s["step"]))
    assert records(tmp_path / "crashed") == records(tmp_path / "straight")
    assert [r.get("flags", "")[:10] for r in records(tmp_path / "straight")] == ["D loss 2 i", "", "", ""]
