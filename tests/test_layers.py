"""QActivation, QConv2D, QDense, Scale against NumPy references; hybridize and export round trips."""
import inspect

import numpy as np
import pytest
import mxnet as mx
from mxnet import autograd, gluon, nd

import binary_models as bm
from binary_models.nn import quantization
import reference


def random_conv_case(rng):
    groups = int(rng.choice([1, 2, 4]))
    cin = groups * int(rng.randint(1, 6))
    cout = groups * int(rng.randint(1, 5))
    k = int(rng.choice([1, 3]))
    return dict(n=int(rng.randint(1, 3)), cin=cin, cout=cout, k=k, stride=int(rng.choice([1, 2])),
                pad=int(rng.randint(0, 3)), dilation=int(rng.choice([1, 2])), groups=groups,
                h=int(rng.randint(5, 10)), w=int(rng.randint(5, 10)))


def build_conv(case, **options):
    conv = bm.QConv2D(case["cout"], case["k"], strides=case["stride"], padding=case["pad"],
                      dilation=case["dilation"], groups=case["groups"], in_channels=case["cin"], **options)
    conv.initialize(mx.init.Normal(1.0))
    return conv


@pytest.mark.parametrize("seed", range(25))
def test_qconv2d_equals_numpy_convolution_of_signs_with_minus_one_padding(seed):
    rng = np.random.RandomState(seed)
    case = random_conv_case(rng)
    conv = build_conv(case)
    x = rng.randn(case["n"], case["cin"], case["h"], case["w"]).astype(np.float32)
    expected = reference.binary_conv2d(x, conv.weight.data().asnumpy(), (case["stride"],) * 2, (case["pad"],) * 2,
                                       (case["dilation"],) * 2, case["groups"], pad_value=-1.0)
    np.testing.assert_array_equal(conv(nd.array(x)).asnumpy(), expected)


@pytest.mark.parametrize("seed", range(8))
def test_qconv2d_zero_padding_option(seed):
    rng = np.random.RandomState(100 + seed)
    case = random_conv_case(rng)
    case["pad"] = 1
    conv = build_conv(case, pad_mode="zero")
    x = rng.randn(case["n"], case["cin"], case["h"], case["w"]).astype(np.float32)
    expected = reference.binary_conv2d(x, conv.weight.data().asnumpy(), (case["stride"],) * 2, (1, 1),
                                       (case["dilation"],) * 2, case["groups"], pad_value=0.0)
    np.testing.assert_array_equal(conv(nd.array(x)).asnumpy(), expected)


@pytest.mark.parametrize("scaling", ["channel", "scalar"])
def test_qconv2d_output_scaling_is_mean_abs_weight(rng, scaling):
    case = dict(n=2, cin=4, cout=6, k=3, stride=1, pad=1, dilation=1, groups=1, h=6, w=6)
    conv = build_conv(case, scaling=scaling)
    x = rng.randn(2, 4, 6, 6).astype(np.float32)
    w = conv.weight.data().asnumpy()
    alpha = np.abs(w).mean(axis=(1, 2, 3)) if scaling == "channel" else np.abs(w).mean()
    expected = reference.binary_conv2d(x, w, pad=(1, 1)) * np.reshape(alpha, (1, -1, 1, 1))
    np.testing.assert_allclose(conv(nd.array(x)).asnumpy(), expected, rtol=1e-5)


def test_qconv2d_with_full_precision_activations_convolves_signed_weights(rng):
    conv = bm.QConv2D(5, 3, padding=1, in_channels=3, bits_a=32)
    conv.initialize()
    x = rng.randn(1, 3, 6, 6).astype(np.float32)
    expected = reference.conv2d(x, reference.np_sign(conv.weight.data().asnumpy()), pad=(1, 1))
    np.testing.assert_allclose(conv(nd.array(x)).asnumpy(), expected, rtol=1e-5, atol=1e-5)


