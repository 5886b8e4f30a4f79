"""bench.flat_draws: both kinds of key initialise every model to the same params."""

import pytest

from bench import flat_draws


@pytest.mark.slow  # compiles every model's init twice: about a minute
def test_both_kinds_of_key_give_the_same_params(capsys):
    flat_draws.main(["--repeats", "1"])
    out = capsys.readouterr().out
    assert all(name in out for name in flat_draws.MODELS) and "flat_draws" in out
    assert "params equal bit for bit: True" in out
