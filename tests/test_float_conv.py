"""float_conv2d, the library's full-precision convolution (native/kernels/float_conv.h) that converted models
run for grouped convolutions: against MXNet's Convolution and a float64 NumPy reference on random shapes, on
each float micro-kernel (the binary kernels' ISA caps it); bad input raises MXNetError naming the problem; the
converter uses it for grouped convs only."""
import json

import numpy as np
import pytest
import mxnet as mx
from mxnet import nd
from mxnet.gluon import nn

import binary_models as bm
from binary_models.inference import native
from binary_models.inference.convert import convert, save_packed
from binary_models.inference.packed_layers import NativeGroupedConv
import reference

FUZZ_SHAPES = 60
# The float micro-kernels: the binary kernels' ISA picks one (scalar: generic vectors; avx2: AVX2 + FMA ...).
FLOAT_ISAS = ("scalar", "avx2", "avx512", "neon")


@pytest.fixture(scope="module", autouse=True)
def library():
    return native.load()


def random_float_conv(rng):
    """Attributes of a random convolution (groups, strides, padding, dilation, bias) and inputs it accepts."""
    while True:
        groups = int(rng.choice([1, 2, 3, 4, 8]))
        channels, filters = groups * int(rng.randint(1, 10)), groups * int(rng.randint(1, 13))
        k = int(rng.choice([1, 3, 3, 5]))
        stride, dilate, pad = int(rng.choice([1, 1, 2, 3])), int(rng.choice([1, 1, 2])), int(rng.randint(0, 3))
        h, w = int(rng.randint(1, 21)), int(rng.randint(1, 23))
        if h + 2 * pad >= dilate * (k - 1) + 1 and w + 2 * pad >= dilate * (k - 1) + 1:
            break
    attrs = dict(kernel=(k, k), stride=(stride, stride), dilate=(dilate, dilate), pad=(pad, pad), num_filter=filters,
                 num_group=groups, no_bias=bool(rng.rand() < 0.5))
    inputs = [rng.randn(int(rng.randint(1, 4)), channels, h, w), rng.randn(filters, channels // groups, k, k)]
    if not attrs["no_bias"]:
        inputs.append(rng.randn(filters))
    return attrs, [x.astype(np.float32) for x in inputs]


def numpy_conv(attrs, inputs):
    """float64 reference (tests/reference.py's convolution, zero padding), plus the bias."""
    x, w = inputs[0].astype(np.float64), inputs[1].astype(np.float64)
    out = reference.conv2d(x, w, attrs["stride"], attrs["pad"], attrs["dilate"], attrs["num_group"])
    return out if attrs["no_bias"] else out + inputs[2].astype(np.float64)[None, :, None, None]


@pytest.mark.parametrize("kernels_isa", FLOAT_ISAS, indirect=True)
def test_float_conv2d_equals_mxnet_convolution_and_numpy_on_random_shapes(kernels_isa):
    rng = np.random.RandomState(7)  # the same shapes on every ISA
    for _ in range(FUZZ_SHAPES):
        attrs, inputs = random_float_conv(rng)
        arrays = [nd.array(x) for x in inputs]
        result = nd.float_conv2d(*arrays, **attrs).asnumpy()
        expected = numpy_conv(attrs, inputs)
        # float32 sums of at most 9 * 25 terms of N(0, 1) products: within 1e-5 of the float64 result
        np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-5, err_msg="%s: %r" % (kernels_isa, attrs))
        np.testing.assert_allclose(result, nd.Convolution(*arrays, **attrs).asnumpy(), rtol=1e-5, atol=1e-5,
                                   err_msg="%s: %r" % (kernels_isa, attrs))


def test_float_conv2d_of_the_grouped_stem_shape_is_close_to_mxnet_at_scale():
    """The 32 -> 64 conv in 8 groups at 112x112 (meliusnet's stem): many columns, the full tiles and the tail."""
    rng = np.random.RandomState(3)
    x, w = nd.array(rng.randn(2, 32, 112, 112)), nd.array(rng.randn(64, 4, 3, 3))
    attrs = dict(kernel=(3, 3), pad=(1, 1), num_filter=64, num_group=8, no_bias=True)
    want = nd.Convolution(x, w, **attrs).asnumpy()
    results = {}
    for isa in ("scalar", "avx2", "avx512", "neon"):
        if native.isa_supported(isa):
            before = native.set_isa(isa)
            try:
                results[isa] = nd.float_conv2d(x, w, **attrs).asnumpy()
            finally:
                native.set_isa(before)
            assert np.abs(results[isa] - want).max() <= 1e-5 * np.abs(want).max(), isa
    if native.best_isa() in ("avx2", "avx512"):  # FMA there, separate roundings in the generic SSE2 kernel
        assert not np.array_equal(results["scalar"], results[native.best_isa()]), "the ISA did not change the kernel"


BAD_CALLS = {
    r"float_conv2d: weight shape \(3, 3, 3, 3\) must be \(32, 4, 3, 3\)":
        lambda: nd.float_conv2d(nd.ones((1, 32, 8, 8)), nd.ones((3, 3, 3, 3)), kernel=(3, 3), num_filter=32,
                                num_group=8, no_bias=True),
    r"float_conv2d: bias shape \(4,\) must be \(8,\)":
        lambda: nd.float_conv2d(nd.ones((1, 4, 8, 8)), nd.ones((8, 4, 1, 1)), nd.ones((4,)), kernel=(1, 1),
                                num_filter=8),
    "float_conv2d: data has 6 channels, not a multiple of num_group":
        lambda: nd.float_conv2d(nd.ones((1, 6, 8, 8)), nd.ones((8, 1, 1, 1)), kernel=(1, 1), num_filter=8,
                                num_group=4, no_bias=True),
    "float_conv2d: num_filter must be a multiple of num_group":
        lambda: nd.float_conv2d(nd.ones((1, 8, 8, 8)), nd.ones((6, 2, 1, 1)), kernel=(1, 1), num_filter=6,
                                num_group=4, no_bias=True),
    "float_conv2d: the kernel is larger than the padded input":
        lambda: nd.float_conv2d(nd.ones((1, 4, 2, 2)), nd.ones((4, 4, 5, 5)), kernel=(5, 5), num_filter=4,
                                no_bias=True),
    "float_conv2d: weight must be float32, got float64":
        lambda: nd.float_conv2d(nd.ones((1, 4, 8, 8)), nd.ones((4, 4, 1, 1), dtype="float64"), kernel=(1, 1),
                                num_filter=4, no_bias=True),
    r"float_conv2d: data must be 4-D NCHW, got shape \(4, 8, 8\)":
        lambda: nd.float_conv2d(nd.ones((4, 8, 8)), nd.ones((4, 4, 1, 1)), kernel=(1, 1), num_filter=4,
                                no_bias=True),
    "float_conv2d: attribute kernel: required attribute missing":
        lambda: nd.float_conv2d(nd.ones((1, 4, 8, 8)), nd.ones((4, 4, 1, 1)), num_filter=4, no_bias=True),
    "float_conv2d: kernel, stride and dilate must be 1 to 65536":
        lambda: nd.float_conv2d(nd.ones((1, 4, 8, 8)), nd.ones((4, 4, 1, 1)), kernel=(1, 1), stride=0,
                                num_filter=4, no_bias=True),
    "float_conv2d: unknown attribute 'layout'":
        lambda: nd.float_conv2d(nd.ones((1, 4, 8, 8)), nd.ones((4, 4, 1, 1)), kernel=(1, 1), num_filter=4,
                                no_bias=True, layout="NHWC"),
}


@pytest.mark.parametrize("message", sorted(BAD_CALLS))
def test_bad_input_raises_mxnet_error_naming_the_problem(message):
    with pytest.raises(mx.MXNetError, match=message):
        BAD_CALLS[message]().wait_to_read()


def grouped_stem_net():
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Conv2D(8, 3, padding=1, in_channels=4, use_bias=False),
                nn.Conv2D(16, 3, padding=1, groups=4, in_channels=8),          # with a bias
                bm.models.common.float_conv(16, 3, groups=8, padding=1, in_channels=16),
                nn.Conv2D(64, 1, groups=2, in_channels=16, activation="relu"),  # an activation: stays
                nn.Conv2D(64, 3, padding=1, groups=64, in_channels=64),         # depthwise: stays (oneDNN's)
                nn.Conv2D(32, 1, groups=2, in_channels=64),                      # 32 per group: stays
                nn.BatchNorm(), bm.QConv2D(8, 3, padding=1, in_channels=32))
    net.initialize(mx.init.Xavier())
    return net


