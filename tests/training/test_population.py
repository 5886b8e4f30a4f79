"""ganjax.training.population: every member of a population trains as the single run of its seed and values.

The exactness test trains the 2D MLP GAN of ``experiments/gaussian_mixture``
(width 16, batch 64) with members that differ in seed, both learning rates, the
R1 weight and the instance noise's std. Each member's optimizer is
``optax.inject_hyperparams(optax.adam)`` (its learning rate lives in its
state), and so is the single run's: plain ``optax.adam(lr)`` computes Adam's
bias correction ``1 - b2^t`` from a constant ``b2``, differs from it by 1e-5
relative in the first update, and 100 GAN steps grow that to 20%.

The two-device test runs this file as a script in a process with two CPU
devices, as ``tests/training/test_devices.py`` does.
"""

import dataclasses
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from ganjax import data
from ganjax.latent import Latent
from ganjax.models import mlp
from ganjax.noise import InputNoise
from ganjax.training import devices
from ganjax.training import population as pop
from ganjax.training.gan import GAN, create_state
from ganjax.training.objective import Objective
from ganjax.training.phases import make_step
from tests.training.tiny import REAL, LinearD, TinyG, tiny_gan

ROOT = pathlib.Path(__file__).resolve().parents[2]
RING = data.MIXTURES["ring"]()
G, D = mlp.Generator(2, 2, (16,) * 3), mlp.Discriminator(2, (16,) * 3)
LR_G, LR_D = [1e-3, 5e-4, 2e-3], [1e-3, 2e-3, 5e-4]
PENALTY_WEIGHT, NOISE_STD = [0.1, 1.0, 5.0], [0.0, 0.05, 0.1]
STEPS, BATCH = 100, 64


def ring_gan(penalty_weight: float = 1.0, noise_std: float = 0.0) -> GAN:
    objective = Objective(d_labels="noisy", label_flip_prob=0.1, penalty="r1", penalty_weight=penalty_weight)
    return GAN(Latent(dim=2), objective, noise=InputNoise(std=noise_std, decay_steps=50))


def adam(lr: float = 1e-3) -> optax.GradientTransformation:
    return optax.inject_hyperparams(optax.adam)(learning_rate=lr, b1=0.5)


def drawing(step):
    """``step`` drawing its real batch from the ring: ``(state, key) -> (state, metrics)``, as gaussian_mixture."""
    return lambda state, key: step(state, {"image": RING.sample(jax.random.fold_in(key, state.step), BATCH)})


def data_key(seed: int) -> jax.Array:
    return jax.random.key(seed + 1_000_003)


def flat(state) -> dict[str, np.ndarray]:
    """Every player's params by path."""
    params = {name: player.params for name, player in state.players.items()}
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in jax.tree_util.tree_leaves_with_path(params)}


def assert_close(actual: dict, expected: dict, rtol: float = 1e-5) -> None:
    """Every array within ``rtol`` of the reference, relative to the array's norm."""
    assert actual.keys() == expected.keys()
    errors = {k: np.linalg.norm(actual[k] - expected[k]) / max(np.linalg.norm(expected[k]), 1e-12) for k in expected}
    assert max(errors.values()) < rtol, sorted(errors.items(), key=lambda kv: -kv[1])[:3]


def test_member_trains_as_the_single_run_of_its_seed_and_values():
    k = len(LR_G)
    make = lambda key: create_state(key, ring_gan(), G, D, (2,), g_tx=adam(), d_tx=adam())
    population = pop.init_population(make, jax.vmap(jax.random.key)(jnp.arange(k)))
    population = pop.set_optimizer_hparams(population, "g", learning_rate=jnp.array(LR_G))
    population = pop.set_optimizer_hparams(population, "d", learning_rate=jnp.array(LR_D))
    population = pop.set_loss_hparams(population, penalty_weight=PENALTY_WEIGHT, noise_std=NOISE_STD)
    step = pop.population_step(drawing(pop.gan_step(ring_gan())))
    keys = jax.vmap(data_key)(jnp.arange(k))
    for _ in range(STEPS):
        population, metrics = step(population, keys)
    assert metrics["d_loss"].shape == (k,)

    for seed in range(k):
        gan = ring_gan(PENALTY_WEIGHT[seed], NOISE_STD[seed])
        single = jax.jit(drawing(make_step(gan.phases())), donate_argnums=0)
        state = create_state(jax.random.key(seed), gan, G, D, (2,), g_tx=adam(LR_G[seed]), d_tx=adam(LR_D[seed]))
        for _ in range(STEPS):
            state, single_metrics = single(state, data_key(seed))
        member = pop.member(population, seed)
        lr_d = optax.tree_utils.tree_get(member.players["d"].opt_state, "learning_rate")
        assert float(lr_d) == np.float32(LR_D[seed])
        assert_close(flat(member), flat(state))
        np.testing.assert_allclose(metrics["d_loss"][seed], single_metrics["d_loss"], rtol=1e-5)


