"""README.md's "Use ganjax in your own project" script and docs/architecture.md's "The step alone" run as written."""

import contextlib
import importlib
import io
import json
import pathlib
import re

import jax
import numpy as np

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