def test_converter_runs_grouped_convs_as_float_conv2d_and_keeps_the_outputs(tmp_path):
    net = grouped_stem_net()
    x = nd.array(np.random.RandomState(0).randn(2, 4, 9, 11))
    expected = net(x).asnumpy()
    packed = convert(net)
    assert [type(b).__name__ for b in packed._children.values()][:6] == [
        "Conv2D", "NativeGroupedConv", "NativeGroupedConv", "Conv2D", "Conv2D", "Conv2D"]
    np.testing.assert_allclose(packed(x).asnumpy(), expected, rtol=1e-5, atol=1e-5)
    save_packed(packed, str(tmp_path / "net"), (2, 4, 9, 11))
    with open(str(tmp_path / "net-symbol.json")) as f:
        ops = [node["op"] for node in json.load(f)["nodes"]]
    assert ops.count("float_conv2d") == 2 and ops.count("Convolution") == 4


def test_meliusnet_stem_converts_to_two_float_conv2d():
    net = bm.get_model("meliusnet22", classes=10)
    net.initialize(mx.init.Xavier())
    net(nd.zeros((1, 3, 32, 32)))
    grouped = [b for b in _walk(convert(net)) if isinstance(b, NativeGroupedConv)]
    assert [(b.attrs["num_group"], b.attrs["num_filter"]) for b in grouped] == [(4, 32), (8, 64)]


def _walk(block):
    yield block
    for child in block._children.values():
        yield from _walk(child)
