"""Presets (``--preset NAME``) and the annealed schedules of the config's parts: R3GAN's recipe on any image GAN."""

import math
import re

import jax
import numpy as np
import optax
import pytest

from experiments import cyclegan, dcgan_mnist, pggan, style_transfer, wgan_gp_mnist
from ganjax import optim, run
from tests.experiments.test_experiments import assert_finite, records, tiny_unevaluated


def cosine(base, final, steps, t):
    return final + (base - final) * (1 + math.cos(math.pi * min(t / steps, 1))) / 2


def test_r3gan_preset_sets_the_recipe_over_the_runs_steps():
    config = run.parse(dcgan_mnist.Config, ["--preset", "r3gan", "--schedule.steps", "100"])
    objective, optimizers, state = config.objective, config.optim, config.state
    assert (objective.loss, objective.penalty, objective.penalty_anneal_steps) == ("relativistic", "r1_r2", 100)
    assert dcgan_mnist.Config().objective.d_labels == "one_sided" and objective.d_labels == "none"  # RpGAN: none
    assert (objective.penalty_weight, objective.penalty_weight_final) == (0.05 / 2, 0.005 / 2)  # gamma / 2
    assert (optimizers.lr_g, optimizers.lr_g_final, optimizers.lr_d, optimizers.lr_d_final) == (2e-4, 5e-5, 2e-4, 5e-5)
    assert (optimizers.b1, optimizers.b2, optimizers.b2_final, optimizers.anneal_steps) == (0.0, 0.9, 0.99, 100)
    half_life = 100 * dcgan_mnist.Config().schedule.batch_size / 10  # a tenth of the images the run shows G
    assert (state.ema_decay, state.ema_half_life, state.ema_anneal_steps) == (0.0, half_life, 100)
    assert config.model == dcgan_mnist.Config().model and config.run == dcgan_mnist.Config().run


def test_flags_apply_on_top_of_the_preset_wherever_they_stand():
    argv = ["--optim.lr-g", "1e-3", "--preset=r3gan", "--objective.penalty-weight-final", "0.001"]
    config = run.parse(wgan_gp_mnist.Config, argv)
    assert (config.optim.lr_g, config.optim.lr_g_final, config.optim.lr_d) == (1e-3, 5e-5, 2e-4)
    assert (config.objective.penalty_weight_final, config.objective.loss) == (0.001, "relativistic")
    assert config.schedule.n_critic == 3 and config.objective.penalty_anneal_steps == 18000  # the experiment's own
    unset = run.parse(dcgan_mnist.Config, ["--preset", "r3gan", "--state.ema-anneal-steps", "0"])
    assert (unset.state.ema_half_life, unset.state.ema_anneal_steps) == (6000 * unset.schedule.batch_size / 10, 0)
    longer = run.parse(dcgan_mnist.Config, ["--schedule.batch-size=16", "--preset", "r3gan", "--schedule.steps", "300"])
    assert (longer.state.ema_half_life, longer.optim.anneal_steps, longer.objective.penalty_anneal_steps) == (
        300 * 16 / 10,
        300,
        300,
    )
    given = run.parse(
        dcgan_mnist.Config, ["--preset", "r3gan", "--optim.anneal_steps", "50", "--schedule.steps", "300"]
    )
    assert (given.optim.anneal_steps, given.state.ema_anneal_steps) == (50, 300)  # the flag, in either spelling


def test_a_preset_reads_the_flags_once(monkeypatch):
    calls = []
    cli = run.cli.tyro.cli
    monkeypatch.setattr(run.cli.tyro, "cli", lambda *args, **kwargs: calls.append(1) or cli(*args, **kwargs))
    run.parse(dcgan_mnist.Config, ["--preset", "r3gan", "--schedule.steps", "100"])
    assert len(calls) == 1


@pytest.mark.parametrize(
    "module, field",
    [(pggan, "objective"), (cyclegan, "objective"), (style_transfer, "objective")],
)
def test_the_preset_is_refused_naming_itself_and_the_part_an_experiment_lacks(module, field, capsys):
    with pytest.raises(ValueError, match=re.escape(f"--preset r3gan: Config.{field}: the config has no Objective")):
        run.parse(module.Config, ["--preset", "r3gan"])
    with pytest.raises(SystemExit) as exit_:
        module.main(["--preset", "r3gan"])
    assert exit_.value.code == 2 and "error: --preset r3gan: Config.objective" in capsys.readouterr().err
    with pytest.raises(ValueError, match=re.escape("--preset: unknown preset 'r4gan'; choose one of ['r3gan']")):
        run.parse(dcgan_mnist.Config, ["--preset", "r4gan"])


