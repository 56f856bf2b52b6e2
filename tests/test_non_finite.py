"""NaN and +-inf (issue 16): one rule, a value binarizes as ``x >= 0`` says (NaN -> -1, +inf -> +1, -inf -> -1),
in every quantizer (:mod:`binary_models.quantization`) and in the native operators; the float-emulated layers
keep values and gradients finite; ``norm_pool`` treats them as MXNet's BatchNorm -> ReLU -> Pooling do, to
the bit; a converted model and its float twin agree on images with NaN and +-inf pixels and with a
non-finite weight."""
import numpy as np
import pytest
import mxnet as mx
from mxnet import autograd, nd
from mxnet.gluon import nn

import binary_models as bm
from binary_models.inference import native
from binary_models.nn import quantization as q
from binary_models.inference.convert import convert
from binary_models.inference.packed_layers import BinaryConv2D, BinaryDense, BinaryDenseStage
from test_fused_inference import convert_float_sequence, dense_units, random_batchnorm, thin, trained_like
import reference

NAN, INF = np.float32(np.nan), np.float32(np.inf)
# the special values, values near the cancelling thresholds, and the tiny values that multiple binarization
# puts in place of the non-finite ones (so their results must be alike)
SPECIAL = np.array([NAN, INF, -INF, 0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0, 1e30, -1e30, 1e-30, -1e-30],
                   np.float32)
NON_FINITE = ~np.isfinite(SPECIAL)


@pytest.fixture(scope="module", autouse=True)
def library():
    return native.load()


def with_special_values(rng, shape, share=0.3):
    """Normal values with a ``share`` of them replaced by the entries of SPECIAL (NaN and +-inf included)."""
    x = rng.normal(0, 1, shape).astype(np.float32)
    chosen = rng.rand(*shape) < share
    x[chosen] = rng.choice(SPECIAL, int(chosen.sum()))
    return x


def assert_same_floats(got, expected):
    """Equal to the bit (0.0 and -0.0 apart), NaN where and only where ``expected`` has NaN."""
    got, expected = np.asarray(got, np.float32), np.asarray(expected, np.float32)
    assert got.shape == expected.shape
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(got), nan)
    mismatch = got[~nan].view(np.uint32) != expected[~nan].view(np.uint32)
    assert not mismatch.any(), (got[~nan][mismatch][:5], expected[~nan][mismatch][:5])


# ---- each quantizer, forward and backward ----

QUANTIZERS = [q.SteSign(), q.SteSign(grad_cancel=3.0), q.ApproxSign(), q.MultiSign(2), q.MultiSign(3),
              q.DoReFaActivation(2), q.DoReFaActivation(8), q.WeightSign(), q.DoReFaWeight(2), q.DoReFaWeight(4),
              q.SteHeaviside(), q.SwishSign(), q.SwishSign(beta=30.0), q.MagnitudeAwareSign(), q.SteTern(),
              q.SteTern(ternary_weight_networks=True)]
ALL_REGISTERED = set(q.ACTIVATION_QUANTIZERS.values()) | set(q.WEIGHT_QUANTIZERS.values())


def test_every_registered_quantizer_has_a_row():
    assert ALL_REGISTERED <= {type(quantizer) for quantizer in QUANTIZERS}


def run_quantizer(quantizer, values, unscaled=False):
    x = nd.array(values)
    x.attach_grad()
    with autograd.record():
        y = quantizer.unscaled(nd, x) if unscaled else quantizer(nd, x)
    y.backward(nd.ones_like(y))
    return y.asnumpy(), x.grad.asnumpy()


@pytest.mark.parametrize("quantizer", QUANTIZERS, ids=repr)
def test_quantizer_values_and_gradients_stay_finite_with_nan_and_inf(quantizer):
    value, grad = run_quantizer(quantizer, SPECIAL.reshape(1, -1))
    assert np.isfinite(value).all(), value
    assert np.isfinite(grad).all(), grad
    np.testing.assert_array_equal(grad[0, NON_FINITE], 0)  # surrogates are zero where the input is not finite


@pytest.mark.parametrize("quantizer", [p for p in QUANTIZERS if p.packable], ids=repr)
def test_packable_quantizer_binarizes_as_x_greater_equal_zero(quantizer):
    """What the packed kernel computes: the value before a scale the layer puts on its output."""
    value, _ = run_quantizer(quantizer, SPECIAL.reshape(1, -1), unscaled=True)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(value[0], np.where(SPECIAL >= 0, 1, -1))


