"""ganjax.nn.conv: the fast transposed conv equals flax.linen.ConvTranspose in value and every gradient; its
zero-free (sub-pixel) dilated convolutions equal lax's."""

import itertools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.extend import core as jax_core

from ganjax.nn import Conv, ConvTranspose, conv, conv_transpose

PADDINGS = ["SAME", "VALID", ((1, 2), (0, 1)), ((2, 2), (3, 3))]
# (kernel size, input channels, output channels), cycled over the stride x padding cases so that
# every shape meets both strides and several paddings.
SHAPES = [(1, 3, 2), (3, 1, 4), (4, 5, 3)]
CASES = [
    (strides, padding, *SHAPES[i % len(SHAPES)])
    for i, (strides, padding) in enumerate(itertools.product([1, 2], PADDINGS))
]


def assert_rel_close(actual, expected, tol=1e-4):
    """``max |actual - expected| <= tol * max |expected|``."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    assert np.max(np.abs(actual - expected)) <= tol * np.max(np.abs(expected)), np.max(np.abs(actual - expected))


@pytest.mark.parametrize("strides,padding,kernel,c_in,c_out", CASES)
def test_matches_flax_value_and_gradients(strides, padding, kernel, c_in, c_out):
    kwargs = dict(
        features=c_out,
        kernel_size=(kernel, kernel),
        strides=(strides, strides),
        padding=padding,
        bias_init=nn.initializers.normal(1.0),
    )
    ours, ref = ConvTranspose(**kwargs), nn.ConvTranspose(**kwargs)
    kx, kp, kc = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (2, 5, 6, c_in))
    params = ours.init(kp, x)["params"]
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, ref.init(kp, x)["params"])
    cotangent = jax.random.normal(kc, ours.apply({"params": params}, x).shape)

    @jax.jit
    def value_and_grads(module_params, inputs):
        def loss(args, module):
            return jnp.sum(module.apply({"params": args[0]}, args[1]) * cotangent)

        return [
            (module.apply({"params": module_params}, inputs), jax.grad(loss)((module_params, inputs), module))
            for module in (ours, ref)
        ]

    (y, (g_params, g_x)), (y_ref, (g_params_ref, g_x_ref)) = value_and_grads(params, x)
    assert_rel_close(y, y_ref)
    assert_rel_close(g_x, g_x_ref)
    assert_rel_close(g_params["kernel"], g_params_ref["kernel"])
    assert_rel_close(g_params["bias"], g_params_ref["bias"])
    # Bias gradient by hand: the cotangent summed over batch and space.
    np.testing.assert_allclose(g_params["bias"], np.sum(np.asarray(cotangent), axis=(0, 1, 2)), rtol=1e-4)


def test_second_order_through_jit():
    """Gradients of gradients still match (the custom VJP is itself differentiable)."""
    module_kwargs = dict(features=2, kernel_size=(3, 3), strides=(2, 2))
    x = jax.random.normal(jax.random.key(1), (1, 4, 4, 3))
    params = ConvTranspose(**module_kwargs).init(jax.random.key(2), x)["params"]

    def grad_norm(module):
        def inner(inputs):
            return jnp.sum(jnp.sin(module.apply({"params": params}, inputs)))

        return jax.jit(jax.grad(lambda inputs: jnp.sum(jax.grad(inner)(inputs) ** 2)))(x)

    assert_rel_close(grad_norm(ConvTranspose(**module_kwargs)), grad_norm(nn.ConvTranspose(**module_kwargs)))


@pytest.mark.parametrize("strides,padding,kernel,c_in,c_out", CASES)
def test_conv_matches_flax_to_second_order(strides, padding, kernel, c_in, c_out):
    """ganjax's Conv equals flax's in value, gradients, and the gradient of an input-gradient penalty."""
    kwargs = dict(
        features=c_out,
        kernel_size=(kernel, kernel),
        strides=(strides, strides),
        padding=padding,
        bias_init=nn.initializers.normal(1.0),
    )
    ours, ref = Conv(**kwargs), nn.Conv(**kwargs)
    x = jax.random.normal(jax.random.key(1), (2, 7, 6, c_in))
    params = ours.init(jax.random.key(2), x)["params"]
    weights = jax.random.normal(jax.random.key(3), ours.apply({"params": params}, x).shape)

    def penalty(module):
        def input_grad_norm(p):  # as in WGAN-GP / R1: a function of grad_x D(x)
            grad_x = jax.grad(lambda v: jnp.vdot(jnp.tanh(module.apply({"params": p}, v)), weights))(x)
            return jnp.sum(grad_x**2) + jnp.vdot(module.apply({"params": p}, x), weights)

        return jax.jit(jax.value_and_grad(input_grad_norm))(params)

    for actual, expected in zip(jax.tree.leaves(penalty(ours)), jax.tree.leaves(penalty(ref))):
        assert_rel_close(actual, expected)


DN = ("NHWC", "HWIO", "NHWC")


@pytest.mark.parametrize("strides,padding,kernel,c_in,c_out", CASES)
@pytest.mark.parametrize("size", [(8, 6), (7, 6)])
def test_transposed_conv_and_input_gradient_equal_laxs(strides, padding, kernel, c_in, c_out, size):
    """Split by output phase where the sizes allow it (8 x 6), dilated where they do not (7 rows)."""
    x = jax.random.normal(jax.random.key(0), (2, *size, c_in))
    k = jax.random.normal(jax.random.key(1), (kernel, kernel, c_in, c_out))
    s = (strides, strides)
    assert_rel_close(conv_transpose(x, k, s, padding), lax.conv_transpose(x, k, s, padding, dimension_numbers=DN))
    g = jax.random.normal(jax.random.key(2), lax.conv_general_dilated(x, k, s, padding, dimension_numbers=DN).shape)
    ours = jax.vjp(lambda v: conv(v, k, s, padding), x)[1](g)[0]
    ref = jax.vjp(lambda v: lax.conv_general_dilated(v, k, s, padding, dimension_numbers=DN), x)[1](g)[0]
    assert_rel_close(ours, ref)


def _input_dilations(fn, *args) -> list[tuple[int, ...]]:
    """The ``lhs_dilation`` of every convolution in ``fn``'s jaxpr, custom VJPs included."""
    found = []

    def visit(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "conv_general_dilated":
                found.append(tuple(eqn.params["lhs_dilation"]))
            for sub in jax_core.jaxprs_in_params(eqn.params):
                visit(sub)

    visit(jax.make_jaxpr(fn)(*args).jaxpr)
    return found


def test_dcgan_layers_convolve_no_zeros():
    """DCGAN's 4x4 stride-2 layers: G's transposed conv and D's input gradient are four stride-1 convs each."""
    x, k = jnp.ones((2, 16, 16, 8)), jnp.ones((4, 4, 8, 4))
    g = jnp.ones((2, 8, 8, 4))
    input_grad = lambda g: jax.vjp(lambda v: conv(v, k, (2, 2), "SAME"), x)[1](g)[0]
    assert set(_input_dilations(input_grad, g)) == {(1, 1)}  # and, without the sub-pixel form, (2, 2)
    assert _input_dilations(lambda v: conv_transpose(v, jnp.ones((4, 4, 4, 8)), (2, 2), "SAME"), g) == [(1, 1)] * 4
