"""bench.dcgan_step: its CPU command end to end at a tiny size, the load mark, the peak table, the donated state."""

import math
import subprocess
import sys

import jax
import pytest

pytest.importorskip("torch", reason="the benchmark compares against PyTorch: pip install -e .[bench]")

from bench import dcgan_step


def test_cpu_command_prints_every_column_for_each_variant(capsys):
    dcgan_step.main(
        ["--sizes", "8", "--batch", "2", "--repeats", "1", "--steps", "1", "--population", "2"]
        + ["--variants", "ganjax-f32", "ganjax-bf16", "torch-eager"]
    )
    out = capsys.readouterr().out
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith("| 8 |")]
    assert [row[1] for row in rows] == ["ganjax-f32", "ganjax-bf16", "torch-eager", "population x2"]
    for row in rows:
        assert float(row[2]) > 0 and float(row[3]) > 0 and float(row[4]) > 0  # img/s, ms/step, GFLOP/step
        assert row[6].endswith("%")  # share of the matmul measured beside it
    assert float(rows[0][7]) > 0 and float(rows[1][7]) > 0 and float(rows[2][7]) >= 0  # peak MiB
    assert "members/s" in rows[3][8] or "LOADED" in rows[3][8]
    assert "load before" in out and "load after" in out


def test_a_loaded_machine_gives_no_result():
    assert dcgan_step.load_verdict((2.0, 3.0), cores=2) is None
    assert dcgan_step.load_verdict((1.0, 3.2), cores=2) == "LOADED (load 1.6 per core): not a result"


def test_peak_table_by_device_kind_and_an_unknown_kind_is_refused():
    assert dcgan_step.peak_tflops("NVIDIA H100 80GB HBM3", "bfloat16") == 989.4
    assert dcgan_step.peak_tflops("NVIDIA H100 PCIe", "float32") == 378.0
    assert dcgan_step.peak_tflops("NVIDIA A100-SXM4-40GB", "bfloat16") == 312.0
    assert dcgan_step.peak_tflops("Some GPU", "float32", given=(100.0, 50.0)) == 50.0
    with pytest.raises(ValueError, match="--peak-tflops: the peak of device kind 'Some GPU' is unknown"):
        dcgan_step.peak_tflops("Some GPU", "bfloat16")


def test_a_device_that_is_absent_is_refused(capsys):
    absent = next(p for p in ("gpu", "tpu") if not _has(p))
    with pytest.raises(SystemExit):
        dcgan_step.parse_args(["--device", absent])
    assert f"--device {absent}: JAX has no such device here" in capsys.readouterr().err


def test_the_step_donates_its_state():
    """XLA aliases every byte of the state to the new state: a step never holds two copies."""
    _, compiled = dcgan_step.ganjax_step(8, 2)
    state = jax.tree.leaves(compiled.args_info[0][0])
    assert all(leaf.donated for leaf in state)
    state_bytes = sum(math.prod(leaf.shape) * leaf.dtype.itemsize for leaf in state)
    assert compiled.memory_analysis().alias_size_in_bytes >= state_bytes > 0


def _has(platform: str) -> bool:
    try:
        return bool(jax.devices(platform))
    except RuntimeError:
        return False


def test_the_data_parallel_variant_runs_over_cpu_devices_in_a_fresh_process():
    command = [sys.executable, "-m", "bench.dcgan_step", "--sizes", "8", "--batch", "4", "--repeats", "1"]
    command += ["--steps", "1", "--cpu-devices", "2", "--xla-threads", "1", "--variants", "ganjax-f32-dp"]
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=dcgan_step.ROOT).stdout
    (row,) = [line.split(" | ") for line in out.splitlines() if line.startswith("| 8 |")]
    assert row[1] == "ganjax-f32-dp" and float(row[2]) > 0


def test_the_data_parallel_variant_without_devices_is_refused(capsys):
    with pytest.raises(SystemExit):
        dcgan_step.parse_args(["--variants", "ganjax-f32-dp"])
    assert "--cpu-devices 2" in capsys.readouterr().err