def test_qconv2d_multibit_uses_dorefa_on_both_sides(rng):
    conv = bm.QConv2D(4, 3, padding=1, in_channels=3, bits=2, bits_a=2)
    conv.initialize()
    x = rng.rand(1, 3, 5, 5).astype(np.float32) * 1.4 - 0.2
    expected = reference.conv2d(reference.dorefa_activation(x, 2),
                                reference.dorefa_weight(conv.weight.data().asnumpy(), 2), pad=(1, 1))
    np.testing.assert_allclose(conv(nd.array(x)).asnumpy(), expected, rtol=1e-4, atol=1e-4)


def test_qdense_equals_numpy_product_of_signs(rng):
    dense = bm.QDense(7, in_units=24)
    dense.initialize()
    x = rng.randn(3, 2, 3, 4).astype(np.float32)
    expected = reference.np_sign(x.reshape(3, -1)) @ reference.np_sign(dense.weight.data().asnumpy()).T
    np.testing.assert_array_equal(dense(nd.array(x)).asnumpy(), expected)


def test_qconv2d_gradient_reaches_input_through_cancel_mask(rng):
    conv = bm.QConv2D(3, 1, in_channels=2, grad_cancel=0.5)
    conv.initialize()
    x = nd.array(rng.randn(1, 2, 4, 4))
    x.attach_grad()
    with autograd.record():
        y = conv(x)
    y.backward()
    w = reference.np_sign(conv.weight.data().asnumpy())[:, :, 0, 0]
    expected = np.einsum("oc,nhw->nchw", w, np.ones((1, 4, 4))) * (np.abs(x.asnumpy()) <= 0.5)
    np.testing.assert_allclose(x.grad.asnumpy(), expected)
    # identity STE on weights: d(sum y)/dW = sum over pixels of sign(x) masked by nothing
    expected_w = reference.np_sign(x.asnumpy()).sum(axis=(2, 3))[0]
    np.testing.assert_allclose(conv.weight.grad().asnumpy()[:, :, 0, 0], np.tile(expected_w, (3, 1)))


def weight_gradient_of_padded_conv(x_padded, upstream, w_shape, stride, dilation, groups):
    """d sum(upstream * conv(x_padded, W)) / dW in NumPy: for each tap, the correlation of the padded input
    with the upstream gradient."""
    o, cg, kh, kw = w_shape
    og, (_, _, oh, ow) = o // groups, upstream.shape
    grad = np.zeros(w_shape)
    for g in range(groups):
        for ky in range(kh):
            for kx in range(kw):
                y0, x0 = ky * dilation, kx * dilation
                patch = x_padded[:, g * cg:(g + 1) * cg, y0:y0 + stride * (oh - 1) + 1:stride,
                                 x0:x0 + stride * (ow - 1) + 1:stride]
                grad[g * og:(g + 1) * og, :, ky, kx] = np.einsum("nchw,nohw->oc", patch,
                                                                 upstream[:, g * og:(g + 1) * og])
    return grad


@pytest.mark.parametrize("seed", range(6))
def test_qconv2d_weight_gradient_sees_the_minus_one_padding(seed):
    """The -1 border (added as a correction term to a zero-padded convolution) contributes to dL/dW exactly
    as an input padded with -1 would."""
    rng = np.random.RandomState(200 + seed)
    case = random_conv_case(rng)
    case["pad"] = max(case["pad"], 1)
    conv = build_conv(case)
    x = rng.randn(case["n"], case["cin"], case["h"], case["w"]).astype(np.float32)
    with autograd.record():
        out = conv(nd.array(x))
    upstream = rng.randn(*out.shape).astype(np.float32)
    out.backward(nd.array(upstream))
    p = case["pad"]
    x_padded = np.pad(reference.np_sign(x), ((0, 0), (0, 0), (p, p), (p, p)), constant_values=-1.0)
    expected = weight_gradient_of_padded_conv(x_padded, upstream, conv.weight.shape, case["stride"],
                                              case["dilation"], case["groups"])
    np.testing.assert_allclose(conv.weight.grad().asnumpy(), expected, rtol=1e-4, atol=1e-3)


def small_net():
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Conv2D(8, 3, padding=1), gluon.nn.BatchNorm(),
            bm.QConv2D(8, 3, padding=1, groups=2), gluon.nn.BatchNorm(),
            bm.QConv2D(8, 3, padding=1, activation_method="approx_sign", scaling="channel"), gluon.nn.BatchNorm(),
            bm.QActivation(bits_a=2), bm.QConv2D(8, 1, bits=2, bits_a=2), gluon.nn.PReLU(),
            bm.QDense(10, binarizations=2), bm.Scale())
    net.initialize(mx.init.Xavier())
    return net


