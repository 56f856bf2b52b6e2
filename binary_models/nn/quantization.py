"""Quantizers: small named objects over hybridizable functions with straight-through gradients.

Every function takes ``F`` (``mx.nd`` or ``mx.sym``) first, so it runs imperatively, hybridized and in
exported symbol files alike. A custom gradient is expressed as::

    forward_value + (surrogate - stop_gradient(surrogate))

whose value is exactly ``forward_value`` (``s - s == 0`` for a finite ``s``) and whose gradient is the
surrogate's. No Python ``CustomOp`` is involved, so training runs at native speed.

Non-finite values follow one rule, the packed kernel's: a value is binarized as ``x >= 0`` says, so +inf is
+1 and -inf and NaN are -1; surrogates are zero wherever the input is not finite, so values and gradients
stay finite (DoReFa maps NaN to its lowest level: 0 for activations, -1 for weights; output scales count a
non-finite weight as 0). ``tests/test_non_finite.py`` checks every quantizer and the native operators.

A quantizer (larq's idea) is a small registered object: its ``name``, ``bits`` per value, ``terms`` (binary
terms per value, Tang et al.'s m), whether it is binary (one bit, one term), whether the packed xnor kernel
runs it (``packable``: its forward value is ``sign``), what a padded input holds, and its cost in the
statistics (``bops_factor``). Layers, statistics, regularization and the converter ask the quantizer. A new
1-bit method is one class with ``@register_activation`` (or ``@register_weight``); its name is then a valid
``activation`` (``weight_method``) layer option.
"""
import numbers
from ..errors import UsageError

FLOAT32_MAX = 3.4028234663852886e38


def finite(F, x):
    """1 where ``x`` is finite, 0 for NaN and +-inf."""
    return F.abs(x) <= FLOAT32_MAX


def replace_nan(F, x, value):
    """``x`` with ``value`` in place of NaN. The added ``zeros_like(x)`` keeps the shape of ``x`` inferable
    from the result (``where`` infers no input's shape from its output; a deferred weight needs that)."""
    return F.where(x == x, x, F.ones_like(x) * value) + F.zeros_like(x)


def straight_through(F, forward_value, surrogate):
    """``forward_value`` in the forward pass, the gradient of ``surrogate`` in the backward pass."""
    return F.stop_gradient(forward_value) + (surrogate - F.stop_gradient(surrogate))


def sign(F, x):
    """sign(x) = +1 if x >= 0 else -1 (MXNet's ``sign`` maps 0 to 0; NaN gives -1); no gradient."""
    return F.stop_gradient((x >= 0) * 2 - 1)


# Whether ste_sign runs as the native library's fused operator (see use_fused_sign).
_fused_sign = False


def use_fused_sign(enabled=True):
    """Run :func:`ste_sign` as the native library's ``ste_sign`` operator (one pass forward and one backward,
    the same values and gradients to the bit) instead of a dozen elementwise MXNet operators: about a
    quarter of a training step of MeliusNet. It runs on the CPU only and needs the library loaded
    (``binary_models.inference.native.load()``); the training commands turn it on for CPU runs. Graphs
    built (hybridized) afterwards use it. Returns the previous setting."""
    global _fused_sign
    previous, _fused_sign = _fused_sign, bool(enabled)
    return previous


def ste_sign(F, x, grad_cancel):
    """Sign with the straight-through estimator and gradient cancelling (MeliusNet section 4.1):
    the gradient is 1 where |x| <= grad_cancel and 0 elsewhere."""
    if _fused_sign:
        return F.ste_sign(x, grad_cancel=grad_cancel)
    mask = F.abs(x) <= grad_cancel
    return straight_through(F, sign(F, x), F.where(mask, x, F.zeros_like(x)))


def approx_sign(F, x):
    """Sign with Bi-Real-Net's ApproxSign backward: d/dx = 2 - 2|x| for |x| < 1, else 0.

    The surrogate 2x - x|x| (0 outside (-1, 1)) has exactly that derivative; it is computed on x set to 0
    outside (-1, 1), so an infinite or NaN x has the gradient 0, not 0 * inf."""
    inside = F.where(F.abs(x) < 1, x, F.zeros_like(x))
    return straight_through(F, sign(F, x), 2 * inside - inside * F.abs(inside))


def weight_sign(F, w):
    """Sign of latent weights with the identity straight-through gradient.

    No cancelling here: a weight beyond the threshold would never move again (weight decay is off
    for binary weights), so only activations cancel their gradients."""
    return straight_through(F, sign(F, w), F.where(finite(F, w), w, F.zeros_like(w)))


