"""The quantizer functions: forward values and straight-through gradients against their formulas."""
import numpy as np
import pytest
from mxnet import autograd, nd

import binary_models as bm
from binary_models.nn import quantization as q
import reference


def value_and_grad(fn, x):
    x = nd.array(x)
    x.attach_grad()
    with autograd.record():
        y = fn(nd, x)
    y.backward()
    return y.asnumpy(), x.grad.asnumpy()


@pytest.mark.parametrize("t_clip", [1.0, 1.25, 1.3])
def test_ste_sign_values_are_plus_minus_one_and_grad_is_cancel_mask(rng, t_clip):
    x = np.concatenate([rng.randn(1000) * 2, [0.0, -0.0, t_clip, -t_clip, t_clip + 1e-3]]).astype(np.float32)
    y, g = value_and_grad(lambda F, v: q.ste_sign(F, v, t_clip), x)
    assert set(np.unique(y)) == {-1.0, 1.0}
    np.testing.assert_array_equal(y, reference.np_sign(x))
    assert y[1000] == 1.0 and y[1001] == 1.0  # sign(0) = sign(-0) = +1, unlike MXNet's sign
    np.testing.assert_array_equal(g, (np.abs(x) <= t_clip).astype(np.float32))


def test_approx_sign_backward_is_bireal_derivative(rng):
    x = (rng.randn(1000) * 1.5).astype(np.float32)
    y, g = value_and_grad(q.approx_sign, x)
    np.testing.assert_array_equal(y, reference.np_sign(x))
    np.testing.assert_allclose(g, np.where(np.abs(x) < 1, 2 - 2 * np.abs(x), 0), atol=1e-6)


def test_weight_sign_passes_gradient_unchanged(rng):
    w = (rng.randn(500) * 3).astype(np.float32)
    y, g = value_and_grad(q.weight_sign, w)
    np.testing.assert_array_equal(y, reference.np_sign(w))
    np.testing.assert_array_equal(g, np.ones_like(w))


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_dorefa_activation_matches_formula_and_ste(rng, bits):
    x = (rng.rand(2000) * 1.6 - 0.3).astype(np.float32)
    y, g = value_and_grad(lambda F, v: q.dorefa_activation(F, v, bits), x)
    np.testing.assert_allclose(y, reference.dorefa_activation(x, bits), atol=1e-6)
    assert len(np.unique(y)) <= 2 ** bits
    np.testing.assert_array_equal(g, ((x >= 0) & (x <= 1)).astype(np.float32))


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_dorefa_weight_matches_formula(rng, bits):
    w = (rng.randn(2000) * 0.5).astype(np.float32)
    y, _ = value_and_grad(lambda F, v: q.dorefa_weight(F, v, bits), w)
    np.testing.assert_allclose(y, reference.dorefa_weight(w, bits), atol=1e-5)
    assert y.min() >= -1 and y.max() <= 1 and len(np.unique(y)) <= 2 ** bits


