"""Whole-model native inference (issue 17): BatchNorms folded into binarization thresholds, dense stages
computed in place, BN -> ReLU -> MaxPool as one operator; each against MXNet's own float operators, to
the bit, and every zoo family and SSD backbone converted and compared with its float-emulated model."""
import numpy as np
import pytest
import mxnet as mx
from mxnet import nd
from mxnet.gluon import nn

import binary_models as bm
from binary_models.inference import native
from binary_models.inference.convert import convert, load_packed, save_packed
from binary_models.models.common import ChannelShuffle, DenseBlock, Transition
from binary_models.models.meliusnet import ImprovementBlock
from binary_models.inference.packed_layers import (BinaryConv2D, BinaryDenseStage, Identity, NormPool, batchnorm_terms,
                                         binarization_thresholds)


@pytest.fixture(scope="module", autouse=True)
def library():
    return native.load()


def random_batchnorm(rng, channels, special=True):
    """A BatchNorm with trained-like statistics; with ``special``, also gamma < 0, gamma == 0 (beta of both
    signs) and -0.0."""
    bn = nn.BatchNorm(in_channels=channels)
    bn.initialize()
    gamma = rng.uniform(0.2, 2.0, channels) * rng.choice([1, 1, 1, -1], channels)
    beta = rng.normal(0, 1.0, channels)
    if special and channels >= 4:
        gamma[:3] = [0.0, 0.0, -0.0]
        beta[:4] = [0.5, -0.5, -0.0, -0.0]
    for param, value in ((bn.gamma, gamma), (bn.beta, beta), (bn.running_mean, rng.normal(0, 3.0, channels)),
                         (bn.running_var, rng.uniform(0.05, 20.0, channels))):
        param.set_data(nd.array(value))
    return bn


def inputs_around_thresholds(rng, bn, count):
    """Values on, just beside and far from each channel's threshold, and the special floats."""
    threshold, direction = binarization_thresholds(bn)
    channels = len(threshold)
    base = np.where(np.isfinite(threshold), threshold * np.where(direction == 0, 1, direction), 0).astype(np.float32)
    x = np.repeat(base[None, :], count, axis=0)
    steps = rng.randint(-3, 4, x.shape)  # a few ulps either side
    for _ in range(3):
        x = np.where(steps > 0, np.nextafter(x, np.float32(np.inf)), np.where(steps < 0, np.nextafter(
            x, np.float32(-np.inf)), x)).astype(np.float32)
        steps = steps - np.sign(steps)
    far = rng.normal(0, 10, x.shape).astype(np.float32)
    x = np.where(rng.rand(*x.shape) < 0.5, x, far)
    x[0, :] = np.inf
    x[1, :] = -np.inf
    x[2, :] = np.nan
    x[3, :] = -0.0
    return x.reshape(count, channels, 1, 1)


def test_folded_thresholds_binarize_exactly_as_the_sign_of_mxnets_batchnorm():
    rng = np.random.RandomState(0)
    for trial in range(4):
        bn = random_batchnorm(rng, 96)
        if trial == 3:
            bn._kwargs["fix_gamma"] = True  # BatchNorm(scale=False): gamma counts as 1
        x = inputs_around_thresholds(rng, bn, 2000)
        expected = bn(nd.array(x)).asnumpy() >= 0  # the float-emulated sign: +1 where BN(x) >= 0
        threshold, direction = binarization_thresholds(bn)
        with np.errstate(invalid="ignore"):
            folded = x * direction[None, :, None, None] >= threshold[None, :, None, None]
        # the issue allows flips where |BN(x)| < 1e-5 at a rate below 1e-5; the thresholds give none
        assert np.array_equal(folded, expected), np.argwhere(folded != expected)[:5]


@pytest.mark.parametrize("isa", native.ISAS)
def test_binary_conv_with_a_folded_batchnorm_equals_batchnorm_then_qconv2d(isa):
    if not native.isa_supported(isa):
        pytest.skip("%s is not supported here (best: %s)" % (isa, native.best_isa()))
    rng = np.random.RandomState(1)
    before = native.set_isa(isa)
    try:
        for channels, groups, pad_mode in ((70, 1, "minus_one"), (130, 2, "zero"), (64, 1, "zero"),
                                               (130, 2, "one")):
            bn = random_batchnorm(rng, channels)
            conv = bm.QConv2D(24, 3, padding=1, groups=groups, in_channels=channels, pad_mode=pad_mode)
            conv.initialize(mx.init.Normal(1.0))
            x = inputs_around_thresholds(rng, bn, 2 * 9 * 11).reshape(2, 9, 11, channels).transpose(0, 3, 1, 2)
            x = nd.array(np.ascontiguousarray(x))
            expected = conv(bn(x)).asnumpy()
            folded = BinaryConv2D(conv, batchnorm=bn)
            np.testing.assert_array_equal(folded(x).asnumpy(), expected)
    finally:
        native.set_isa(before)