def round_half_even(F, x):
    """Round to the nearest integer, ties to even, as TensorFlow's ``round`` (and so larq) does; MXNet's
    ``round`` takes ties away from zero. A tie n + 0.5 goes to 2 round(x / 2), the even one of n and n + 1."""
    tie = (x - F.floor(x)) == 0.5
    return F.where(tie, 2 * F.round(x / 2), F.round(x))


def ste_heaviside(F, x, clip_value):
    """Heaviside step (1 where x > 0, else 0; NaN gives 0) with the straight-through estimator cancelled where
    |x| > clip_value (larq's ``ste_heaviside``)."""
    mask = F.abs(x) <= clip_value
    return straight_through(F, F.stop_gradient(x > 0), F.where(mask, x, F.zeros_like(x)))


def swish_sign(F, x, beta):
    """Sign with the SignSwish backward of BNN+ (Darabi et al. 2018, Eq. 5):
    d/dx = beta (2 - beta x tanh(beta x / 2)) / (1 + cosh(beta x)).

    The derivative is computed in closed form, as larq does, on |beta x| <= 80 (beyond it, where it is below
    1e-32, and for non-finite x it is 0) and passed as ``stop_gradient(d) * x``."""
    inside = finite(F, x) * (F.abs(x * beta) <= 80)
    bx = F.where(inside, x * beta, F.zeros_like(x))
    derivative = F.stop_gradient(inside * beta * (2 - bx * F.tanh(bx * 0.5)) / (1 + F.cosh(bx)))
    return straight_through(F, sign(F, x), derivative * F.where(inside, x, F.zeros_like(x)))


def ste_tern(F, x, threshold, clip_value):
    """Ternarization (Li et al. 2016, Ternary Weight Networks): +1 where x >= threshold, -1 where x <= -threshold,
    else 0 (NaN gives 0), with the straight-through estimator cancelled where |x| > clip_value. ``threshold``
    is a number, or a symbol/array broadcast like x."""
    value = F.stop_gradient((x >= threshold) - (x <= -threshold))
    return straight_through(F, value, F.where(F.abs(x) <= clip_value, x, F.zeros_like(x)))


def hard_tanh(F, x):
    """clip(x, -1, 1) (larq's ``hard_tanh``; Courbariaux et al. 2016 train with it)."""
    return F.clip(x, -1, 1)


def leaky_tanh(F, x, alpha=0.2):
    """hard_tanh with slope ``alpha`` outside [-1, 1] (larq's ``leaky_tanh``):
    clip(x, -1, 1) + alpha (max(x, 1) - 1) + alpha (min(x, -1) + 1)."""
    return F.clip(x, -1, 1) + alpha * (F.maximum(x, 1) - 1) + alpha * (F.minimum(x, -1) + 1)


def _round_to_levels(F, x01, bits):
    """Round values in [0, 1] to the 2^bits - 1 uniform steps of a k-bit code (ties to even)."""
    levels = float(2 ** bits - 1)
    return round_half_even(F, x01 * levels) / levels


def dorefa_activation(F, x, bits):
    """DoReFa-Net activation: clip to [0, 1], round to 2^k - 1 levels, straight-through inside [0, 1]."""
    clipped = F.clip(replace_nan(F, x, 0.0), 0, 1)
    return straight_through(F, _round_to_levels(F, clipped, bits), clipped)


def dorefa_weight(F, w, bits):
    """DoReFa-Net weight (Zhou et al. 2016, Eq. 9): tanh(w) / (2 max|tanh(w)|) + 1/2, rounded to k bits,
    mapped to [-1, 1]. As in larq, the normaliser max|tanh(w)| passes no gradient (with it, the maximal
    weight's gradient is that of t / t, wrongly nonzero) and is divided "no NaN": all-zero weights give the
    level nearest 0 and no gradient. A NaN weight counts as -inf (the lowest level; it would make every
    weight of the layer NaN through the max)."""
    t = F.tanh(replace_nan(F, w, -FLOAT32_MAX))
    # elementwise against broadcast_like (not broadcast_div) so a deferred weight's shape is inferable
    norm = F.stop_gradient(F.broadcast_like(F.max(F.abs(t), keepdims=True), t))
    nonzero = norm > 0
    normalized = t / (2 * F.where(nonzero, norm, F.ones_like(norm))) * nonzero + 0.5
    return straight_through(F, 2 * _round_to_levels(F, normalized, bits) - 1, 2 * normalized - 1)


