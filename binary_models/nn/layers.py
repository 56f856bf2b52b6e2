"""Quantized Gluon layers: thin HybridBlocks over the functions of :mod:`binary_models.quantization`.

A binary convolution computes, in float, exactly what the packed xnor/popcount kernel computes:
``sum(sign(x) * sign(W))`` over the receptive field (Eq. 4 of BinaryDenseNet, ``2 * popcount(xnor) - K``),
with the input padded by -1 so that padding is a value a bit can hold. There is no bias and no offset;
with ``scaling`` the result is multiplied by mean |W| (per output channel or in total).
"""
import math
import numbers
import warnings

import numpy as np
from mxnet import initializer
from mxnet.gluon import HybridBlock

from . import constraints, quantization
from .config import LAYER_OPTIONS, get_layer_config
from .quantization import weight_scale
from ..errors import UsageError


def _pair(layer, name, value, minimum):
    """``value`` (one integer or a pair) as a pair of ints >= ``minimum``; ``ValueError`` naming ``name``."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(values) != 2:
        raise UsageError("%s: %s must be an integer or a pair of integers (height, width), got %r"
                         % (layer, name, value))
    return tuple(_positive_int(layer, name, v, minimum) for v in values)


def take_layer_options(kwargs, aliases=None):
    """Remove the layer options (:class:`~binary_models.LayerConfig` fields, and ``aliases``: keyword ->
    option) from ``kwargs``; return the current defaults with the given (non-None) ones applied."""
    aliases = dict(aliases or {})
    options = {}
    for key in list(kwargs):
        if key in LAYER_OPTIONS or key in aliases:
            value = kwargs.pop(key)
            if value is not None:
                options[aliases.get(key, key)] = value
    return get_layer_config().replace(**options)


def _refuse_bias_and_activation(layer, use_bias, activation):
    if use_bias:
        raise UsageError("%s takes no bias (use_bias=True): BatchNorm follows binary layers and the packed "
                         "kernel has no bias term" % layer)
    if activation is not None:
        raise UsageError("%s refuses a fused activation (activation=%r): add the activation as its own "
                         "block (QActivation, nn.Activation, nn.PReLU)" % (layer, activation))


def _positive_int(layer, name, value, minimum=1):
    """``value`` as an int >= ``minimum`` (NumPy integers too, never bools); else ``ValueError`` naming it."""
    if not (isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)) and value >= minimum):
        raise UsageError("%s: %s must be an integer >= %d, got %r" % (layer, name, minimum, value))
    return int(value)


class QActivation(HybridBlock):
    """Quantizes activations: sign with STE (1 bit), DoReFa (2..8 bits), or nothing (32 bits).

    Layer options given by keyword (``bits_a``, ``grad_cancel``, ``activation``, ``binarizations``, ...)
    override the defaults of :func:`binary_models.layer_config`; ``quantizer=`` takes a quantizer object
    (:mod:`binary_models.quantization`) instead."""

    def __init__(self, *, quantizer=None, **kwargs):
        config = take_layer_options(kwargs)
        super().__init__(**kwargs)
        self.config = config
        self.quantizer = (quantization.check_quantizer("quantizer", quantizer) if quantizer is not None
                          else quantization.activation_quantizer(self.config))

    def hybrid_forward(self, F, x):
        return self.quantizer(F, x)

    def __repr__(self):
        return "%s(%r)" % (self.__class__.__name__, self.quantizer)


class QuantizedLayer(HybridBlock):
    """What QConv2D and QDense share: config, quantizers, the weight parameter and output scaling.

    ``options`` is the layer's :class:`~binary_models.LayerConfig`; ``input_quantizer`` /
    ``weight_quantizer`` objects replace the ones it describes."""

    def __init__(self, weight_shape, weight_initializer, options, input_quantizer=None, weight_quantizer=None,
                 dtype="float32", weight_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self.config = options
        self.input_quantizer = (quantization.check_quantizer("input_quantizer", input_quantizer)
                                if input_quantizer is not None else quantization.activation_quantizer(options))
        self.weight_quantizer = (quantization.check_quantizer("weight_quantizer", weight_quantizer)
                                 if weight_quantizer is not None else quantization.weight_quantizer(options))
        if self.weight_quantizer.scaling and options.scaling != "none":
            raise UsageError("%s: the weight quantizer %r scales the output itself; give scaling='none', not %r"
                             % (type(self).__name__, self.weight_quantizer, options.scaling))
        self.scaling = self.weight_quantizer.scaling or options.scaling  # the output scaling in effect
        with self.name_scope():
            self.weight = self.params.get("weight", shape=weight_shape, init=weight_initializer, dtype=dtype,
                                          allow_deferred_init=True,
                                          wd_mult=options.wd_mult if self.weight_quantizer.quantized else 1.0)
        self.weight.precision = self.weight_quantizer.bits  # larq's variable precision: Bop trains precision 1
        self.weight.constraint = self.weight_constraint = constraints.check_constraint("weight_constraint",
                                                                                       weight_constraint)
        wq = self.weight_quantizer
        if wq.is_binary and wq.clip_value is not None and self.weight_constraint is None:
            warnings.warn("%s: the weight quantizer %r passes no gradient where |w| > %g, and without a "
                          "weight_constraint (e.g. WeightClip(%g)) weights there stop learning (larq's starved "
                          "weights)" % (type(self).__name__, wq, wq.clip_value, wq.clip_value), UserWarning,
                          stacklevel=3)

    @property
    def is_binary(self):
        """True when weights and activations are single bits: the layer a packed xnor kernel runs."""
        return self.input_quantizer.is_binary and self.weight_quantizer.is_binary

    @property
    def packable(self):
        """True when the native xnor/popcount operator computes exactly this layer."""
        return self.input_quantizer.packable and self.weight_quantizer.packable

    @property
    def precision(self):
        """'binary', 'binary x2' (Tang's m terms), 'W2/A2', or 'fp' (for statistics tables)."""
        wq, aq = self.weight_quantizer, self.input_quantizer
        if not wq.quantized and not aq.quantized:
            return "fp"
        if wq.bits == 1 and aq.bits == 1:
            return "binary" if aq.terms == 1 else "binary x%d" % aq.terms
        return "W%d/A%d" % (wq.bits, aq.bits)

    def op_cost(self, macs):
        """``(BOPs, FLOPs)`` of ``macs`` multiply-accumulates: binary operations when both sides are
        quantized (bits x bits_a x terms per MAC), else floating-point ones."""
        wq, aq = self.weight_quantizer, self.input_quantizer
        if wq.quantized and aq.quantized:
            return macs * wq.bops_factor * aq.bops_factor, 0
        return 0, macs

    def _scale_output(self, F, out, weight, shape):
        scale = weight_scale(F, weight, self.scaling)
        return out if scale is None else F.broadcast_mul(out, F.reshape(scale, shape=shape))


# Whether QConv2D runs its binary convolution as the native library's binary_conv2d_train (see use_xnor_training_conv).
_xnor_training_conv = False


def use_xnor_training_conv(enabled=True):
    """Run the convolution of :class:`QConv2D` layers whose signs the xnor kernel computes (``packable``; stride
    1, dilation 1, one group, padding smaller than the kernel; float32) as the native library's
    ``binary_conv2d_train`` operator: its forward pass is the xnor/popcount kernel (integer sums: the same
    values as the float convolution, to the bit), its backward the float gradients of that convolution
    (within float rounding of oneDNN's). It replaces the float ``Convolution``, the padding correction and the
    layout reorders around them; its output is plain NCHW, so use it with
    :func:`~binary_models.nn.normalization.use_plain_batch_norm`: together they take about a quarter off a
    MeliusNet training step on the CPU (docs/native.md). CPU only, needs the library loaded
    (``binary_models.inference.native.load()``); the training commands turn both on for CPU runs. Graphs built
    (hybridized) afterwards use it. Returns the previous setting."""
    global _xnor_training_conv
    previous, _xnor_training_conv = _xnor_training_conv, bool(enabled)
    return previous


class QConv2D(QuantizedLayer):
    """2-D convolution of quantized input with quantized weights (no bias).

    Arguments follow ``gluon.nn.Conv2D`` in name and order (``padding`` is the padding size; ``layout`` only
    'NCHW'; ``bias_initializer`` is accepted and unused). For 1-bit activations the input is padded with -1
    (``pad_mode='minus_one'``, default) so the packed inference kernel is exact; ``pad_mode='one'`` pads with
    +1 (larq's ``pad_values=1``), ``pad_mode='zero'`` with 0."""

    def __init__(self, channels, kernel_size, strides=1, padding=0, dilation=1, groups=1, layout="NCHW",
                 activation=None, use_bias=False, weight_initializer=None, bias_initializer="zeros", in_channels=0,
                 **kwargs):
        _refuse_bias_and_activation("QConv2D", use_bias, activation)
        if layout != "NCHW":
            raise UsageError("QConv2D: layout %r is not supported: quantized layers and the packed kernels "
                             "compute in 'NCHW' (transpose the input once before the network)" % (layout,))
        options = take_layer_options(kwargs, {"activation_method": "activation"})
        self.channels = _positive_int("QConv2D", "channels", channels)
        self.groups = _positive_int("QConv2D", "groups", groups)
        self.in_channels = _positive_int("QConv2D", "in_channels", in_channels, 0)
        self.kernel_size = _pair("QConv2D", "kernel_size", kernel_size, 1)
        self.strides = _pair("QConv2D", "strides", strides, 1)
        self.padding = _pair("QConv2D", "padding", padding, 0)  # sizes only: the pad value is pad_mode's
        self.dilation = _pair("QConv2D", "dilation", dilation, 1)
        if self.in_channels % self.groups or self.channels % self.groups:
            raise UsageError("QConv2D: channels (%d) and in_channels (%d) must be multiples of groups (%d)"
                             % (self.channels, self.in_channels, self.groups))
        super().__init__((self.channels, self.in_channels // self.groups) + self.kernel_size, weight_initializer,
                         options, **kwargs)
        self.pad_value = self.input_quantizer.pad_value(self.config.pad_mode)

    def _padding_correction(self, F, x, weight):
        """What padding with ``pad_value`` adds to a zero-padded convolution: ``pad_value`` times the sum
        of the weights whose taps fall on the padding, per output pixel, shape (N, O, oh, ow).

        It is a convolution of a one-channel border mask with the per-tap weight sums: far cheaper than
        padding the whole input (MXNet's ``pad`` backward is slow), and exact (integers in float). The mask
        has one plane per image although they are all alike: the weight gradient then sums over the batch
        inside the convolution's backward, where a (1, O, oh, ow) correction broadcast over the batch made
        MXNet's slow ``broadcast_add`` backward do it (0.09 s of a MeliusNet22 training step at batch 8)."""
        ph, pw = self.padding
        planes = F.slice_axis(x, axis=1, begin=0, end=1)
        border = F.pad(F.zeros_like(F.stop_gradient(planes)), mode="constant", constant_value=self.pad_value,
                       pad_width=(0, 0, 0, 0, ph, ph, pw, pw))
        tap_sums = F.Convolution(weight, self._ones_over_input_channels(F, weight), kernel=(1, 1), num_filter=1,
                                 no_bias=True)
        return F.Convolution(border, tap_sums, kernel=self.kernel_size, stride=self.strides, dilate=self.dilation,
                             num_filter=self.channels, no_bias=True)

    @staticmethod
    def _ones_over_input_channels(F, weight):
        """A (1, C_in/groups, 1, 1) kernel of ones: a 1x1 convolution with it sums the weights over their
        input channels (MXNet's ``sum`` over a middle axis is ~15x slower and ran in every forward pass)."""
        first_tap = F.slice_axis(F.slice_axis(F.slice_axis(weight, axis=0, begin=0, end=1),
                                              axis=2, begin=0, end=1), axis=3, begin=0, end=1)
        return F.ones_like(F.stop_gradient(first_tap))

    @property
    def xnor_trainable(self):
        """True when ``binary_conv2d_train`` computes this layer's convolution (see use_xnor_training_conv)."""
        return (self.packable and self.strides == (1, 1) and self.dilation == (1, 1) and self.groups == 1
                and all(p < k for p, k in zip(self.padding, self.kernel_size)))

    def hybrid_forward(self, F, x, weight):
        x, qweight = self.input_quantizer(F, x), self.weight_quantizer.unscaled(F, weight)
        if _xnor_training_conv and self.xnor_trainable:
            out = F.binary_conv2d_train(x, qweight, kernel=self.kernel_size, pad=self.padding,
                                        num_filter=self.channels, pad_mode=self.config.pad_mode)
            return self._scale_output(F, out, weight, (1, -1, 1, 1))
        out = F.Convolution(x, qweight, kernel=self.kernel_size, stride=self.strides, dilate=self.dilation,
                            pad=self.padding, num_filter=self.channels, num_group=self.groups, no_bias=True)
        if self.pad_value != 0 and any(self.padding):
            out = out + self._padding_correction(F, x, qweight)
        return self._scale_output(F, out, weight, (1, -1, 1, 1))

    def __repr__(self):
        c = self.config
        return ("{name}({inc} -> {out}, kernel_size={k}, stride={s}, pad={p}, dilation={d}, groups={g}, "
                "input={a!r}, weight={w!r}, scaling={sc}, pad_mode={pm})").format(
            name=self.__class__.__name__, inc=self.in_channels or None, out=self.channels, k=self.kernel_size,
            s=self.strides, p=self.padding, d=self.dilation, g=self.groups, a=self.input_quantizer,
            w=self.weight_quantizer, sc=self.scaling, pm=c.pad_mode)


class QDense(QuantizedLayer):
    """Fully connected layer of quantized input and quantized weights (no bias).

    Arguments follow ``gluon.nn.Dense`` in name and order: ``flatten`` (True: the input is flattened to
    (batch, -1); False: the layer applies to its last axis), ``dtype`` of the weight (a float type);
    ``bias_initializer`` is accepted and unused."""

    def __init__(self, units, activation=None, use_bias=False, flatten=True, dtype="float32", weight_initializer=None,
                 bias_initializer="zeros", in_units=0, **kwargs):
        _refuse_bias_and_activation("QDense", use_bias, activation)
        options = take_layer_options(kwargs, {"activation_method": "activation"})
        self.units = _positive_int("QDense", "units", units)
        self.in_units = _positive_int("QDense", "in_units", in_units, 0)
        self.flatten = bool(flatten)
        try:
            float_type = np.issubdtype(np.dtype(dtype), np.floating)
        except TypeError:
            float_type = False
        if not float_type:
            raise UsageError("QDense: dtype must be a float type such as 'float32', got %r" % (dtype,))
        super().__init__((self.units, self.in_units), weight_initializer, options, dtype=dtype, **kwargs)

    def hybrid_forward(self, F, x, weight):
        out = F.FullyConnected(self.input_quantizer(F, x), self.weight_quantizer.unscaled(F, weight),
                               num_hidden=self.units, no_bias=True, flatten=self.flatten)
        return self._scale_output(F, out, weight, (1, -1) if self.flatten else (-1,))

    def __repr__(self):
        return "%s(%s -> %d, input=%r, weight=%r, scaling=%s%s)" % (
            self.__class__.__name__, self.in_units or None, self.units, self.input_quantizer,
            self.weight_quantizer, self.scaling, "" if self.flatten else ", flatten=False")


class Scale(HybridBlock):
    """One learnable scalar multiplying its input (Tang et al. section 3.3: after a binarized last layer,
    whose outputs in [-N, N] would saturate the softmax; initialised to 0.001)."""

    def __init__(self, init=0.001, **kwargs):
        if not (isinstance(init, numbers.Real) and not isinstance(init, bool) and math.isfinite(init)):
            raise UsageError("Scale: init must be a finite number, got %r" % (init,))
        super().__init__(**kwargs)
        with self.name_scope():
            self.scale = self.params.get("scale", shape=(1,), init=initializer.Constant(init))

    def hybrid_forward(self, F, x, scale):
        return F.broadcast_mul(x, scale)