def test_hybridized_equals_imperative(rng):
    net = small_net()
    x = nd.array(rng.randn(2, 3, 8, 8))
    imperative = net(x).asnumpy()
    net.hybridize()
    np.testing.assert_array_equal(net(x).asnumpy(), imperative)


def test_export_and_symbolblock_import_round_trip(tmp_path, rng):
    net = small_net()
    net.hybridize()
    x = nd.array(rng.randn(2, 3, 8, 8))
    expected = net(x).asnumpy()
    net.export(str(tmp_path / "net"), epoch=0)
    loaded = gluon.SymbolBlock.imports(str(tmp_path / "net-symbol.json"), ["data"], str(tmp_path / "net-0000.params"))
    np.testing.assert_array_equal(loaded(x).asnumpy(), expected)


def test_bias_and_fused_activation_are_refused():
    with pytest.raises(ValueError, match="no bias"):
        bm.QConv2D(8, 3, use_bias=True)
    with pytest.raises(ValueError, match="fused activation"):
        bm.QConv2D(8, 3, activation="relu")
    with pytest.raises(ValueError, match="no bias"):
        bm.QDense(8, use_bias=True)


def test_binary_weights_have_weight_decay_off_and_full_precision_weights_on():
    assert bm.QConv2D(8, 3).weight.wd_mult == 0.0
    assert bm.QConv2D(8, 3, wd_mult=1.0).weight.wd_mult == 1.0
    assert bm.QConv2D(8, 3, bits=32, bits_a=32).weight.wd_mult == 1.0


def test_layer_config_context_sets_defaults_and_restores_them():
    before = bm.get_layer_config()
    with bm.layer_config(bits_a=2, grad_cancel=1.0, scaling="channel"):
        conv = bm.QConv2D(8, 3)
        act = bm.QActivation()
        inner = bm.QConv2D(8, 3, scaling="none")
    assert (conv.config.bits_a, conv.config.grad_cancel, conv.config.scaling) == (2, 1.0, "channel")
    assert act.config.bits_a == 2 and inner.config.scaling == "none"
    assert bm.get_layer_config() == before and bm.QConv2D(8, 3).config == before


def test_scale_layer_is_one_learnable_scalar_initialised_to_0_001(rng):
    scale = bm.Scale()
    scale.initialize()
    x = nd.array(rng.randn(2, 5))
    x.attach_grad()
    with autograd.record():
        y = scale(x)
    y.backward()
    np.testing.assert_allclose(y.asnumpy(), 0.001 * x.asnumpy(), rtol=1e-6)
    np.testing.assert_allclose(scale.scale.grad().asnumpy(), [x.asnumpy().sum()], rtol=1e-5)


def test_is_binary_marks_only_one_bit_weights_and_activations():
    assert bm.QConv2D(8, 3).is_binary
    assert not bm.QConv2D(8, 3, bits_a=2).is_binary
    assert not bm.QConv2D(8, 3, binarizations=2).is_binary