def multi_binarize(F, x, terms, grad_cancel):
    """Tang et al. section 3.4: A ~ sum_i alpha_i H_i with H_i = sign(E_i), alpha_i = mean|E_i|,
    E_1 = A and E_{i+1} = E_i - alpha_i H_i.

    alpha is taken per sample (mean over channels and pixels), so a sample's result does not depend on
    the rest of its batch. The backward pass is the STE of Algorithm 1 (gradient where |A| <= t_clip).
    A non-finite value enters as +-1e-30 with the sign the rule gives it, so it does not change alpha."""
    mask = F.abs(x) <= grad_cancel
    tiny = F.where(x > 0, F.ones_like(x), -F.ones_like(x)) * 1e-30  # NaN > 0 is false: -1e-30
    residual = F.stop_gradient(F.where(finite(F, x), x, tiny))
    approximation = 0
    for _ in range(terms):
        alpha = F.mean(F.abs(residual), axis=0, exclude=True, keepdims=True)
        term = F.broadcast_mul(sign(F, residual), alpha)
        approximation = approximation + term
        residual = residual - term
    return straight_through(F, approximation, F.where(mask, x, F.zeros_like(x)))


def weight_scale(F, w, scaling):
    """Output scaling from latent weights: None, mean |W| per output channel (shape (O,)), or the mean
    |W| of the whole weight (shape (1,)). A non-finite weight counts as 0, so the scale stays finite.

    The scale passes no gradient, as in larq's magnitude-aware sign (Bi-Real Net section 3.3); XNOR-Net's
    Eq. 7 would add sign(W_j)/n * sum sign(W_i) to each weight's gradient."""
    if scaling not in ("channel", "scalar"):
        return None
    magnitude = F.abs(F.where(finite(F, w), F.stop_gradient(w), F.zeros_like(w)))
    if scaling == "channel":
        return F.mean(magnitude, axis=0, exclude=True)
    return F.mean(magnitude).reshape((1,))


# ---- quantizer objects -----------------------------------------------------------------------------------

ACTIVATION_QUANTIZERS = {}  # name -> class of the 1-bit activation methods (the ``activation`` option)
WEIGHT_QUANTIZERS = {}      # name -> class of the 1-bit weight methods (the ``weight_method`` option)


def register_activation(cls):
    """Class decorator: ``cls.name`` becomes a value of the ``activation`` layer option."""
    ACTIVATION_QUANTIZERS[cls.name] = cls
    return cls


def register_weight(cls):
    """Class decorator: ``cls.name`` becomes a value of the ``weight_method`` layer option."""
    WEIGHT_QUANTIZERS[cls.name] = cls
    return cls


def _check_integer(quantizer, name, value, low, high):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
        raise UsageError("%s: %s must be an integer in %d..%d, got %r" % (quantizer, name, low, high, value))
    return int(value)


def _check_grad_cancel(quantizer, value, name="grad_cancel"):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise UsageError("%s: %s must be a number > 0, got %r" % (quantizer, name, value))
    return value


def check_quantizer(name, quantizer):
    """``quantizer`` if it is a :class:`Quantizer`, the quantizer of a larq name (:data:`LARQ_NAMES`), else
    ``TypeError`` naming the argument ``name``."""
    if isinstance(quantizer, str) and quantizer in LARQ_NAMES:
        return LARQ_NAMES[quantizer]()
    if not isinstance(quantizer, Quantizer):
        raise TypeError("%s must be a binary_models.quantization.Quantizer (subclass it to add a method) or one "
                        "of larq's names %s, got %r" % (name, ", ".join(sorted(LARQ_NAMES)), quantizer))
    return quantizer