def test_multi_binarization_error_shrinks_as_terms_grow(rng):
    x = nd.array(rng.randn(4, 8, 5, 5))
    errors = [float(nd.abs(q.multi_binarize(nd, x, m, 1.3) - x).mean().asscalar()) for m in (1, 2, 3, 4)]
    assert all(later < earlier for earlier, later in zip(errors, errors[1:])), errors
    # one term is alpha * sign(x) with alpha = mean|x| per sample
    alpha = np.abs(x.asnumpy()).mean(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(q.multi_binarize(nd, x, 1, 1.3).asnumpy(), alpha * reference.np_sign(x.asnumpy()),
                               rtol=1e-6)


def test_multi_binarization_uses_tang_residual_recursion(rng):
    x = rng.randn(2, 3, 4, 4).astype(np.float32)
    residual, expected = x.copy(), np.zeros_like(x)
    for _ in range(2):
        alpha = np.abs(residual).mean(axis=(1, 2, 3), keepdims=True)
        h = reference.np_sign(residual)
        expected += alpha * h
        residual -= alpha * h
    y, g = value_and_grad(lambda F, v: q.multi_binarize(F, v, 2, 1.0), x)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(g, (np.abs(x) <= 1.0).astype(np.float32))


@pytest.mark.parametrize("bad", [dict(activation="tanh"), dict(bits=9), dict(bits_a=0), dict(scaling="xnor"),
                                 dict(pad_mode="reflect"), dict(binarizations=0), dict(grad_cancel=0)])
def test_bad_options_raise_value_error_naming_allowed_values(bad):
    with pytest.raises(ValueError) as err:
        bm.LayerConfig(**bad)
    name = next(iter(bad))
    assert name in str(err.value)
    if name in ("activation", "bits", "scaling", "pad_mode"):
        assert "allowed" in str(err.value)


def test_unknown_method_in_layer_raises_listing_methods():
    with pytest.raises(ValueError, match="'sign', 'approx_sign'"):
        bm.QActivation(activation="binary_tanh")
    with pytest.raises(ValueError, match="allowed: 1, 2, 3"):
        bm.QConv2D(8, 3, bits=16)


def test_unknown_config_name_lists_known_names():
    with pytest.raises(ValueError, match="grad_cancel"):
        with bm.layer_config(clip_threshold=1.0):
            pass


# ---- larq parity (issue 24). larq 0.13.3's quantizers (larq/quantizers.py), ported cases. ----------------

@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_dorefa_weight_all_zero_is_finite_with_zero_gradient(bits):
    """larq's DoReFa(mode='weights') normalises with divide_no_nan: all-zero weights give normed 0.5 (the level
    nearest 0, ties to even) and no gradient, never NaN."""
    y, g = value_and_grad(lambda F, v: q.dorefa_weight(F, v, bits), np.zeros(12, np.float32))
    n = np.float32(2 ** bits - 1)
    np.testing.assert_array_equal(y, np.full(12, 2 * (np.round(np.float32(0.5) * n) / n) - 1, np.float32))
    np.testing.assert_array_equal(g, np.zeros(12, np.float32))


@pytest.mark.parametrize("bits", [2, 4])
def test_dorefa_weight_gradient_stops_at_the_normaliser(rng, bits):
    """larq stops the gradient through max|tanh w|: every weight, the maximal one too, gets d(2 * normed - 1)/dw
    = (1 - tanh(w)^2) / max|tanh(w)|."""
    w = (rng.randn(300) * 0.7).astype(np.float32)
    _, g = value_and_grad(lambda F, v: q.dorefa_weight(F, v, bits), w)
    t = np.tanh(w.astype(np.float64))
    np.testing.assert_allclose(g, (1 - t ** 2) / np.abs(t).max(), rtol=1e-5)


def test_rounding_ties_go_to_even_as_tensorflow():
    """TensorFlow's round (larq's DoReFa) rounds half to even; MXNet's round, half away from zero. At 1 bit
    larq's DoReFa(0.5) is 0; at 2 bits 0.5 * 3 = 1.5 goes to 2."""
    y, _ = value_and_grad(lambda F, v: q.dorefa_activation(F, v, 1), np.array([0.5, 0.25, 0.75], np.float32))
    np.testing.assert_array_equal(y, [0.0, 0.0, 1.0])
    y, _ = value_and_grad(lambda F, v: q.dorefa_activation(F, v, 2), np.array([0.5, 1 / 6], np.float32))
    np.testing.assert_array_equal(y, np.round(np.float32([0.5, 1 / 6]) * 3) / 3)
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 0.49999997, 2.6], np.float32)
    np.testing.assert_array_equal(q.round_half_even(nd, nd.array(x)).asnumpy(), np.round(x))


def real_values_with_zeros(rng, shape=(4, 10)):
    """larq's testing_utils.generate_real_values_with_zeros: uniform in [-2, 2] with a few exact zeros."""
    values = rng.uniform(-2, 2, shape).astype(np.float32)
    values.flat[::7] = 0.0
    return values


def quantize(quantizer, x):
    return value_and_grad(lambda F, v: quantizer(F, v), x)


@pytest.mark.parametrize("quantizer", [q.SteSign(), q.ApproxSign(), q.SwishSign(), q.SwishSign(beta=10.0),
                                       q.MagnitudeAwareSign()])
def test_xnor_binarization_as_larq(rng, quantizer):
    """larq quantizers_test.py TestQuantization.test_xnor_binarization: +-1 values, sign(0) = +1 (the
    magnitude-aware sign before its scale, which the layer applies to its output)."""
    x = real_values_with_zeros(rng)
    y = quantizer.unscaled(nd, nd.array(x)).asnumpy()
    assert not np.any(y == 0) and np.all(y[x < 0] == -1) and np.all(y[x >= 0] == 1)


def test_and_binarization_as_larq(rng):
    """larq test_and_binarization: SteHeaviside gives 0 where x <= 0 and 1 where x > 0; larq test_ste_grad:
    gradient 1 where |x| <= clip_value (1.0 by default), else 0."""
    x = real_values_with_zeros(rng, (8, 3, 3, 16))
    y, g = quantize(q.SteHeaviside(), x)
    assert np.all(y[x <= 0] == 0) and np.all(y[x > 0] == 1)
    np.testing.assert_array_equal(g, (np.abs(x) <= 1).astype(np.float32))
    binary = rng.choice([0, 1], size=(2, 5)).astype(np.float32)
    np.testing.assert_array_equal(quantize(q.SteHeaviside(), binary)[0], binary)


