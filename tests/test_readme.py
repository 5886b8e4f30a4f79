"""README.md's "Use ganjax in your own project" script and docs/architecture.md's "The step alone" run as written."""

import contextlib
import importlib
import io
import json
import os
import pathlib
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

from ganjax import sample
from ganjax.evaluation import mnist_classifier

ROOT = pathlib.Path(__file__).resolve().parents[1]


def section_code(path: str, title: str) -> str:
    """The first Python code block under the heading ``title`` of the markdown file ``path``."""
    text = (ROOT / path).read_text()
    section = text.split(f"## {title}\n", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_step_alone_runs():
    namespace: dict = {}
    with contextlib.redirect_stdout(io.StringIO()) as out:
        exec(compile(section_code("docs/architecture.md", "The step alone"), "architecture.md", "exec"), namespace)
    metrics, samples, state = namespace["metrics"], namespace["samples"], namespace["state"]
    assert samples.shape == (16, 8, 8, 1) and float(abs(samples).max()) <= 1.0
    assert set(metrics) >= {"d_loss", "g_loss", "penalty", "d_grad_norm", "g_grad_norm"}
    assert int(state.step) == 20
    assert "d_loss" in out.getvalue()


def test_own_project_script_trains_with_fid_resumes_and_samples(tmp_path, monkeypatch, capsys):
    """The script, saved outside the checkout and imported from there, trains its own G and D with the run
    machinery (MNIST FID, TensorBoard, grids, checkpoints), resumes, and its run samples by its recipe."""
    (tmp_path / "train_mine.py").write_text(section_code("README.md", "Use ganjax in your own project"))
    monkeypatch.syspath_prepend(str(tmp_path))
    script = importlib.import_module("train_mine")
    classifier = mnist_classifier.save_mnist_classifier(mnist_classifier.init(jax.random.key(0)), tmp_path / "clf")
    workdir = tmp_path / "runs" / "mine"
    argv = ["--run.workdir", str(workdir), "--schedule.batch-size", "16", "--run.log-every", "2"]
    argv += ["--run.sample-every", "2", "--run.checkpoint-every", "2", "--evaluation.eval-samples", "64"]
    argv += ["--evaluation.classifier-dir", str(classifier), "--evaluation.eval-every", "100"]
    result = script.main(script.MyRecipe(), script.Config, [*argv, "--schedule.steps", "4"])
    assert int(result.state.step) == 4 and "fid" in result.metrics  # evaluated at the last step
    assert "run finished in" in capsys.readouterr().out
    resumed = script.main(script.MyRecipe(), script.Config, [*argv, "--schedule.steps", "6", "--run.resume"])
    assert int(resumed.state.step) == 6
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4, 6] and np.isfinite(records[-1]["fid"])
    assert {"samples", "tb", "checkpoints", "samples.gif", "training.png"} <= {p.name for p in workdir.iterdir()}
    saved = json.loads((workdir / "config.json").read_text())
    assert saved["recipe"] == {"name": "train_mine:MyRecipe", "path": str(tmp_path.resolve())}
    sample.main([str(workdir), "--out", str(tmp_path / "grid.png")])
    assert (tmp_path / "grid.png").read_bytes() == (workdir / "samples" / "step_000006.png").read_bytes()


@pytest.mark.slow  # two processes, each starting JAX
def test_own_project_script_runs_as_a_script_and_its_run_samples(tmp_path):
    """``python train_mine.py`` from its own folder, then ``python -m ganjax.sample`` from another: the recipe
    recorded as the script's ``__main__`` is loaded from its file, without running its training again."""
    script = tmp_path / "project" / "train_mine.py"
    script.parent.mkdir()
    script.write_text(section_code("README.md", "Use ganjax in your own project"))
    argv = ["--schedule.steps", "2", "--schedule.batch-size", "8", "--run.sample-every", "2"]
    argv += ["--evaluation.eval-every", "0", "--run.workdir", "runs/mine"]
    env = {**os.environ, "PYTHONPATH": ""}
    trained = subprocess.run([sys.executable, script.name, *argv], cwd=script.parent, env=env, capture_output=True)
    assert trained.returncode == 0, trained.stderr.decode()[-2000:]
    assert "run finished in runs/mine" in trained.stdout.decode()
    workdir = script.parent / "runs" / "mine"
    assert json.loads((workdir / "config.json").read_text())["recipe"]["name"] == "__main__:MyRecipe"
    out = tmp_path / "grid.png"
    sampled = subprocess.run(
        [sys.executable, "-m", "ganjax.sample", str(workdir), "--out", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
    )
    assert sampled.returncode == 0, sampled.stderr.decode()[-2000:]
    assert out.read_bytes() == (workdir / "samples" / "step_000002.png").read_bytes()
    assert not (tmp_path / "runs").exists()  # loading the script to sample did not train it again