def dense_units(rng, pattern, in_channels, growth=16, dilation=1, **options):
    """Float DenseBlocks ('D') and ImprovementBlocks ('I') with trained-like BatchNorms, in a HybridSequential."""
    seq = nn.HybridSequential()
    for kind in pattern:
        block = DenseBlock(growth, dilation) if kind == "D" else ImprovementBlock(growth, dilation)
        seq.add(block)
    with bm.layer_config(**options):
        seq.initialize(mx.init.Normal(1.0))
    seq(nd.zeros((1, in_channels, 6, 6)))
    for block in seq:
        bn = random_batchnorm(rng, block.body[0].gamma.shape[0], special=False)
        for name in ("gamma", "beta", "running_mean", "running_var"):
            getattr(block.body[0], name).set_data(getattr(bn, name).data())
    return seq


@pytest.mark.parametrize("pattern,dilation,options", [
    ("DIDIDI", 1, {}), ("DDDD", 2, {}), ("DIDI", 1, dict(pad_mode="zero", scaling="channel")), ("DID", 1, {}),
    ("IDD", 2, dict(pad_mode="one"))])
def test_dense_stage_equals_the_float_units_and_writes_in_place(pattern, dilation, options):
    rng = np.random.RandomState(2)
    seq = dense_units(rng, pattern, 40, dilation=dilation, **options)
    x = nd.array(rng.normal(0, 2, (3, 40, 9, 7)))
    expected = seq(x).asnumpy()
    with bm.layer_config(**options):
        packed = convert(seq)
    assert isinstance(packed[0], BinaryDenseStage) and all(isinstance(b, Identity) for b in packed[1:])
    assert packed[0].attrs["units"] == pattern
    np.testing.assert_array_equal(packed(x).asnumpy(), expected)
    packed.hybridize()
    np.testing.assert_array_equal(packed(x).asnumpy(), expected)


@pytest.mark.parametrize("make_blocks", [
    lambda: [nn.BatchNorm(), nn.MaxPool2D(2, 2), nn.Activation("relu")],                    # transition
    lambda: [nn.BatchNorm(), nn.Activation("relu"), nn.MaxPool2D(3, 2, 1)],                 # stem
    lambda: [nn.BatchNorm(), nn.Activation("relu")],                                        # head, SSD taps
    lambda: [nn.BatchNorm(), nn.MaxPool2D(2, 2), nn.Activation("relu"), ChannelShuffle(16)],  # MeliusNetA/B/C
])
def test_norm_pool_equals_mxnets_batchnorm_relu_and_pooling_to_the_bit(make_blocks):
    rng = np.random.RandomState(3)
    seq = nn.HybridSequential()
    seq.add(*make_blocks())
    seq.initialize()
    bn = random_batchnorm(rng, 64)
    seq[0].gamma.set_data(bn.gamma.data())
    for name in ("beta", "running_mean", "running_var"):
        getattr(seq[0], name).set_data(getattr(bn, name).data())
    x = nd.array(rng.normal(0, 3, (2, 64, 13, 11)))
    expected = seq(x).asnumpy()
    packed = convert_float_sequence(seq)
    assert isinstance(packed[0], NormPool) and all(isinstance(b, Identity) for b in packed[1:])
    np.testing.assert_array_equal(packed(x).asnumpy(), expected)


def convert_float_sequence(seq):
    """``convert`` needs a binary layer; a float sequence is fused through a wrapper that has one."""
    wrapper = nn.HybridSequential()
    wrapper.add(seq, bm.QConv2D(4, 1, in_channels=seq[0].gamma.shape[0]))
    wrapper[1].initialize()
    return convert(wrapper)[0]