def test_help_lists_the_presets_that_apply(capsys):
    for module, listed in [(dcgan_mnist, True), (cyclegan, False)]:
        with pytest.raises(SystemExit):
            module.main(["--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert ("--preset {r3gan}" in text and "r3gan: R3GAN (Huang et al. 2024)" in text) == listed
        assert "--debug shows the traceback of an error" in text


def test_annealed_optimizers_hold_each_players_b2_and_lr_at_each_update():
    """D's schedules span n_critic updates per step, so both players reach the final values at anneal_steps."""
    optimizers = run.Optimizers(b1=0.0, b2=0.9, b2_final=0.99, lr_g_final=5e-5, lr_d_final=1e-5, anneal_steps=4)
    tx = optimizers.build(jax.random.key(0), steps=100, n_critic=2)
    params = {"w": np.ones((), np.float32)}
    for chain, base, final, updates in [(tx.g, 2e-4, 5e-5, 4), (tx.d, 2e-4, 1e-5, 8)]:
        state = chain.init(params)
        for t in range(updates + 2):
            _, state = chain.update({"w": np.ones((), np.float32)}, state, params)
            hyperparams = optax.tree_utils.tree_get(state, "hyperparams")
            np.testing.assert_allclose(hyperparams["b2"], cosine(0.9, 0.99, updates, t), rtol=1e-6)
            np.testing.assert_allclose(hyperparams["learning_rate"], cosine(base, final, updates, t), rtol=1e-5)


def test_state_options_give_the_ema_decay_of_the_annealed_half_life():
    decay = run.StateOptions(ema_half_life=640.0, ema_anneal_steps=10).ema(batch_size=64)
    np.testing.assert_allclose([float(decay(t)) for t in (0, 5, 10, 20)], [0, 0.5 ** (1 / 5), 0.5**0.1, 0.5**0.1])
    assert run.StateOptions(ema_half_life=640.0).ema(64) == optim.half_life_decay(640.0, 64)
    assert run.StateOptions(ema_decay=0.999).ema(64) == 0.999 and not run.StateOptions().keeps_ema


REFUSALS = [
    (lambda: run.Optimizers(lr_g_final=1e-5), "Optimizers.anneal_steps: is 0 with lr_g_final set: give the steps"),
    (lambda: run.Optimizers(anneal_steps=10), "Optimizers.anneal_steps: is 10 with none of lr_g_final, lr_d_final"),
    (lambda: run.Optimizers(b2_final=1.0, anneal_steps=5), "Optimizers.b2_final: must be in [0, 1)"),
    (
        lambda: run.Optimizers(d_optimizer="sgd", b2_final=0.99, anneal_steps=5),
        "Optimizers.b2_final: anneals both players' Adam b2: both must use adam",
    ),
    (
        lambda: run.Optimizers(lr_decay=True, lr_d_final=1e-5, anneal_steps=5),
        "Optimizers.lr_decay: the learning rates are annealed",
    ),
    (lambda: run.StateOptions(ema_decay=0.9, ema_half_life=100.0), "StateOptions.ema_half_life: is 100.0 with"),
    (lambda: run.StateOptions(ema_anneal_steps=5), "StateOptions.ema_anneal_steps: is 5 with no ema_half_life"),
    (lambda: run.StateOptions(ema_half_life=-1.0), "StateOptions.ema_half_life: must be at least 0.0"),
]


@pytest.mark.parametrize("make, message", REFUSALS, ids=[message.split(":")[0] for _, message in REFUSALS])
def test_schedule_values_that_cannot_apply_are_refused_naming_the_field(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


@pytest.mark.slow
def test_dcgan_trains_with_the_r3gan_preset_and_logs_its_penalty(mnist_dir, tmp_path):
    argv = tiny_unevaluated(mnist_dir, tmp_path, "--preset", "r3gan", "--schedule.steps", "2")
    state = run.train(dcgan_mnist.RECIPE, run.parse(dcgan_mnist.Config, argv)).state
    (row,) = records(tmp_path)
    assert_finite([row])
    assert row["penalty"] > 0 and {"d_loss", "g_loss"} <= set(row)
    assert int(state.ema["g"].count) == 2 and callable(state.ema["g"].decay)
    assert float(optax.tree_utils.tree_get(state.players["d"].opt_state, "hyperparams")["b2"]) > 0.9
