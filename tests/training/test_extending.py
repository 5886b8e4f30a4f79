"""Extending ganjax: a new loss and a new penalty are one function and one registry entry each; a new hook is a
class with its period and a call."""

import itertools
import json

import jax
import jax.numpy as jnp
import numpy as np

from ganjax import losses, penalties
from ganjax.latent import Latent
from ganjax.run import Log
from ganjax.training.gan import GAN, create_state
from ganjax.training.loop import Hook, train_loop
from ganjax.training.objective import Objective
from ganjax.training.phases import make_step
from tests.training.tiny import LATENT, REAL, LinearD, TinyG


def exponential_d_loss(real_logits, fake_logits):
    """A loss no one ships: ``E exp(-D(x)) + E exp(D(G(z)))``."""
    return jnp.mean(jnp.exp(-real_logits)) + jnp.mean(jnp.exp(fake_logits))


def exponential_g_loss(fake_logits, real_logits=None):
    del real_logits
    return jnp.mean(jnp.exp(-fake_logits))


def squared_scores(d_fn, real, fake, key):
    """A penalty no one ships: ``E D(x)^2`` (the drift term of PGGAN, as a penalty)."""
    del fake, key
    return jnp.mean(jnp.square(d_fn(real)))


def test_a_new_loss_and_penalty_train_through_the_step(monkeypatch):
    monkeypatch.setitem(
        losses.LOSSES,
        "exponential",
        losses.LossPair(
            exponential_d_loss,
            exponential_g_loss,
            uses_labels=False,
            g_needs_real=False,
            probabilistic=False,
            d_loss_bounded_below=True,
        ),
    )
    monkeypatch.setitem(penalties.PENALTIES, "squared_scores", penalties.Penalty(squared_scores, views=("real",)))
    gan = GAN(Latent(dim=LATENT), Objective(loss="exponential", penalty="squared_scores", penalty_weight=2.0))
    state = create_state(jax.random.key(0), gan, TinyG(), LinearD(), (4,))
    d_params = state.players["d"].params
    step = jax.jit(make_step(gan.phases()))
    new, metrics = step(state, REAL)
    real_scores = state.players["d"](d_params, REAL["image"], train=False)[0]
    np.testing.assert_allclose(metrics["penalty"], np.mean(np.square(real_scores)), rtol=1e-6)
    assert float(metrics["d_loss"]) > 0 and np.isfinite(float(metrics["g_loss"]))
    assert not np.allclose(new.players["d"].params["Dense_0"]["kernel"], d_params["Dense_0"]["kernel"])


def test_a_new_hook_is_a_class_with_its_period_and_a_call(tmp_path):
    class Seen(Hook):  # the whole hook: it adds a value to the next log record every 2 steps
        every = 2

        def __call__(self, context):
            context.record["seen"] = context.step

    step = lambda state, batch: (state + 1, {"loss": jnp.float32(state)})
    train_loop(0, step, lambda start: itertools.repeat(None), 4, [Seen(), Log(2, tmp_path)], step_of=int)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["seen"], r["loss"]) for r in records] == [(2, 2, 0.5), (4, 4, 2.5)]