def test_batchnorm_terms_reproduce_mxnets_batchnorm_to_the_bit():
    rng = np.random.RandomState(4)
    bn = random_batchnorm(rng, 50)
    x = rng.normal(0, 10, (4, 50, 5, 5)).astype(np.float32)
    mean, scale, shift = (v[None, :, None, None] for v in batchnorm_terms(bn))
    np.testing.assert_array_equal((x - mean) * scale + shift, bn(nd.array(x)).asnumpy())


def thin(name):
    """A small member of each family (thumbnail stem, 16x16 inputs), as trained models would be."""
    if name.startswith(("binary_densenet", "meliusnet")):
        return bm.get_model(name, stem="thumbnail", growth=16, init_channels=32, classes=10)
    if name.startswith("tang"):  # one binarization: packable (the default m=2 has no xnor kernel)
        return bm.get_model(name, stem="thumbnail", classes=10, binarizations=1)
    return bm.get_model(name, stem="thumbnail", classes=10)


def trained_like(net, shape):
    net.initialize(mx.init.Xavier())
    net(nd.zeros(shape))
    rng = np.random.RandomState(5)
    for name, param in net.collect_params().items():
        if name.endswith(("running_mean", "beta")):
            param.set_data(nd.array(rng.normal(0, 0.3, param.shape)))
        elif name.endswith(("running_var", "gamma")):
            param.set_data(nd.array(rng.uniform(0.5, 1.5, param.shape) * (1 if "var" in name else
                                                                         rng.choice([1, 1, 1, -1], param.shape))))
    return net


@pytest.mark.parametrize("name", ["meliusnet22", "meliusnet_a", "meliusnet_c", "binary_densenet28",
                                  "binary_densenet37_dilated", "resnet_e18", "tang_nin", "quicknet",
                                  "birealnet18", "real_to_binary", "xnornet", "reactnet_a"])
def test_every_family_converts_to_fused_blocks_with_the_float_models_outputs(name, tmp_path):
    net = trained_like(thin(name), (1, 3, 16, 16))
    x = nd.array(np.random.RandomState(6).normal(0, 1, (4, 3, 16, 16)))
    net.hybridize()
    expected = net(x).asnumpy()
    packed = convert(net)
    kinds = {type(b).__name__ for b in _walk(packed)}
    if name.startswith(("meliusnet", "binary_densenet")):  # no float BN before a binary conv, no concat, no pool
        assert "BinaryDenseStage" in kinds and not kinds & {"DenseBlock", "ImprovementBlock", "QConv2D", "MaxPool2D"}
    if name == "tang_nin":  # BN -> binary conv folded wherever no (Caffe, ceil-mode) pool sits between them
        assert "BinaryConv2D" in kinds and any(b.attrs.get("folded_bn") for b in _walk(packed)
                                               if isinstance(b, BinaryConv2D))
    prefix = str(tmp_path / name)
    save_packed(packed, prefix, (1, 3, 16, 16))
    out = load_packed(prefix)(x).asnumpy()
    np.testing.assert_array_equal(out.argmax(axis=1), expected.argmax(axis=1))
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_a_transition_keeps_its_float_convolution_after_the_fused_norm_pool():
    net = trained_like(thin("meliusnet22"), (1, 3, 16, 16))
    transition = next(b for b in _walk(convert(net)) if isinstance(b, Transition))
    assert [type(b) for b in transition.body] == [NormPool, Identity, Identity, nn.Conv2D]


def test_converted_ssd_detects_what_the_float_ssd_detects():
    net = bm.get_model("ssd_128_meliusnet22_custom", classes=["a", "b"], pretrained_base=False, growth=16,
                       init_channels=32)
    trained_like(net, (1, 3, 128, 128))
    x = nd.array(np.random.RandomState(7).normal(0, 1, (1, 3, 128, 128)))
    expected = [a.asnumpy() for a in net(x)]
    packed = convert(net)
    assert any(isinstance(b, BinaryDenseStage) for b in _walk(packed))
    for got, want in zip(packed(x), expected):
        np.testing.assert_allclose(got.asnumpy(), want, rtol=1e-4, atol=1e-4)


def _walk(block):
    yield block
    for child in block._children.values():
        yield from _walk(child)