REAL_LABEL, FLIP_PROB = [0.9, 0.8, 0.7], [0.0, 0.05, 0.2]


def smoothed_gan(real_label: float = 0.9, flip_prob: float = 0.0) -> GAN:
    return GAN(Latent(dim=2), Objective(d_labels="one_sided", real_label=real_label, label_flip_prob=flip_prob))


@pytest.mark.slow
def test_members_smooth_and_flip_their_labels_as_single_runs_with_their_values():
    k, steps = len(REAL_LABEL), 30
    make = lambda key: create_state(key, smoothed_gan(), G, D, (2,), g_tx=adam(), d_tx=adam())
    population = pop.init_population(make, jax.vmap(jax.random.key)(jnp.arange(k)))
    population = pop.set_loss_hparams(population, real_label=REAL_LABEL, label_flip_prob=FLIP_PROB)
    step = pop.population_step(drawing(pop.gan_step(smoothed_gan())))
    keys = jax.vmap(data_key)(jnp.arange(k))
    for _ in range(steps):
        population, _ = step(population, keys)
    for seed in range(k):
        gan = smoothed_gan(REAL_LABEL[seed], FLIP_PROB[seed])
        single = jax.jit(drawing(make_step(gan.phases())), donate_argnums=0)
        state = create_state(jax.random.key(seed), gan, G, D, (2,), g_tx=adam(), d_tx=adam())
        for _ in range(steps):
            state, _ = single(state, data_key(seed))
        assert_close(flat(pop.member(population, seed)), flat(state))
    # The values are used: members trained with the first member's values differ from members 1 and 2.
    same = pop.set_loss_hparams(
        pop.init_population(make, jax.vmap(jax.random.key)(jnp.arange(k))), real_label=0.9, label_flip_prob=0.0
    )
    for _ in range(steps):
        same, _ = step(same, keys)
    for seed in (1, 2):
        mine, theirs = flat(pop.member(population, seed)), flat(pop.member(same, seed))
        assert any(not np.allclose(mine[name], theirs[name]) for name in mine)


@pytest.mark.parametrize(
    "objective, hparam, message",
    [
        (Objective(loss="hinge"), "label_flip_prob", "loss 'hinge' takes no labels"),
        (Objective(d_labels="noisy"), "real_label", "d_labels is 'noisy', not 'one_sided'"),
    ],
)
def test_a_member_value_the_gan_does_not_use_is_refused(objective, hparam, message):
    with pytest.raises(ValueError, match=message):
        pop.member_gan(GAN(objective=objective), {hparam: jnp.float32(0.5)})


def tiny_population(k: int = 2):
    """``k`` tiny GANs (BatchNorm in G, a lazy R1 penalty, an EMA) of their own keys, weights and D rates; the GAN."""
    gan = tiny_gan(Objective(penalty="r1", penalty_weight=1.0, penalty_every=2), noise=InputNoise(std=0.1))
    make = lambda key: create_state(key, gan, TinyG(), LinearD(), (4,), g_tx=adam(), d_tx=adam(), ema_decay=0.9)
    population = pop.init_population(make, jax.random.split(jax.random.key(0), k))
    population = pop.set_loss_hparams(population, penalty_weight=jnp.linspace(0.5, 2.0, k), noise_std=0.05)
    return pop.set_optimizer_hparams(population, "d", learning_rate=jnp.linspace(1e-3, 1e-2, k)), gan


