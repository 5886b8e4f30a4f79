"""bench.step_profile: the DCGAN's layers and their counts per step, and the profile's table at a tiny size."""

import pytest

pytest.importorskip("torch", reason="the profile compares against PyTorch: pip install -e .[bench]")

from bench import step_profile


def test_layers_are_the_dcgans_with_each_products_runs_per_step():
    layers = step_profile.layers(32)
    assert [layer.name for layer in layers] == [
        "G dense z -> 4x4x256",
        "G convT 256->128, 4->8",
        "G convT 128->64, 8->16",
        "G convT 64->3, 16->32",
        "D conv 3->64, 32->16",
        "D conv 64->128, 16->8",
        "D conv 128->256, 8->4",
        "D dense 4x4x256 -> 1",
    ]
    g_dense, *_, d_first, d_second, _, d_dense = layers
    assert g_dense.ganjax == g_dense.torch == (1, 0, 1)  # z needs no gradient
    assert d_first.ganjax == (3, 1, 2) and d_first.torch == (3, 1, 3)  # only G's phase needs the images' gradient
    assert d_second.ganjax == (3, 3, 2) and d_dense.torch == (3, 3, 3)  # torch's G backward fills D's grads too


def test_a_size_that_does_not_start_from_a_4x4_map_is_refused():
    with pytest.raises(ValueError, match="--sizes"):
        step_profile.layers(28)


def test_the_profile_sums_the_counted_products_against_the_whole_step():
    rows = step_profile.profile(8, batch=2, repeats=1)
    assert rows[-1]["item"] == "whole step" and rows[-2]["item"] == "Adam, both players"
    assert all(ms > 0 for row in rows for ms in row["ms"])
    text = step_profile.report(8, rows)
    assert "| **sum of the above** |" in text and "| **whole step, measured** |" in text
    assert "D conv 3->64, 8->4: kernel grad | " in text and "| 2, 3 |" in text