BAD_FUSED_CALLS = {
    "binary_dense_stage: attribute units: required attribute missing":
        lambda: nd.binary_dense_stage(nd.ones((1, 8, 4, 4)), nd.ones((4,), dtype="int64"), nd.ones((8,)),
                                      nd.ones((8,)), in_channels=8).wait_to_read(),
    "binary_dense_stage: units 'DX': expected only the letters D and I":
        lambda: nd.binary_dense_stage(nd.ones((1, 8, 4, 4)), nd.ones((4,), dtype="int64"), nd.ones((8,)),
                                      nd.ones((8,)), units="DX", in_channels=8, growth=8).wait_to_read(),
    "binary_dense_stage: an improvement unit needs at least growth":
        lambda: nd.binary_dense_stage(nd.ones((1, 8, 4, 4)), nd.ones((4,), dtype="int64"), nd.ones((8,)),
                                      nd.ones((8,)), units="I", in_channels=8, growth=16).wait_to_read(),
    r"binary_dense_stage: packed weights shape \(4,\) must be \(72,\)":
        lambda: nd.binary_dense_stage(nd.ones((1, 8, 4, 4)), nd.ones((4,), dtype="int64"), nd.ones((8,)),
                                      nd.ones((8,)), units="D", in_channels=8, growth=8).wait_to_read(),
    r"binary_dense_stage: thresholds shape \(5,\) must be \(8,\)":
        lambda: nd.binary_dense_stage(nd.ones((1, 8, 4, 4)), nd.ones((72,), dtype="int64"), nd.ones((5,)),
                                      nd.ones((8,)), units="D", in_channels=8, growth=8).wait_to_read(),
    "binary_dense_stage: kernel 2 is not supported \\(a unit keeps the size: an odd kernel\\)":
        lambda: nd.binary_dense_stage(nd.ones((1, 8, 4, 4)), nd.ones((64,), dtype="int64"), nd.ones((8,)),
                                      nd.ones((8,)), units="D", in_channels=8, growth=8, kernel=2).wait_to_read(),
    "binary_dense_stage: data has 6 channels but in_channels is 8":
        lambda: nd.binary_dense_stage(nd.ones((1, 6, 4, 4)), nd.ones((72,), dtype="int64"), nd.ones((8,)),
                                      nd.ones((8,)), units="D", in_channels=8, growth=8).wait_to_read(),
    "binary_dense_stage: packed weight must be int64":
        lambda: nd.binary_dense_stage(nd.ones((1, 8, 4, 4)), nd.ones((72,)), nd.ones((8,)),
                                      nd.ones((8,)), units="D", in_channels=8, growth=8).wait_to_read(),
    r"norm_pool: mean shape \(3,\) must be \(8,\)":
        lambda: nd.norm_pool(nd.ones((1, 8, 4, 4)), nd.ones((3,)), nd.ones((8,)), nd.ones((8,))).wait_to_read(),
    "norm_pool: channels 8 must be a multiple of shuffle_groups 3":
        lambda: nd.norm_pool(nd.ones((1, 8, 4, 4)), nd.ones((8,)), nd.ones((8,)), nd.ones((8,)),
                             shuffle_groups=3).wait_to_read(),
    "norm_pool: the pooling window is larger than the padded input":
        lambda: nd.norm_pool(nd.ones((1, 8, 2, 2)), nd.ones((8,)), nd.ones((8,)), nd.ones((8,)),
                             kernel=3).wait_to_read(),
    r"norm_pool: data must be 4-D NCHW, got shape \(8, 4\)":
        lambda: nd.norm_pool(nd.ones((8, 4)), nd.ones((8,)), nd.ones((8,)), nd.ones((8,))).wait_to_read(),
    "norm_pool: shift must be float32, got float64":
        lambda: nd.norm_pool(nd.ones((1, 8, 4, 4)), nd.ones((8,)), nd.ones((8,)),
                             nd.ones((8,), dtype="float64")).wait_to_read(),
    r"binary_conv2d: threshold shape \(3,\) must be \(16,\)":
        lambda: nd.binary_conv2d(nd.ones((1, 16, 5, 5)), nd.binary_pack_weights(nd.ones((8, 16, 3, 3))),
                                 nd.ones((3,)), nd.ones((16,)), kernel=3, pad=1, num_filter=8, in_channels=16,
                                 folded_bn=True).wait_to_read(),
}


@pytest.mark.parametrize("message", sorted(BAD_FUSED_CALLS))
def test_bad_input_to_the_fused_operators_raises_mxnet_error_naming_the_problem(message):
    with pytest.raises(mx.MXNetError, match=message):
        BAD_FUSED_CALLS[message]()
