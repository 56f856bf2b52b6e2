"""Quantized Gluon layers: thin HybridBlocks over the functions of :mod:`binary_models.quantization`.

A binary convolution computes, in float, exactly what the packed xnor/popcount kernel computes:
``sum(sign(x) * sign(W))`` over the receptive field (Eq. 4 of BinaryDenseNet, ``2 * popcount(xnor) - K``),
with the input padded by -1 so that padding is a value a bit can hold. There is no bias and no offset;
with ``scaling`` the result is multiplied by mean |W| (per output channel or in total).
"""
from mxnet import initializer
from mxnet.gluon import HybridBlock

from .config import get_layer_config
from .quantization import activation_quantizer, weight_quantizer, activation_pad_value, weight_scale


def _pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _layer_config(overrides):
    """The current defaults with the non-None ``overrides`` applied."""
    return get_layer_config().replace(**{k: v for k, v in overrides.items() if v is not None})


def _refuse_bias_and_activation(layer, use_bias, activation):
    if use_bias:
        raise ValueError("%s takes no bias (use_bias=True): BatchNorm follows binary layers and the packed "
                         "kernel has no bias term" % layer)
    if activation is not None:
        raise ValueError("%s refuses a fused activation (activation=%r): add the activation as its own "
                         "block (QActivation, nn.Activation, nn.PReLU)" % (layer, activation))


class QActivation(HybridBlock):
    """Quantizes activations: sign with STE (1 bit), DoReFa (2..8 bits), or nothing (32 bits).

    Keyword options not given (None) come from :func:`binary_models.layer_config`."""

    def __init__(self, bits_a=None, grad_cancel=None, activation=None, binarizations=None, **kwargs):
        super().__init__(**kwargs)
        self.config = _layer_config(dict(bits_a=bits_a, grad_cancel=grad_cancel, activation=activation,
                                         binarizations=binarizations))
        self._quantize = activation_quantizer(self.config)

    def hybrid_forward(self, F, x):
        return self._quantize(F, x)

    def __repr__(self):
        c = self.config
        return "%s(bits_a=%d, activation=%s, grad_cancel=%g, binarizations=%d)" % (
            self.__class__.__name__, c.bits_a, c.activation, c.grad_cancel, c.binarizations)


class _QuantizedLayer(HybridBlock):
    """What QConv2D and QDense share: config, quantizers, the weight parameter and output scaling."""

    def __init__(self, weight_shape, weight_initializer, bits, bits_a, grad_cancel, activation_method,
                 binarizations, scaling, pad_mode, wd_mult, **kwargs):
        super().__init__(**kwargs)
        self.config = _layer_config(dict(bits=bits, bits_a=bits_a, grad_cancel=grad_cancel,
                                         activation=activation_method, binarizations=binarizations,
                                         scaling=scaling, pad_mode=pad_mode, wd_mult=wd_mult))
        self._quantize_input = activation_quantizer(self.config)
        self._quantize_weight = weight_quantizer(self.config.bits)
        quantized = self.config.bits < 32
        with self.name_scope():
            self.weight = self.params.get("weight", shape=weight_shape, init=weight_initializer,
                                          allow_deferred_init=True,
                                          wd_mult=self.config.wd_mult if quantized else 1.0)

    @property
    def is_binary(self):
        """True when weights and activations are single 1-bit values: the layer a packed xnor kernel runs."""
        c = self.config
        return c.bits == 1 and c.bits_a == 1 and c.binarizations == 1

    def _scale_output(self, F, out, weight, shape):
        scale = weight_scale(F, weight, self.config.scaling)
        return out if scale is None else F.broadcast_mul(out, F.reshape(scale, shape=shape))