@pytest.mark.parametrize("scaling", ["channel", "scalar"])
def test_output_scaling_passes_no_gradient_through_the_scale(rng, scaling):
    """As larq's MagnitudeAwareSign (tf.stop_gradient on the scale): dL/dW = alpha * dL/d(sign W), without
    XNOR-Net's extra sign(W_j)/n * sum sign(W_i) term."""
    dense = bm.QDense(5, in_units=12, scaling=scaling)
    dense.initialize(mx.init.Normal(1.0))
    x = rng.randn(4, 12).astype(np.float32)
    upstream = rng.randn(4, 5).astype(np.float32)
    with autograd.record():
        out = dense(nd.array(x))
    out.backward(nd.array(upstream))
    w = dense.weight.data().asnumpy()
    alpha = np.abs(w).mean(axis=1) if scaling == "channel" else np.full(5, np.abs(w).mean())
    expected = (upstream * alpha).T @ reference.np_sign(x)
    np.testing.assert_allclose(dense.weight.grad().asnumpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bits", [2, 8])
def test_multibit_layers_with_all_zero_weights_output_finite_values(rng, bits):
    dense = bm.QDense(3, in_units=4, bits=bits, bits_a=bits)
    dense.initialize(mx.init.Zero())
    conv = bm.QConv2D(3, 3, in_channels=2, padding=1, bits=bits, bits_a=bits)
    conv.initialize(mx.init.Zero())
    assert np.isfinite(dense(nd.array(rng.rand(2, 4))).asnumpy()).all()
    assert np.isfinite(conv(nd.array(rng.rand(1, 2, 4, 4))).asnumpy()).all()


def test_qconv2d_and_qdense_take_gluons_arguments_in_gluons_order(rng):
    """Every positional and keyword argument of gluon.nn.Conv2D / Dense (MXNet 1.9.1) is accepted in its place."""
    x = rng.randn(2, 4, 7, 7).astype(np.float32)
    conv = bm.QConv2D(6, 3, (2, 1), (1, 0), (1, 2), 2, "NCHW", None, False, mx.init.Normal(1.0), "zeros", 4)
    conv.initialize()
    assert (conv.strides, conv.padding, conv.dilation, conv.groups, conv.in_channels) == ((2, 1), (1, 0), (1, 2), 2, 4)
    expected = reference.binary_conv2d(x, conv.weight.data().asnumpy(), (2, 1), (1, 0), (1, 2), 2)
    np.testing.assert_array_equal(conv(nd.array(x)).asnumpy(), expected)
    dense = bm.QDense(5, None, False, True, "float32", mx.init.Normal(1.0), "zeros", 196)
    dense.initialize()
    assert dense.in_units == 196
    expected = reference.np_sign(x.reshape(2, -1)) @ reference.np_sign(dense.weight.data().asnumpy()).T
    np.testing.assert_array_equal(dense(nd.array(x)).asnumpy(), expected)
    assert [p.name for p in inspect.signature(bm.QConv2D).parameters.values()][:12] == \
        [p.name for p in inspect.signature(gluon.nn.Conv2D).parameters.values()][:12]
    assert [p.name for p in inspect.signature(bm.QDense).parameters.values()][:8] == \
        [p.name for p in inspect.signature(gluon.nn.Dense).parameters.values()][:8]


def test_qdense_flatten_false_applies_to_the_last_axis(rng):
    dense = bm.QDense(3, flatten=False, in_units=4)
    dense.initialize()
    x = rng.randn(2, 5, 4).astype(np.float32)
    expected = reference.np_sign(x) @ reference.np_sign(dense.weight.data().asnumpy()).T
    np.testing.assert_array_equal(dense(nd.array(x)).asnumpy(), expected)


def test_qdense_dtype_sets_the_weight_dtype(rng):
    dense = bm.QDense(3, dtype="float64", in_units=4)
    dense.initialize()
    assert np.dtype(dense.weight.dtype) == np.float64
    assert dense(nd.array(rng.randn(2, 4), dtype="float64")).dtype == np.float64


def test_nhwc_layout_is_refused_in_one_line():
    with pytest.raises(bm.UsageError) as err:
        bm.QConv2D(8, 3, layout="NHWC")
    assert "\n" not in str(err.value) and "NHWC" in str(err.value) and "NCHW" in str(err.value)
    with pytest.raises(bm.UsageError, match="dtype"):
        bm.QDense(8, dtype="int8")


@pytest.mark.parametrize("seed", range(8))
def test_qconv2d_one_padding_equals_numpy_convolution_padded_with_plus_one(seed):
    """pad_mode='one' (larq's pad_values=1.0, LCE's fast default): the border holds +1."""
    rng = np.random.RandomState(300 + seed)
    case = random_conv_case(rng)
    case["pad"] = max(case["pad"], 1)
    conv = build_conv(case, pad_mode="one")
    x = rng.randn(case["n"], case["cin"], case["h"], case["w"]).astype(np.float32)
    expected = reference.binary_conv2d(x, conv.weight.data().asnumpy(), (case["stride"],) * 2, (case["pad"],) * 2,
                                       (case["dilation"],) * 2, case["groups"], pad_value=1.0)
    with autograd.record():
        out = conv(nd.array(x))
    np.testing.assert_array_equal(out.asnumpy(), expected)
    upstream = rng.randn(*out.shape).astype(np.float32)
    out.backward(nd.array(upstream))
    p = case["pad"]
    x_padded = np.pad(reference.np_sign(x), ((0, 0), (0, 0), (p, p), (p, p)), constant_values=1.0)
    expected_grad = weight_gradient_of_padded_conv(x_padded, upstream, conv.weight.shape, case["stride"],
                                                   case["dilation"], case["groups"])
    np.testing.assert_allclose(conv.weight.grad().asnumpy(), expected_grad, rtol=1e-4, atol=1e-3)


def test_one_padding_applies_to_sign_activations_only():
    assert bm.QConv2D(4, 3, padding=1, pad_mode="one").pad_value == 1.0
    assert bm.QConv2D(4, 3, padding=1, pad_mode="one", bits_a=2).pad_value == 0.0
    assert bm.QConv2D(4, 3, padding=1, pad_mode="one",
                      input_quantizer=quantization.SteHeaviside()).pad_value == 0.0


def test_magnitude_aware_sign_layer_is_channel_scaling_with_larqs_clipped_gradient(rng):
    """In a layer the magnitude-aware sign scales the output (what the packed kernel computes); forward equal to
    scaling='channel', the weight gradient cancelled where |w| > 1 (larq's clip_value)."""
    x = rng.randn(2, 3, 6, 6).astype(np.float32)
    mas = bm.QConv2D(4, 3, padding=1, in_channels=3, weight_method="magnitude_aware_sign")
    channel = bm.QConv2D(4, 3, padding=1, in_channels=3, scaling="channel")
    for layer in (mas, channel):
        layer.initialize(mx.init.Normal(1.0))
    channel.weight.set_data(mas.weight.data())
    with autograd.record():
        out = mas(nd.array(x))
    out.backward()
    assert mas.scaling == "channel"
    np.testing.assert_array_equal(out.asnumpy(), channel(nd.array(x)).asnumpy())
    w = mas.weight.data().asnumpy()
    assert (np.abs(w) > 1).any() and np.all(mas.weight.grad().asnumpy()[np.abs(w) > 1] == 0)
    with pytest.raises(bm.UsageError, match="scales the output itself"):
        bm.QConv2D(4, 3, weight_method="magnitude_aware_sign", scaling="channel")


def test_weight_clip_constraint_projects_the_weight_after_each_step(rng):
    """larq constraints_test.py: WeightClip(clip_value) clips to [-clip_value, clip_value]; the layer keeps it on
    its weight and apply_constraints applies it (after trainer.step)."""
    dense = bm.QDense(4, in_units=6, weight_constraint=bm.WeightClip(0.5))
    dense.initialize(mx.init.Normal(2.0))
    assert np.abs(dense.weight.data().asnumpy()).max() > 0.5
    bm.apply_constraints(dense)
    w = dense.weight.data().asnumpy()
    assert np.abs(w).max() == 0.5 and (np.abs(w) < 0.5).any()
    assert isinstance(bm.QConv2D(4, 3, weight_constraint="weight_clip").weight.constraint, bm.WeightClip)
    with pytest.raises(bm.UsageError, match="clip_value"):
        bm.WeightClip(0)
    with pytest.raises(bm.UsageError, match="weight_constraint"):
        bm.QDense(4, weight_constraint="max_norm")


def test_a_clipping_binary_weight_quantizer_without_a_constraint_warns_once_per_layer():
    """larq warns that a kernel quantizer without kernel_constraint may starve weights; here only where the
    quantizer cancels the gradient beyond a threshold (the default identity-STE sign never starves weights)."""
    with pytest.warns(UserWarning, match="weight_constraint"):
        bm.QDense(4, weight_quantizer="ste_sign")
    with pytest.warns(UserWarning, match="stop learning"):
        bm.QConv2D(4, 3, weight_method="magnitude_aware_sign")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bm.QDense(4)
        bm.QDense(4, weight_quantizer="ste_sign", weight_constraint=bm.WeightClip(1.0))
