"""Quantizer functions with straight-through gradients, written with hybridizable MXNet ops.

Every function takes ``F`` (``mx.nd`` or ``mx.sym``) first, so it runs imperatively, hybridized and in
exported symbol files alike. A custom gradient is expressed as::

    forward_value + (surrogate - stop_gradient(surrogate))

whose value is exactly ``forward_value`` (``s - s == 0`` in floating point) and whose gradient is the
surrogate's. No Python ``CustomOp`` is involved, so training runs at native speed.
"""
from .config import check_choice, ACTIVATION_BITS, WEIGHT_BITS


def straight_through(F, forward_value, surrogate):
    """``forward_value`` in the forward pass, the gradient of ``surrogate`` in the backward pass."""
    return F.stop_gradient(forward_value) + (surrogate - F.stop_gradient(surrogate))


def sign(F, x):
    """sign(x) = +1 if x >= 0 else -1 (MXNet's ``sign`` maps 0 to 0); no gradient."""
    return F.stop_gradient((x >= 0) * 2 - 1)


def ste_sign(F, x, grad_cancel):
    """Sign with the straight-through estimator and gradient cancelling (MeliusNet section 4.1):
    the gradient is 1 where |x| <= grad_cancel and 0 elsewhere."""
    mask = F.stop_gradient(F.abs(x) <= grad_cancel)
    return straight_through(F, sign(F, x), x * mask)


def approx_sign(F, x):
    """Sign with Bi-Real-Net's ApproxSign backward: d/dx = 2 - 2|x| for |x| < 1, else 0.

    The surrogate 2c - c|c| with c = clip(x, -1, 1) has exactly that derivative."""
    c = F.clip(x, -1, 1)
    return straight_through(F, sign(F, x), 2 * c - c * F.abs(c))


def weight_sign(F, w):
    """Sign of latent weights with the identity straight-through gradient.

    No cancelling here: a weight beyond the threshold would never move again (weight decay is off
    for binary weights), so only activations cancel their gradients."""
    return straight_through(F, sign(F, w), w)


def _round_to_levels(F, x01, bits):
    """Round values in [0, 1] to the 2^bits - 1 uniform steps of a k-bit code."""
    levels = float(2 ** bits - 1)
    return F.round(x01 * levels) / levels


def dorefa_activation(F, x, bits):
    """DoReFa-Net activation: clip to [0, 1], round to 2^k - 1 levels, straight-through inside [0, 1]."""
    clipped = F.clip(x, 0, 1)
    return straight_through(F, _round_to_levels(F, clipped, bits), clipped)


def dorefa_weight(F, w, bits):
    """DoReFa-Net weight: tanh(w) / (2 max|tanh(w)|) + 1/2, rounded to k bits, mapped to [-1, 1]."""
    t = F.tanh(w)
    # elementwise against broadcast_like (not broadcast_div) so a deferred weight's shape is inferable
    normalized = t / (2 * F.broadcast_like(F.max(F.abs(t), keepdims=True), t)) + 0.5
    return straight_through(F, 2 * _round_to_levels(F, normalized, bits) - 1, 2 * normalized - 1)


def multi_binarize(F, x, terms, grad_cancel):
    """Tang et al. section 3.4: A ~ sum_i alpha_i H_i with H_i = sign(E_i), alpha_i = mean|E_i|,
    E_1 = A and E_{i+1} = E_i - alpha_i H_i.

    alpha is taken per sample (mean over channels and pixels), so a sample's result does not depend on
    the rest of its batch. The backward pass is the STE of Algorithm 1 (gradient where |A| <= t_clip)."""
    residual = F.stop_gradient(x)
    approximation = 0
    for _ in range(terms):
        alpha = F.mean(F.abs(residual), axis=0, exclude=True, keepdims=True)
        term = F.broadcast_mul(sign(F, residual), alpha)
        approximation = approximation + term
        residual = residual - term
    mask = F.stop_gradient(F.abs(x) <= grad_cancel)
    return straight_through(F, approximation, x * mask)


def activation_quantizer(config):
    """The function ``f(F, x)`` that quantizes activations as ``config`` (a ``LayerConfig``) says."""
    bits = check_choice("bits_a", config.bits_a, ACTIVATION_BITS)
    if bits == 32:
        return lambda F, x: x
    if bits > 1:
        return lambda F, x: dorefa_activation(F, x, bits)
    if config.binarizations > 1:
        return lambda F, x: multi_binarize(F, x, config.binarizations, config.grad_cancel)
    if config.activation == "approx_sign":
        return approx_sign
    return lambda F, x: ste_sign(F, x, config.grad_cancel)


def weight_quantizer(bits):
    """The function ``f(F, w)`` that quantizes weights to ``bits`` (1, 2..8, or 32 = unchanged)."""
    check_choice("bits", bits, WEIGHT_BITS)
    if bits == 32:
        return lambda F, w: w
    if bits == 1:
        return weight_sign
    return lambda F, w: dorefa_weight(F, w, bits)


def activation_pad_value(config):
    """What a quantized input is padded with: -1 for single 1-bit activations under
    pad_mode='minus_one' (a value a bit can hold), 0 otherwise."""
    single_bit = config.bits_a == 1 and config.binarizations == 1
    return -1.0 if single_bit and config.pad_mode == "minus_one" else 0.0


def weight_scale(F, w, scaling):
    """Output scaling from latent weights: None, mean |W| per output channel (shape (O,)), or the mean
    |W| of the whole weight (shape (1,))."""
    if scaling == "channel":
        return F.mean(F.abs(w), axis=0, exclude=True)
    if scaling == "scalar":
        return F.mean(F.abs(w)).reshape((1,))
    return None