class Quantizer:
    """``q(F, x)`` quantizes ``x``. Subclasses set ``name``, ``bits``, ``terms`` and ``packable`` and
    implement ``__call__``; ``from_config`` builds one from a :class:`~binary_models.LayerConfig`."""

    name = "identity"
    bits = 32
    terms = 1
    packable = False  # the forward value is sign(x): the packed xnor kernel computes the same
    scaling = None    # a weight quantizer that scales by itself: the layer's output scaling it implies
    clip_value = None  # a weight quantizer's gradient is cancelled where |w| > clip_value (None: never)

    @classmethod
    def from_config(cls, config):
        return cls()

    @property
    def is_binary(self):
        """One bit, one term: a value a single bit holds."""
        return self.bits == 1 and self.terms == 1

    @property
    def quantized(self):
        return self.bits < 32

    @property
    def precision(self):
        """larq's name for ``bits`` (its summaries and ``Bop.is_binary_variable`` read it)."""
        return self.bits

    @property
    def bops_factor(self):
        """Binary operations per multiply-accumulate contributed by this side of a layer."""
        return self.bits * self.terms

    def pad_value(self, pad_mode):
        """What a padded input holds: for sign values (``packable``) -1 under pad_mode 'minus_one' and +1
        under 'one' (values a bit holds, so the packed kernel is exact), else 0."""
        if not self.packable:
            return 0.0
        return {"minus_one": -1.0, "one": 1.0}.get(pad_mode, 0.0)

    def __call__(self, F, x):
        return x

    def unscaled(self, F, x):
        """The value a layer convolves with; a quantizer with ``scaling`` leaves the scale to the layer's
        output (exactly what the packed kernel computes), otherwise this is the quantizer itself."""
        return self(F, x)

    def __repr__(self):
        return self.name


class Identity(Quantizer):
    """No quantization (32 bits)."""


@register_activation
class SteSign(Quantizer):
    """sign with the straight-through estimator, gradient cancelled where |x| > grad_cancel."""

    name, bits, packable = "sign", 1, True

    def __init__(self, grad_cancel=1.3):
        self.grad_cancel = _check_grad_cancel(type(self).__name__, grad_cancel)

    @property
    def clip_value(self):
        """larq's name for the gradient's cancelling threshold."""
        return self.grad_cancel

    @classmethod
    def from_config(cls, config):
        return cls(config.grad_cancel)

    def __call__(self, F, x):
        return ste_sign(F, x, self.grad_cancel)

    def __repr__(self):
        return "sign(grad_cancel=%g)" % self.grad_cancel


@register_activation
class ApproxSign(Quantizer):
    """sign with Bi-Real-Net's piecewise-polynomial backward."""

    name, bits, packable = "approx_sign", 1, True

    def __call__(self, F, x):
        return approx_sign(F, x)


class MultiSign(Quantizer):
    """Tang et al.'s multiple binarization with ``terms`` binary terms (1 bit each)."""

    name, bits = "multi_sign", 1

    def __init__(self, terms, grad_cancel=1.3):
        self.terms = _check_integer("MultiSign", "terms", terms, 1, 32)
        self.grad_cancel = _check_grad_cancel("MultiSign", grad_cancel)

    def __call__(self, F, x):
        return multi_binarize(F, x, self.terms, self.grad_cancel)

    def __repr__(self):
        return "multi_sign(terms=%d, grad_cancel=%g)" % (self.terms, self.grad_cancel)


class DoReFaActivation(Quantizer):
    """DoReFa-Net's k-bit activation."""

    name = "dorefa"

    def __init__(self, bits):
        self.bits = _check_integer(type(self).__name__, "bits", bits, 1, 8)

    def __call__(self, F, x):
        return dorefa_activation(F, x, self.bits)

    def __repr__(self):
        return "dorefa(bits=%d)" % self.bits


@register_weight
class WeightSign(Quantizer):
    """sign of latent weights, identity gradient."""

    name, bits, packable = "sign", 1, True

    def __call__(self, F, w):
        return weight_sign(F, w)


class DoReFaWeight(DoReFaActivation):
    """DoReFa-Net's k-bit weight (tanh normalisation)."""

    def __call__(self, F, w):
        return dorefa_weight(F, w, self.bits)


@register_activation
class SteHeaviside(SteSign):
    """larq's SteHeaviside: 0/1 values (1 where x > 0), straight-through gradient where |x| <= clip_value.
    One bit, but no xnor kernel (its values are not signs)."""

    name, packable = "ste_heaviside", False

    def __init__(self, clip_value=1.0):
        super().__init__(clip_value)

    def __call__(self, F, x):
        return ste_heaviside(F, x, self.grad_cancel)

    def __repr__(self):
        return "ste_heaviside(clip_value=%g)" % self.grad_cancel


@register_activation
class SwishSign(Quantizer):
    """larq's SwishSign: sign with BNN+'s SignSwish gradient; larger ``beta`` is closer to sign's derivative."""

    name, bits, packable = "swish_sign", 1, True

    def __init__(self, beta=5.0):
        self.beta = _check_grad_cancel("SwishSign", beta, "beta")

    def __call__(self, F, x):
        return swish_sign(F, x, self.beta)

    def __repr__(self):
        return "swish_sign(beta=%g)" % self.beta