def test_multi_binarization_treats_nan_and_minus_inf_as_tiny_negative_and_plus_inf_as_tiny_positive():
    value, _ = run_quantizer(q.MultiSign(3), SPECIAL.reshape(1, -1))
    tiny, minus_tiny = (int(np.flatnonzero(SPECIAL == np.float32(v))[0]) for v in (1e-30, -1e-30))
    assert value[0, 0] == value[0, 2] == value[0, minus_tiny]
    assert value[0, 1] == value[0, tiny]


@pytest.mark.parametrize("quantizer,nan,plus_inf,minus_inf", [
    (q.DoReFaActivation(2), 0.0, 1.0, 0.0), (q.DoReFaWeight(2), -1.0, 1.0, -1.0)], ids=repr)
def test_dorefa_maps_nan_to_its_lowest_level(quantizer, nan, plus_inf, minus_inf):
    value, _ = run_quantizer(quantizer, SPECIAL.reshape(1, -1))
    np.testing.assert_array_equal(value[0, :3], [nan, plus_inf, minus_inf])


# ---- the layers: non-finite inputs and weights, forward and backward ----

LAYER_OPTIONS = [dict(), dict(activation_method="approx_sign"), dict(scaling="channel"), dict(scaling="scalar"),
                 dict(pad_mode="zero"), dict(binarizations=2), dict(bits=2, bits_a=2), dict(bits=4, bits_a=1)]


def option_id(options):
    return ",".join("%s=%s" % kv for kv in sorted(options.items())) or "default"


@pytest.mark.parametrize("options", LAYER_OPTIONS, ids=option_id)
@pytest.mark.parametrize("kind", ["conv", "dense"])
def test_layer_outputs_and_gradients_stay_finite_with_non_finite_inputs_and_weights(kind, options):
    rng = np.random.RandomState(0)
    layer = (bm.QConv2D(6, 3, padding=1, in_channels=5, **options) if kind == "conv"
             else bm.QDense(6, in_units=5 * 4 * 4, **options))
    layer.initialize(mx.init.Normal(1.0))
    layer.weight.set_data(nd.array(with_special_values(rng, layer.weight.shape)))
    x = nd.array(with_special_values(rng, (2, 5, 4, 4)))
    x.attach_grad()
    with autograd.record():
        y = layer(x)
    y.backward(nd.array(rng.normal(0, 1, y.shape)))
    assert np.isfinite(y.asnumpy()).all()
    assert np.isfinite(x.grad.asnumpy()).all()
    assert np.isfinite(layer.weight.grad().asnumpy()).all()


# ---- the native operators equal the float-emulated layers ----

PACKABLE_OPTIONS = [dict(), dict(activation_method="approx_sign"), dict(scaling="channel"), dict(scaling="scalar"),
                    dict(pad_mode="zero")]


@pytest.mark.parametrize("options", PACKABLE_OPTIONS, ids=option_id)
def test_binary_conv2d_equals_qconv2d_with_non_finite_inputs_and_weights(options, kernels_isa):
    rng = np.random.RandomState(1)
    conv = bm.QConv2D(70, 3, padding=1, in_channels=67, **options)
    conv.initialize(mx.init.Normal(1.0))
    conv.weight.set_data(nd.array(with_special_values(rng, conv.weight.shape, 0.05)))
    x = nd.array(with_special_values(rng, (2, 67, 6, 7)))
    assert_same_floats(BinaryConv2D(conv)(x).asnumpy(), conv(x).asnumpy())
    bn = random_batchnorm(rng, 67)  # the folded-BatchNorm compares: gamma 0, negative gamma, -0.0 beta
    assert_same_floats(BinaryConv2D(conv, batchnorm=bn)(x).asnumpy(), conv(bn(x)).asnumpy())


@pytest.mark.parametrize("options", PACKABLE_OPTIONS[:4], ids=option_id)
def test_binary_dense_equals_qdense_with_non_finite_inputs_and_weights(options):
    rng = np.random.RandomState(2)
    dense = bm.QDense(10, in_units=130, **options)
    dense.initialize(mx.init.Normal(1.0))
    dense.weight.set_data(nd.array(with_special_values(rng, dense.weight.shape, 0.05)))
    x = nd.array(with_special_values(rng, (3, 130)))
    assert_same_floats(BinaryDense(dense)(x).asnumpy(), dense(x).asnumpy())


def test_dense_stage_equals_the_float_units_with_non_finite_inputs():
    rng = np.random.RandomState(4)
    seq = dense_units(rng, "DIDI", 24)
    x = nd.array(with_special_values(rng, (2, 24, 6, 5)))
    packed = convert(seq)
    assert isinstance(packed[0], BinaryDenseStage)
    assert_same_floats(packed(x).asnumpy(), seq(x).asnumpy())


