"""bench.feature_network: both pooling variants train the feature network to the same params."""

import pytest

from bench import feature_network


@pytest.mark.slow  # two compilations of the step: 25 s
def test_both_variants_run_and_end_at_the_same_params(capsys):
    feature_network.main(["--steps", "2", "--repeats", "1", "--batch-size", "8"])
    out = capsys.readouterr().out
    assert "flax max_pool" in out and "ganjax.nn.max_pool" in out
    assert "params equal bit for bit: True" in out