@pytest.mark.parametrize("lowering", ["map", "unroll"])
def test_lowerings_train_as_vmap_does(lowering):
    population, gan = tiny_population()
    reference = jax.tree.map(jnp.copy, population)
    vmapped = pop.population_step(pop.gan_step(gan), shared_batch=True)
    lowered = pop.population_step(pop.gan_step(gan), shared_batch=True, lowering=lowering)
    for _ in range(3):
        reference, _ = vmapped(reference, REAL)
        population, metrics = lowered(population, REAL)
    assert int(population.step[0]) == 3 and metrics["d_loss"].shape == (2,)
    assert_close(flat(population), flat(reference))


def test_traced_values_enter_the_gan_through_member_gan():
    objective = Objective(penalty="r1", penalty_weight=1.0)

    @jax.jit
    def weight(value):
        return pop.member_gan(GAN(objective=objective), {"penalty_weight": value}).objective.penalty_weight * 2

    assert float(weight(3.0)) == 6.0
    # Concrete values are still checked.
    with pytest.raises(ValueError, match="Objective.penalty_weight: must be in"):
        dataclasses.replace(objective, penalty_weight=-1.0)
    with pytest.raises(ValueError, match="the GAN has no penalty"):
        pop.member_gan(GAN(), {"penalty_weight": jnp.float32(1.0)})


def test_hyperparameters_are_checked():
    population, _ = tiny_population(2)
    with pytest.raises(ValueError, match="unknown loss hyperparameter 'label_smoothing'"):
        pop.set_loss_hparams(population, label_smoothing=0.9)
    with pytest.raises(ValueError, match=r"noise_std: every member's value must be finite and in \[0.0, inf\]"):
        pop.set_loss_hparams(population, noise_std=[0.1, -0.1])
    with pytest.raises(ValueError, match=r"label_flip_prob: every member's value must be finite and in \[0.0, 1.0\]"):
        pop.set_loss_hparams(population, label_flip_prob=[0.1, 1.5])
    with pytest.raises(ValueError, match="penalty_weight: every member's value must be finite"):
        pop.set_loss_hparams(population, penalty_weight=[1.0, float("inf")])
    with pytest.raises(ValueError, match=r"one per member \(2\), got shape \(3,\)"):
        pop.set_optimizer_hparams(population, "g", learning_rate=[1e-3, 1e-3, 1e-3])
    with pytest.raises(KeyError, match="momentum"):
        pop.set_optimizer_hparams(population, "g", momentum=0.9)
    with pytest.raises(ValueError, match="unknown lowering 'scan'"):
        pop.population_step(pop.gan_step(tiny_gan()), lowering="scan")


# ----------------------------------------------------------------------------- two devices, in a subprocess


def two_devices() -> None:
    """A population of 4 split over 2 devices trains as on one; a population of 3 is refused."""
    assert jax.device_count() == 2
    mesh = devices.make_mesh()
    population, gan = tiny_population(4)
    batches = {"image": jnp.stack([REAL["image"] + i for i in range(4)])}
    one, split = population, jax.device_put(population, NamedSharding(mesh, P(devices.DATA_AXIS)))
    one_step = pop.population_step(pop.gan_step(gan))
    split_step = pop.population_step(pop.gan_step(gan), mesh=mesh)
    for _ in range(3):
        one, _ = one_step(one, batches)
        split, metrics = split_step(split, batches)
    assert [shard.data.shape[0] for shard in split.step.addressable_shards] == [2, 2]
    assert metrics["d_loss"].shape == (4,)
    assert_close(flat(split), flat(one))
    shared, _ = pop.population_step(pop.gan_step(gan), shared_batch=True, mesh=mesh)(split, REAL)
    assert int(shared.step[0]) == 4
    with np.testing.assert_raises_regex(ValueError, "a population of 3 does not divide evenly over 2 devices"):
        split_step(tiny_population(3)[0], batches)


@pytest.mark.slow
def test_population_splits_over_two_devices():
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "PYTHONPATH": str(ROOT),
        "JAX_PLATFORMS": "cpu",
        "JAX_COMPILATION_CACHE_DIR": jax.config.jax_compilation_cache_dir or "",
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.5",
    }
    run = subprocess.run(
        [sys.executable, __file__, "two_devices"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]


if __name__ == "__main__":
    {"two_devices": two_devices}[sys.argv[1]]()