class QConv2D(_QuantizedLayer):
    """2-D convolution of quantized input with quantized weights (no bias).

    Arguments follow ``gluon.nn.Conv2D`` (``padding`` is the padding size). For 1-bit activations the
    input is padded with -1 (``pad_mode='minus_one'``, default) so the packed inference kernel is exact;
    ``pad_mode='zero'`` pads with 0."""

    def __init__(self, channels, kernel_size, strides=1, padding=0, dilation=1, groups=1, in_channels=0,
                 use_bias=False, activation=None, weight_initializer=None, bits=None, bits_a=None,
                 grad_cancel=None, activation_method=None, binarizations=None, scaling=None, pad_mode=None,
                 wd_mult=None, **kwargs):
        _refuse_bias_and_activation("QConv2D", use_bias, activation)
        self.channels, self.in_channels, self.groups = channels, in_channels, groups
        self.kernel_size, self.strides = _pair(kernel_size), _pair(strides)
        self.padding, self.dilation = _pair(padding), _pair(dilation)
        if in_channels % groups or channels % groups:
            raise ValueError("QConv2D: channels (%d) and in_channels (%d) must be multiples of groups (%d)"
                             % (channels, in_channels, groups))
        super().__init__((channels, in_channels // groups) + self.kernel_size, weight_initializer, bits,
                         bits_a, grad_cancel, activation_method, binarizations, scaling, pad_mode, wd_mult,
                         **kwargs)
        self.pad_value = activation_pad_value(self.config)

    def _padding_correction(self, F, x, weight):
        """What padding with ``pad_value`` adds to a zero-padded convolution: ``pad_value`` times the sum
        of the weights whose taps fall on the padding, per output pixel, shape (1, O, oh, ow).

        It is a convolution of a one-channel border mask with the per-tap weight sums: far cheaper than
        padding the whole input (MXNet's ``pad`` backward is slow), and exact (integers in float)."""
        ph, pw = self.padding
        first_plane = F.slice_axis(F.slice_axis(x, axis=0, begin=0, end=1), axis=1, begin=0, end=1)
        border = F.pad(F.zeros_like(F.stop_gradient(first_plane)), mode="constant", constant_value=1,
                       pad_width=(0, 0, 0, 0, ph, ph, pw, pw))
        tap_sums = F.Convolution(weight, self._ones_over_input_channels(F, weight), kernel=(1, 1), num_filter=1,
                                 no_bias=True)
        return self.pad_value * F.Convolution(border, tap_sums, kernel=self.kernel_size, stride=self.strides,
                                              dilate=self.dilation, num_filter=self.channels, no_bias=True)

    @staticmethod
    def _ones_over_input_channels(F, weight):
        """A (1, C_in/groups, 1, 1) kernel of ones: a 1x1 convolution with it sums the weights over their
        input channels (MXNet's ``sum`` over a middle axis is ~15x slower and ran in every forward pass)."""
        first_tap = F.slice_axis(F.slice_axis(F.slice_axis(weight, axis=0, begin=0, end=1),
                                              axis=2, begin=0, end=1), axis=3, begin=0, end=1)
        return F.ones_like(F.stop_gradient(first_tap))

    def hybrid_forward(self, F, x, weight):
        x, qweight = self._quantize_input(F, x), self._quantize_weight(F, weight)
        out = F.Convolution(x, qweight, kernel=self.kernel_size, stride=self.strides, dilate=self.dilation,
                            pad=self.padding, num_filter=self.channels, num_group=self.groups, no_bias=True)
        if self.pad_value != 0 and any(self.padding):
            out = F.broadcast_add(out, self._padding_correction(F, x, qweight))
        return self._scale_output(F, out, weight, (1, -1, 1, 1))

    def __repr__(self):
        c = self.config
        return ("{name}({inc} -> {out}, kernel_size={k}, stride={s}, pad={p}, dilation={d}, groups={g}, "
                "bits={b}, bits_a={ba}, scaling={sc}, pad_mode={pm})").format(
            name=self.__class__.__name__, inc=self.in_channels or None, out=self.channels, k=self.kernel_size,
            s=self.strides, p=self.padding, d=self.dilation, g=self.groups, b=c.bits, ba=c.bits_a, sc=c.scaling,
            pm=c.pad_mode)


class QDense(_QuantizedLayer):
    """Fully connected layer of quantized input and quantized weights (no bias); flattens its input."""

    def __init__(self, units, in_units=0, use_bias=False, activation=None, weight_initializer=None, bits=None,
                 bits_a=None, grad_cancel=None, activation_method=None, binarizations=None, scaling=None,
                 wd_mult=None, **kwargs):
        _refuse_bias_and_activation("QDense", use_bias, activation)
        self.units, self.in_units = units, in_units
        super().__init__((units, in_units), weight_initializer, bits, bits_a, grad_cancel, activation_method,
                         binarizations, scaling, None, wd_mult, **kwargs)

    def hybrid_forward(self, F, x, weight):
        out = F.FullyConnected(self._quantize_input(F, x), self._quantize_weight(F, weight),
                               num_hidden=self.units, no_bias=True, flatten=True)
        return self._scale_output(F, out, weight, (1, -1))

    def __repr__(self):
        c = self.config
        return "%s(%s -> %d, bits=%d, bits_a=%d, scaling=%s)" % (
            self.__class__.__name__, self.in_units or None, self.units, c.bits, c.bits_a, c.scaling)


class Scale(HybridBlock):
    """One learnable scalar multiplying its input (Tang et al. section 3.3: after a binarized last layer,
    whose outputs in [-N, N] would saturate the softmax; initialised to 0.001)."""

    def __init__(self, init=0.001, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.scale = self.params.get("scale", shape=(1,), init=initializer.Constant(init))

    def hybrid_forward(self, F, x, scale):
        return F.broadcast_mul(x, scale)
