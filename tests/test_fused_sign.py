"""The native fused ``ste_sign`` operator (native/ops/ste_sign.cc) against the composition of MXNet operators
it replaces in training (binary_models.nn.quantization.ste_sign): the same values and gradients to the bit,
imperatively and in a hybridized model; bad input raises MXNetError naming it; the training commands turn it
(and binary_conv2d_train, tests/test_training_conv.py) on for CPU runs only, and back off after."""
import argparse
import json

import numpy as np
import pytest
import mxnet as mx
from mxnet import autograd, nd

import binary_models as bm
from binary_models.commands import cli
from binary_models.inference import native
from binary_models.models import meliusnet
from binary_models.models.meliusnet import ImprovementBlock
from binary_models.nn import layers, quantization
from graphs import graph_operators, one_training_step, small_binary_model


@pytest.fixture(scope="module", autouse=True)
def library():
    return native.load()


@pytest.fixture(autouse=True)
def composed_afterwards():
    yield
    quantization.use_fused_sign(False)


def with_edges(rng, dtype, grad_cancel, shape=(3, 5, 7, 9)):
    """Random values and every edge case: the threshold and its neighbours, zeros of both signs, NaN, infinities."""
    x = (rng.randn(*shape) * 2).astype(dtype)
    limit = np.array(grad_cancel, dtype)
    edges = [limit, -limit, np.nextafter(limit, 9), np.nextafter(-limit, -9), np.nextafter(limit, 0), 0.0, -0.0,
             np.nan, np.inf, -np.inf, grad_cancel, -grad_cancel]
    x.ravel()[:len(edges)] = edges
    return x


def sign_and_gradient(x, grad, grad_cancel, fused):
    quantization.use_fused_sign(fused)
    data = nd.array(x, dtype=x.dtype)
    data.attach_grad()
    with autograd.record():
        y = quantization.ste_sign(nd, data, grad_cancel)
    y.backward(nd.array(grad, dtype=x.dtype))
    return y.asnumpy(), data.grad.asnumpy()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("grad_cancel", [1.3, 1.0, 0.1, 2.5])
def test_fused_sign_gives_the_composed_values_and_gradients_to_the_bit(dtype, grad_cancel):
    rng = np.random.RandomState(int(grad_cancel * 10))
    x = with_edges(rng, dtype, grad_cancel)
    grad = rng.randn(*x.shape).astype(dtype)
    composed, fused = (sign_and_gradient(x, grad, grad_cancel, on) for on in (False, True))
    for expected, got in zip(composed, fused):
        assert got.dtype == expected.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(expected))
    # and against NumPy: +1 where x >= 0 (NaN: -1); the gradient where |x| <= grad_cancel, compared in dtype
    np.testing.assert_array_equal(fused[0], np.where(x >= 0, 1, -1))
    np.testing.assert_array_equal(fused[1], np.where(np.abs(x) <= np.array(grad_cancel, dtype), grad, 0))


def one_step_gradients(fused, x, y):
    """The parameter gradients of one step of a hybridized model, and the operators of its graph."""
    quantization.use_fused_sign(fused)
    _, _, gradients, operators = one_training_step(small_binary_model, x, y)
    return gradients, operators


def test_a_hybridized_model_has_the_same_gradients_with_the_fused_sign():
    rng = np.random.RandomState(0)
    x, y = nd.array(rng.randn(4, 3, 12, 12)), nd.array([0, 1, 2, 3])
    composed, composed_ops = one_step_gradients(False, x, y)
    fused, fused_ops = one_step_gradients(True, x, y)
    assert fused_ops["ste_sign"] == 3 and composed_ops["ste_sign"] == 0  # one per binary layer's input
    assert sum(fused_ops.values()) <= sum(composed_ops.values()) - 3 * 10  # instead of a dozen operators each
    assert composed.keys() == fused.keys() and len(fused) >= 8
    for name in composed:
        np.testing.assert_array_equal(fused[name], composed[name], err_msg=name)
    assert any(np.abs(g).sum() > 0 for name, g in fused.items() if "qconv" in name)  # gradients flow through


@pytest.mark.parametrize("call, message", [
    (lambda: nd.ste_sign(nd.ones((2, 3), dtype="int32"), grad_cancel=1), "data must be float32 or float64, got int32"),
    (lambda: nd.ste_sign(nd.ones((2, 3))), "grad_cancel: required attribute missing"),
    (lambda: nd.ste_sign(nd.ones((2, 3)), grad_cancel="high"), "grad_cancel: 'high' is not a number"),
    (lambda: nd.ste_sign(nd.ones((2, 3)), grad_cancel=1, clip=2), "unknown attribute 'clip'"),
])
def test_bad_input_to_the_fused_sign_names_the_problem(call, message):
    with pytest.raises(mx.MXNetError, match=message):
        call().wait_to_read()


@pytest.mark.parametrize("no_fused_sign, no_xnor_conv, on_gpus, sign_expected, conv_expected", [
    (False, False, False, True, True), (True, False, False, False, True), (False, True, False, True, False),
    (False, False, True, False, False)])
def test_training_commands_use_the_native_operators_on_the_cpu_only_while_they_run(
        no_fused_sign, no_xnor_conv, on_gpus, sign_expected, conv_expected):
    opt = argparse.Namespace(no_fused_sign=no_fused_sign, no_xnor_conv=no_xnor_conv)
    with cli.native_training_on_cpu(opt, on_gpus):
        operators = graph_operators(bm.QConv2D(4, 3, padding=1, in_channels=2)(mx.sym.var("data")))
        assert ("ste_sign" in operators) == sign_expected
        assert ("binary_conv2d_train" in operators) == conv_expected
        assert ("Convolution" in operators) != conv_expected  # the float convolution and its padding correction
        improvement = ImprovementBlock(4, in_channels=8)(mx.sym.var("data"))
        last = json.loads(improvement.tojson())["nodes"][-1]["op"]
        assert last == ("Concat" if on_gpus else "elemwise_add")  # the whole-map sum on the CPU
    assert not quantization.use_fused_sign(False)  # restored
    assert not layers.use_xnor_training_conv(False)
    assert not meliusnet.use_whole_map_sum(False)