# ---- norm_pool against MXNet's BatchNorm, ReLU and Pooling ----

POOLS = [dict(kernel=(2, 2), stride=(2, 2), pad=(0, 0)), dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1)),
         dict(kernel=(1, 2), stride=(1, 1), pad=(0, 0)), None]


@pytest.mark.parametrize("relu", [True, False], ids=["relu", "no_relu"])
@pytest.mark.parametrize("pool", POOLS, ids=lambda p: "kernel%s_stride%s_pad%s" % (p["kernel"], p["stride"], p["pad"])
                         if p else "no_pool")
def test_norm_pool_treats_nan_inf_and_signed_zeros_as_mxnets_pooling_and_relu(pool, relu):
    """With mean 0, scale 1 and shift -0.0 the BatchNorm part returns x itself (-0.0 included), so MXNet's
    Pooling and Activation on x are the reference: NaN never wins a window, a window of NaN and -inf gives
    -FLT_MAX, of 0.0 and -0.0 the first in raster order; ReLU gives 0 for NaN and -0.0."""
    rng = np.random.RandomState(5)
    x = with_special_values(rng, (2, 16, 7, 9), 0.5)
    x[0, 0] = rng.choice(np.array([0.0, -0.0, -1.0], np.float32), (7, 9))  # ties of signed zeros
    x[0, 1] = rng.choice(np.array([NAN, -INF], np.float32), (7, 9))        # windows without a number
    channels = x.shape[1]
    expected = nd.array(x)
    if pool:
        expected = nd.Pooling(expected, pool_type="max", **pool)
    if relu:
        expected = nd.Activation(expected, act_type="relu")
    got = nd.norm_pool(nd.array(x), nd.zeros(channels), nd.ones(channels), -nd.zeros(channels), relu=relu,
                       **(pool or {}))
    assert_same_floats(got.asnumpy(), expected.asnumpy())


@pytest.mark.parametrize("make_blocks", [
    lambda: [nn.BatchNorm(), nn.MaxPool2D(2, 2), nn.Activation("relu")],     # transition
    lambda: [nn.BatchNorm(), nn.Activation("relu"), nn.MaxPool2D(3, 2, 1)],  # stem
    lambda: [nn.BatchNorm(), nn.Activation("relu")],                         # head, SSD taps
], ids=["transition", "stem", "head"])
def test_fused_norm_pool_equals_the_float_blocks_with_non_finite_inputs(make_blocks):
    rng = np.random.RandomState(6)
    seq = nn.HybridSequential()
    seq.add(*make_blocks())
    seq.initialize()
    bn = random_batchnorm(rng, 32)  # gamma 0 turns +-inf into NaN
    for name in ("gamma", "beta", "running_mean", "running_var"):
        getattr(seq[0], name).set_data(getattr(bn, name).data())
    x = nd.array(with_special_values(rng, (2, 32, 9, 8)))
    expected = seq(x).asnumpy()  # first: it completes the deferred initialisation
    assert_same_floats(convert_float_sequence(seq)(x).asnumpy(), expected)


# ---- a whole converted model and its float twin ----

def pixel(value):
    def spoil(x, net):
        x[0, 1, 5, 7] = value
        x[2, :, 0, 0] = value
    return spoil


def binary_weight(value):
    def spoil(x, net):
        conv = next(b for b in reference.blocks(net) if isinstance(b, bm.QConv2D) and b.packable)
        weight = conv.weight.data().asnumpy()
        weight[0, 0, 1, 1] = value
        weight[-1, :, 0, :] = value
        conv.weight.set_data(nd.array(weight))
    return spoil


@pytest.mark.parametrize("name", ["meliusnet22", "resnet_e18"])
@pytest.mark.parametrize("spoil", [pixel(INF), pixel(-INF), pixel(NAN), binary_weight(NAN), binary_weight(INF)],
                         ids=["pixel+inf", "pixel-inf", "pixel_nan", "weight_nan", "weight+inf"])
def test_converted_model_predicts_what_its_float_twin_predicts_with_non_finite_values(name, spoil):
    """The issue's report: one +inf pixel made a float meliusnet22 predict class 9 and its packed twin 4."""
    net = trained_like(thin(name), (1, 3, 16, 16))
    x = np.random.RandomState(7).normal(0, 1, (4, 3, 16, 16)).astype(np.float32)
    spoil(x, net)
    expected = net(nd.array(x)).asnumpy()
    got = convert(net)(nd.array(x)).asnumpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(got.argmax(axis=1), expected.argmax(axis=1))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4, equal_nan=True)