@pytest.mark.parametrize("beta", [5.0, 10.0])
def test_swish_sign_gradient_is_bnn_plus_derivative(rng, beta):
    """larq test_swish_grad: beta (2 - beta x tanh(beta x / 2)) / (1 + cosh(beta x))."""
    x = real_values_with_zeros(rng, (8, 3, 3, 16))
    _, g = quantize(q.SwishSign(beta), x)
    xd = x.astype(np.float64)
    np.testing.assert_allclose(g, beta * (2 - beta * xd * np.tanh(beta * xd / 2)) / (1 + np.cosh(beta * xd)),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("quantizer,threshold", [(q.SteTern(), 0.05), (q.SteTern(threshold_value=0.37), 0.37),
                                                 (q.SteTern(ternary_weight_networks=True), None)])
def test_ternarization_as_larq(rng, quantizer, threshold):
    """larq test_ternarization_with_{default,custom}_threshold and _with_ternary_weight_networks (threshold
    0.7 mean|x|), and test_ste_grad."""
    x = real_values_with_zeros(rng, (8, 3, 3, 16))
    threshold = 0.7 * np.abs(x).mean() if threshold is None else threshold
    y, g = quantize(quantizer, x)
    assert np.all(y[x > threshold] == 1) and np.all(y[x < -threshold] == -1)
    assert np.all(y[np.abs(x) < threshold] == 0) and set(np.unique(y)) == {-1, 0, 1}
    np.testing.assert_array_equal(g, (np.abs(x) <= 1).astype(np.float32))
    ternary = rng.choice([-1, 0, 1], size=(4, 10)).astype(np.float32)
    np.testing.assert_array_equal(quantize(q.SteTern(), ternary)[0], ternary)


def test_magnitude_aware_sign_as_larq(rng):
    """larq test_magnitude_aware_sign_binarization and _grad: sign times mean|w| per output channel (axis 0
    here, larq's last axis in HWIO), gradient that scale where |w| < 1 (no gradient through the scale)."""
    w = rng.uniform(-2, 2, (3, 2, 2, 3)).astype(np.float32)
    y, g = quantize(q.MagnitudeAwareSign(), w)
    scale = np.abs(w).mean(axis=(1, 2, 3)).reshape(3, 1, 1, 1)
    np.testing.assert_array_equal(np.sign(y), np.sign(w))
    np.testing.assert_allclose(np.abs(y).mean(axis=(1, 2, 3)), scale.ravel(), rtol=1e-6)
    np.testing.assert_allclose(g, np.where(np.abs(w) < 1, np.ones_like(w) * scale, 0), rtol=1e-6)


def test_noop_is_the_identity_with_a_precision(rng):
    """larq test_noop_serialization: NoOp(precision=1).precision == 1; its values and gradient pass unchanged."""
    x = rng.randn(20).astype(np.float32)
    y, g = quantize(q.NoOp(precision=1), x)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(g, np.ones_like(x))
    assert q.NoOp(precision=1).precision == 1 and q.NoOp(1).is_binary and not q.NoOp(1).packable
    with pytest.raises(bm.UsageError, match="precision"):
        q.NoOp(precision=0)


def test_hard_tanh_and_leaky_tanh_as_larq():
    """larq activations_test.py: hard_tanh = clip(x, -1, 1); leaky_tanh adds alpha = 0.2 times the excess."""
    x = np.array([-3, -1.5, -1, -0.3, 0, 0.4, 1, 2.5], np.float32)
    np.testing.assert_array_equal(q.hard_tanh(nd, nd.array(x)).asnumpy(), np.clip(x, -1, 1))
    expected = np.clip(x, -1, 1) + 0.2 * (np.maximum(x, 1) - 1) + 0.2 * (np.minimum(x, -1) + 1)
    np.testing.assert_allclose(q.leaky_tanh(nd, nd.array(x)).asnumpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("name,cls", [("ste_sign", q.SteSign), ("approx_sign", q.ApproxSign),
                                      ("ste_heaviside", q.SteHeaviside), ("swish_sign", q.SwishSign),
                                      ("magnitude_aware_sign", q.MagnitudeAwareSign), ("ste_tern", q.SteTern),
                                      ("dorefa_quantizer", q.DoReFaActivation)])
def test_larq_names_give_larq_quantizers(name, cls):
    """larq test_serialization: each string identifier gives its class, with an integer precision; layers
    take the names as input_quantizer / weight_quantizer."""
    quantizer = q.check_quantizer("input_quantizer", name)
    assert type(quantizer) is cls and isinstance(quantizer.precision, int)
    assert name != "ste_sign" or quantizer.grad_cancel == 1.0  # larq's clip_value
    layer = bm.QDense(3, in_units=4, input_quantizer=name, weight_quantizer="ste_sign")
    assert type(layer.input_quantizer) is cls