class SteTern(Quantizer):
    """larq's SteTern: -1, 0, +1 with ``threshold_value`` (or, with ``ternary_weight_networks``, 0.7 mean|x|
    of the whole tensor, TWN Eq. 6), straight-through gradient where |x| <= clip_value. Two bits."""

    name, bits = "ste_tern", 2

    def __init__(self, threshold_value=0.05, ternary_weight_networks=False, clip_value=1.0):
        self.threshold_value = _check_grad_cancel("SteTern", threshold_value, "threshold_value")
        self.ternary_weight_networks = bool(ternary_weight_networks)
        self.clip_value = _check_grad_cancel("SteTern", clip_value, "clip_value")

    def __call__(self, F, x):
        threshold = self.threshold_value
        if self.ternary_weight_networks:
            magnitude = F.abs(F.where(finite(F, x), x, F.zeros_like(x)))
            threshold = F.stop_gradient(F.broadcast_like(0.7 * F.mean(magnitude, keepdims=True), x))
        return ste_tern(F, x, threshold, self.clip_value)

    def __repr__(self):
        return "ste_tern(%s, clip_value=%g)" % ("ternary_weight_networks=True" if self.ternary_weight_networks else
                                                "threshold_value=%g" % self.threshold_value, self.clip_value)


class NoOp(Quantizer):
    """larq's NoOp: the identity, marking its tensor with a ``precision`` (bits) for statistics and for
    :class:`~binary_models.train.optimizers.Bop`, which trains weights of precision 1 as signs. Not packable:
    its values are the weights themselves (with Bop they are +-1, and ``weight_method='sign'`` then computes
    the same and packs)."""

    name = "noop"

    def __init__(self, precision):
        self.bits = _check_integer("NoOp", "precision", precision, 1, 32)

    def __repr__(self):
        return "noop(precision=%d)" % self.bits


@register_weight
class MagnitudeAwareSign(Quantizer):
    """larq's MagnitudeAwareSign (Bi-Real Net section 3.3): sign(w) times mean|w| per output channel (no
    gradient through the scale), straight-through gradient where |w| <= clip_value. In a layer the scale
    multiplies the output (the layer's ``scaling='channel'``), so the packed kernel computes it exactly."""

    name, bits, packable, scaling = "magnitude_aware_sign", 1, True, "channel"

    def __init__(self, clip_value=1.0):
        self.clip_value = _check_grad_cancel("MagnitudeAwareSign", clip_value, "clip_value")

    def unscaled(self, F, w):
        return ste_sign(F, w, self.clip_value)

    def __call__(self, F, w):
        return _scale_rows(F, self.unscaled(F, w), weight_scale(F, w, "channel"))

    def __repr__(self):
        return "magnitude_aware_sign(clip_value=%g)" % self.clip_value


def _scale_rows(F, x, scale):
    """``x`` with its slice i along axis 0 times ``scale[i]``, for any number of axes."""
    return F.reshape_like(F.broadcast_mul(F.reshape(x, shape=(0, -1)), F.reshape(scale, shape=(-1, 1))), x)


def activation_quantizer(config):
    """The activation quantizer of a :class:`~binary_models.LayerConfig`: none at 32 bits, DoReFa at 2..8,
    and at 1 bit the method ``config.activation`` (Tang's multiple binarization when binarizations > 1)."""
    if config.bits_a == 32:
        return Identity()
    if config.bits_a > 1:
        return DoReFaActivation(config.bits_a)
    if config.binarizations > 1:
        return MultiSign(config.binarizations, config.grad_cancel)
    return ACTIVATION_QUANTIZERS[config.activation].from_config(config)


def weight_quantizer(config):
    """The weight quantizer of a :class:`~binary_models.LayerConfig`: none at 32 bits, DoReFa at 2..8, and
    at 1 bit the method ``config.weight_method``."""
    if config.bits == 32:
        return Identity()
    if config.bits > 1:
        return DoReFaWeight(config.bits)
    return WEIGHT_QUANTIZERS[config.weight_method].from_config(config)


# larq's string identifiers (larq.quantizers.get) -> the quantizer with larq's defaults (docs/quantizers.md).
LARQ_NAMES = {
    "ste_sign": lambda: SteSign(grad_cancel=1.0),
    "approx_sign": ApproxSign,
    "ste_heaviside": SteHeaviside,
    "swish_sign": SwishSign,
    "magnitude_aware_sign": MagnitudeAwareSign,
    "ste_tern": SteTern,
    "dorefa_quantizer": lambda: DoReFaActivation(2),
}
