"""README.md: the "Bring your own G and D" example runs as written and trains."""

import contextlib
import io
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def section_code(title: str) -> str:
    """The first Python code block under the README heading ``title``."""
    text = (ROOT / "README.md").read_text()
    section = text.split(f"## {title}\n", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_bring_your_own_g_and_d_runs():
    namespace: dict = {}
    with contextlib.redirect_stdout(io.StringIO()) as out:
        exec(compile(section_code("Bring your own G and D"), "README.md", "exec"), namespace)
    metrics, samples, state = namespace["metrics"], namespace["samples"], namespace["state"]
    assert samples.shape == (16, 8, 8, 1) and float(abs(samples).max()) <= 1.0
    assert set(metrics) >= {"d_loss", "g_loss", "penalty", "d_grad_norm", "g_grad_norm"}
    assert int(state.step) == 20
    assert "d_loss" in out.getvalue()
