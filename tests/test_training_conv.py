"""binary_conv2d_train (native/ops/binary_conv_train.cc), QConv2D's convolution during training on the CPU: its
forward pass (the xnor kernel) equals the float convolution of the signs to the bit, its gradients are those of
that convolution (against float64 NumPy, on each float micro-kernel); in a hybridized model and in MeliusNet the
outputs are the float-emulated ones to the bit and the gradients theirs within float rounding; it is used only
for the layers it computes; bad input: tests/test_bad_input_api.py."""
import numpy as np
import pytest
import mxnet as mx
from mxnet import autograd, gluon, nd

import binary_models as bm
from binary_models.inference import native
from binary_models.models import meliusnet
from binary_models.nn import layers, quantization
import graphs
import reference
from graphs import graph_operators, one_training_step

FLOAT_ISAS = ("scalar", "avx2", "avx512", "neon")  # as tests/test_float_conv.py: each picks a float micro-kernel
PAD_VALUES = {"minus_one": -1.0, "zero": 0.0, "one": 1.0}


@pytest.fixture(scope="module", autouse=True)
def library():
    return native.load()


@pytest.fixture(autouse=True)
def float_emulated_afterwards():
    yield
    layers.use_xnor_training_conv(False)
    quantization.use_fused_sign(False)
    meliusnet.use_whole_map_sum(False)


def signs(rng, shape):
    return np.where(rng.randn(*shape) >= 0, 1.0, -1.0).astype(np.float32)


def assert_gradient_close(got, expected, name=""):
    """Within float32 rounding of sums of +-1 products: relative to the gradient's largest magnitude."""
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(expected).max()), err_msg=name)


@pytest.mark.parametrize("kernels_isa", FLOAT_ISAS, indirect=True)
@pytest.mark.parametrize("shape, kernel, pad, pad_mode", [
    ((2, 70, 9, 11, 13), 3, 1, "minus_one"), ((3, 64, 7, 7, 64), 3, 1, "zero"), ((1, 5, 6, 5, 3), 3, 0, "one"),
    ((2, 3, 8, 8, 5), 5, 2, "one"), ((2, 130, 5, 6, 7), 1, 0, "minus_one"), ((1, 9, 4, 12, 66), (1, 3), (0, 1),
                                                                            "minus_one")])
def test_values_and_gradients_are_those_of_the_float_convolution_of_the_signs(kernels_isa, shape, kernel, pad,
                                                                                pad_mode):
    rng = np.random.RandomState(sum(shape))
    n, c, h, w, f = shape
    kernel, pad = (kernel, kernel) if isinstance(kernel, int) else kernel, (pad, pad) if isinstance(pad, int) else pad
    x, weight = signs(rng, (n, c, h, w)), signs(rng, (f, c) + kernel)
    data, weights = nd.array(x), nd.array(weight)
    data.attach_grad(), weights.attach_grad()
    with autograd.record():
        out = nd.binary_conv2d_train(data, weights, kernel=kernel, pad=pad, num_filter=f, pad_mode=pad_mode)
    d_out = rng.randn(*out.shape).astype(np.float32)
    out.backward(nd.array(d_out))
    np.testing.assert_array_equal(out.asnumpy(), reference.conv2d(x, weight, pad=pad, pad_value=PAD_VALUES[pad_mode]))
    d_x, d_w = reference.conv2d_gradients(x, weight, d_out, pad, PAD_VALUES[pad_mode])
    assert_gradient_close(data.grad.asnumpy(), d_x, "data")
    assert_gradient_close(weights.grad.asnumpy(), d_w, "weight")


def small_binary_model():
    """Layers binary_conv2d_train computes (padding -1, 0; output scaling) and one it does not (stride 2)."""
    return graphs.small_binary_model(lambda: (
        bm.QConv2D(16, 3, padding=1, in_channels=8), gluon.nn.BatchNorm(),
        bm.QConv2D(16, 3, padding=1, in_channels=16, scaling="channel", pad_mode="zero"),
        bm.QConv2D(16, 3, padding=1, strides=2, in_channels=16)))


def one_step(build, xnor_conv, x, y):
    """The output and parameter gradients of one training step of a hybridized model, and its graph's operators."""
    quantization.use_fused_sign(True)
    layers.use_xnor_training_conv(xnor_conv)
    return one_training_step(build, x, y)[1:]


@pytest.mark.parametrize("build, shape, trained_convs", [
    (small_binary_model, (4, 3, 12, 12), 2),
    # its 34 binary 3x3 convolutions; its BatchNorms see NCHW from them, where oneDNN's blocked layout came from
    # the float Convolution: they round differently (so the logits are compared within rounding)
    (lambda: bm.get_model("meliusnet22", classes=10), (2, 3, 64, 64), 34)])
def test_a_hybridized_model_computes_the_same_values_and_gradients(build, shape, trained_convs):
    rng = np.random.RandomState(0)
    x, y = nd.array(rng.randn(*shape)), nd.array(np.arange(shape[0]) % 4)
    if trained_convs > 2:
        meliusnet.use_whole_map_sum(True)  # as the training commands on the CPU
    emulated, emulated_gradients, emulated_ops = one_step(build, False, x, y)
    xnor, xnor_gradients, xnor_ops = one_step(build, True, x, y)
    assert xnor_ops["binary_conv2d_train"] == trained_convs and emulated_ops["binary_conv2d_train"] == 0
    assert xnor_ops["Convolution"] < emulated_ops["Convolution"] - trained_convs  # and their padding corrections
    if trained_convs == 2:
        np.testing.assert_array_equal(xnor, emulated)
    else:
        assert_gradient_close(xnor, emulated, "logits")
    assert emulated_gradients.keys() == xnor_gradients.keys()
    for name, expected in emulated_gradients.items():
        assert_gradient_close(xnor_gradients[name], expected, name)
    assert all(np.abs(g).sum() > 0 for name, g in xnor_gradients.items() if "qconv" in name)


@pytest.mark.parametrize("layer, trained", [
    (lambda: bm.QConv2D(8, 3, padding=1, in_channels=4), True),
    (lambda: bm.QConv2D(8, 1, in_channels=4, activation_method="approx_sign"), True),
    (lambda: bm.QConv2D(8, 3, padding=1, strides=2, in_channels=4), False),
    (lambda: bm.QConv2D(8, 3, padding=2, dilation=2, in_channels=4), False),
    (lambda: bm.QConv2D(8, 3, padding=1, groups=2, in_channels=4), False),
    (lambda: bm.QConv2D(8, 3, padding=3, in_channels=4), False),
    (lambda: bm.QConv2D(8, 3, padding=1, in_channels=4, bits_a=2), False),
    (lambda: bm.QConv2D(8, 3, padding=1, in_channels=4, bits=2), False),
])
def test_only_the_layers_it_computes_use_it(layer, trained):
    layers.use_xnor_training_conv(True)
    block = layer()
    assert block.xnor_trainable == trained
    assert ("binary_conv2d_train" in graph_operators(block(mx.sym.var("data")))) == trained
