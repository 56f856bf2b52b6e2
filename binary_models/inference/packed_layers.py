"""The blocks of a converted (packed) model: each runs a native operator (``native/mxnet_ops.cc``) on
constants computed once, at conversion, from the trained blocks it replaces.

* :class:`BinaryConv2D` / :class:`BinaryDense`: a binary QConv2D / QDense with its weights packed at 1 bit
  (``binary_conv2d`` / ``binary_dense``); a BinaryConv2D may also absorb the BatchNorm before it.
* :class:`BinaryDenseStage`: a run of DenseBlocks and ImprovementBlocks (BN -> sign -> binary 3x3 conv,
  then concat or add) as one ``binary_dense_stage``: every BatchNorm folded into the binarization, the
  feature map written in place at its final width (no concatenation).
* :class:`NormPool`: BatchNorm -> [ReLU] -> [MaxPool] -> [ChannelShuffle] as one ``norm_pool``.
* :class:`NativeRPReLU`: ReActNet's RPReLU (three MXNet operators, ~5x slower) as one ``rprelu``.
* :class:`NativeGroupedConv`: a full-precision grouped conv (the grouped stem) as one ``float_conv2d``.
* :class:`Identity`: what the later members of a fused run become, so sequence indices (the detection taps
  of :meth:`~binary_models.models.common.StagedNet.feature_taps`) keep their meaning.

Folding a BatchNorm into a binarization (:func:`binarization_thresholds`): with ``a = gamma / sqrt(var +
eps)``, ``BN(x) = (x - mean) * a + beta >= 0`` is ``x >= mean - beta / a`` for ``a > 0``, ``x <= ...`` for
``a < 0`` (a compare of ``-x``) and the constant ``beta >= 0`` for ``a == 0``. The threshold is computed in
float64 and rounded up to the next float32, so that the float32 compare decides as the exact real BatchNorm
would; the float-emulated model rounds ``BN(x)`` to float32 before its sign, so the two can differ only
where the rounded ``BN(x)`` is within a few float32 ulps of 0 (of the larger of ``|x * a|`` and ``|beta -
mean * a|``): ``tests/test_fused_inference.py`` measures how rare that is.
"""
import mxnet as mx
import numpy as np
from mxnet.gluon import HybridBlock, nn

from . import native
from ..nn.layers import QConv2D, QDense
from ..errors import UsageError
from ..nn.quantization import weight_scale


def batchnorm_terms(bn):
    """``(mean, scale, shift)``, float32 per channel, with which MXNet's BatchNorm computes, at inference and
    rounding each operation to float32, ``bn(x) = (x - mean) * scale + shift`` (``scale = gamma / sqrt(var +
    eps)``; checked to the bit against MXNet's operator by the tests)."""
    def values(param):
        return param.data().asnumpy().astype(np.float32)
    gamma = np.ones(bn.gamma.shape, np.float32) if bn._kwargs.get("fix_gamma") else values(bn.gamma)
    eps = np.float32(bn._kwargs.get("eps", 1e-5))
    return values(bn.running_mean), gamma / np.sqrt(values(bn.running_var) + eps), values(bn.beta)


def _ordered(values):
    """float32 -> int64 keys in the order of the floats (-0.0 and 0.0 apart, NaN excluded)."""
    bits = values.astype(np.float32).view(np.int32).astype(np.int64)
    return np.where(bits < 0, -(bits & 0x7FFFFFFF) - 1, bits)


def _from_ordered(keys):
    bits = np.where(keys < 0, -(keys + 1) | -0x80000000, keys)
    return bits.astype(np.int32).view(np.float32)


def _least_true(predicate, count):
    """Per channel, the least float32 ``x`` (from -inf to +inf) where ``predicate(x)`` holds, for predicates
    false then true along the floats (+inf when it never holds): a bisection over their 2^32 values."""
    low = np.full(count, _ordered(np.float32(-np.inf)))
    high = np.full(count, _ordered(np.float32(np.inf)) + 1)  # past +inf: "never"
    while np.any(low < high):
        middle = (low + high) // 2
        holds = predicate(_from_ordered(np.minimum(middle, _ordered(np.float32(np.inf)))))
        high = np.where(holds & (low < high), middle, high)
        low = np.where(~holds & (low < high), middle + 1, low)
    return np.where(low > _ordered(np.float32(np.inf)), np.float32(np.inf), _from_ordered(np.minimum(
        low, _ordered(np.float32(np.inf)))))


def binarization_thresholds(bn):
    """``(threshold, direction)``, float32 per channel: the sign MXNet computes of ``bn(x)`` (:func:`batchnorm_terms`,
    each operation rounded to float32; +1 where the result is >= 0) is +1 exactly where ``x * direction >=
    threshold``. Each rounded operation is monotonic in ``x``, so ``bn(x) >= 0`` holds from one float32 on
    (``scale > 0``, direction +1), up to one (``scale < 0``: direction -1, a compare of ``-x``), or never or
    always (``scale == 0``: direction 0, the threshold 0 or +inf); that float is found by bisection."""
    mean, scale, shift = batchnorm_terms(bn)
    direction = np.sign(scale).astype(np.float32)
    with np.errstate(all="ignore"):
        threshold = _least_true(lambda x: (direction * x - mean) * scale + shift >= 0, len(mean))
    constant = direction == 0
    threshold[constant] = np.where(shift[constant] + np.float32(0) >= 0, np.float32(0), np.float32(np.inf))
    return threshold, direction


def shift_thresholds(bias):
    """``(threshold, direction)`` per channel for the sign of ``x + bias`` (a :class:`~binary_models.nn.react.
    LearnableBias`, ReActNet's RSign): the least float32 ``x`` whose float32 sum ``x + bias`` is >= 0, direction
    +1 (the sum is monotonic in ``x``; found by bisection as in :func:`binarization_thresholds`)."""
    bias = bias.data().asnumpy().astype(np.float32)
    with np.errstate(all="ignore"):
        threshold = _least_true(lambda x: x + bias >= 0, len(bias))
    return threshold, np.ones(len(bias), np.float32)


class PackedBlock(HybridBlock):
    """What the packed blocks share: constant parameters (``grad_req='null'``) set at conversion, and one
    native operator applied to the input and them."""

    operator = None  # the native operator's name
    constants = ()   # its inputs after the data, in order (the parameters' names)

    def __init__(self, prefix, attrs):
        super().__init__(prefix=prefix)
        native.load()
        self.attrs = attrs

    def add_constant(self, name, value, ctx):
        """A parameter ``name`` holding ``value`` (an NDArray or a NumPy array)."""
        if isinstance(value, np.ndarray):
            value = mx.nd.array(value, ctx=ctx, dtype=value.dtype)
        with self.name_scope():
            param = self.params.get(name, shape=value.shape, dtype=value.dtype, grad_req="null",
                                    differentiable=False, init=mx.init.Zero())
        param.initialize(ctx=ctx)
        param.set_data(value)
        setattr(self, name, param)

    def hybrid_forward(self, F, x, **constants):
        return getattr(F, self.operator)(x, *(constants[name] for name in self.constants), **self.attrs)


class Identity(HybridBlock):
    """Returns its input: the place of a block whose work a fused block before it does."""

    def hybrid_forward(self, F, x):
        return x


def native_problem(layer):
    """``''`` when a packed operator computes exactly the QConv2D/QDense ``layer``, else why not (one line):
    its quantizers (``packable``: sign forward values on both sides), its dtype and form, or a geometry the
    kernels do not run (asked of the library: :func:`binary_models.native.conv_problem`)."""
    for side, quantizer in (("input", layer.input_quantizer), ("weight", layer.weight_quantizer)):
        if not quantizer.packable:
            return "its %s quantizer %r has no xnor kernel (it is not a sign)" % (side, quantizer)
    dtype = np.dtype(layer.weight.dtype)
    if dtype != np.float32:
        return "its weights are %s (the kernels take float32)" % dtype.name
    if isinstance(layer, QDense):
        if not layer.flatten:
            return "flatten=False (binary_dense flattens its input)"
        return native.conv_problem(layer.weight.shape[1], layer.units, (1, 1))
    return native.conv_problem(layer.weight.shape[1] * layer.groups, layer.channels, layer.kernel_size, layer.strides,
                               layer.padding, layer.dilation, layer.groups)


def packable(layer):
    """True when ``layer`` is a QConv2D/QDense a packed operator computes exactly (see :func:`native_problem`)."""
    return isinstance(layer, (QConv2D, QDense)) and not native_problem(layer)


def _check_layer(block, layer, kind):
    """``layer`` must be a ``kind`` (QConv2D or QDense) the packed operator computes: ``TypeError`` /
    :class:`~binary_models.errors.UsageError` saying why not."""
    if not isinstance(layer, kind):
        raise TypeError("%s needs a %s, got %r" % (block, kind.__name__, layer))
    problem = native_problem(layer)
    if problem:
        raise UsageError("%s cannot pack %s: %s" % (block, layer.name, problem))


def _check_batchnorm(block, batchnorm):
    if not isinstance(batchnorm, nn.BatchNorm):
        raise TypeError("%s: batchnorm must be a gluon.nn.BatchNorm, got %r" % (block, batchnorm))


def _packed_weights(layer):
    """``(packed weights, scale or None, context)`` of a binary QConv2D/QDense."""
    native.load()
    weight = layer.weight.data()
    packed = mx.nd.binary_pack_weights(weight, num_group=getattr(layer, "groups", 1))
    scale = None
    if layer.scaling != "none":
        scale = mx.nd.broadcast_to(weight_scale(mx.nd, weight, layer.scaling), shape=(weight.shape[0],))
    return packed, scale, weight.context


class BinaryConv2D(PackedBlock):
    """Inference form of a binary :class:`~binary_models.QConv2D`: ``binary_conv2d`` with packed weights
    (the same output: sum(sign(x) sign(W)) with the layer's padding value, times its scale). With
    ``batchnorm``, the BatchNorm that precedes the layer is folded into its binarization; ``thresholds`` (a
    ``(threshold, direction)`` pair such as :func:`shift_thresholds`') gives that binarization directly."""

    operator = "binary_conv2d"

    def __init__(self, layer, batchnorm=None, thresholds=None):
        _check_layer("BinaryConv2D", layer, QConv2D)
        if batchnorm is not None:
            _check_batchnorm("BinaryConv2D", batchnorm)
            thresholds = binarization_thresholds(batchnorm)
        out_channels, group_in, kh, kw = layer.weight.shape
        packed, scale, ctx = _packed_weights(layer)
        super().__init__(layer.prefix, dict(kernel=(kh, kw), stride=layer.strides, dilate=layer.dilation,
                                            pad=layer.padding, num_filter=out_channels, num_group=layer.groups,
                                            in_channels=group_in * layer.groups, pad_mode=layer.config.pad_mode,
                                            folded_bn=thresholds is not None, scaled=scale is not None))
        self.add_constant("packed_weight", packed, ctx)
        names = ["packed_weight"]
        if thresholds is not None:
            threshold, direction = thresholds
            self.add_constant("threshold", threshold, ctx)
            self.add_constant("direction", direction, ctx)
            names += ["threshold", "direction"]
        if scale is not None:
            self.add_constant("scale", scale, ctx)
            names.append("scale")
        self.constants = tuple(names)


class BinaryDense(PackedBlock):
    """Inference form of a binary :class:`~binary_models.QDense`: ``binary_dense`` with packed weights."""

    operator = "binary_dense"

    def __init__(self, layer):
        _check_layer("BinaryDense", layer, QDense)
        units, in_units = layer.weight.shape
        packed, scale, ctx = _packed_weights(layer)
        super().__init__(layer.prefix, dict(num_hidden=units, in_units=in_units, scaled=scale is not None))
        self.add_constant("packed_weight", packed, ctx)
        self.constants = ("packed_weight",) + (() if scale is None else ("scale",))
        if scale is not None:
            self.add_constant("scale", scale, ctx)


class BinaryDenseStage(PackedBlock):
    """A run of dense units as one ``binary_dense_stage``: ``units`` is a list of ``(kind, batchnorm,
    conv)`` with kind 'D' (DenseBlock: the conv's outputs are concatenated) or 'I' (ImprovementBlock: added
    to the last ``growth`` channels), each conv a binary 3x3 QConv2D of ``growth`` outputs, stride 1,
    padding = dilation (what :func:`stage_unit` accepts)."""

    operator = "binary_dense_stage"

    def __init__(self, prefix, in_channels, units):
        first = units[0][2]
        packed, thresholds, directions, scales = [], [], [], []
        for _, batchnorm, conv in units:
            weights, scale, ctx = _packed_weights(conv)
            packed.append(weights.reshape((-1,)))
            threshold, direction = binarization_thresholds(batchnorm)
            thresholds.append(threshold)
            directions.append(direction)
            scales.append(scale)
        scaled = scales[0] is not None
        super().__init__(prefix, dict(units="".join(kind for kind, _, _ in units), in_channels=in_channels,
                                      growth=first.channels, kernel=first.kernel_size[0], dilate=first.dilation[0],
                                      pad_mode=first.config.pad_mode, scaled=scaled))
        self.add_constant("packed_weights", mx.nd.concat(*packed, dim=0), ctx)
        self.add_constant("thresholds", np.concatenate(thresholds), ctx)
        self.add_constant("directions", np.concatenate(directions), ctx)
        self.constants = ("packed_weights", "thresholds", "directions")
        if scaled:
            self.add_constant("scales", mx.nd.concat(*scales, dim=0), ctx)
            self.constants += ("scales",)


def stage_unit(conv, previous=None):
    """True when ``conv`` (a QConv2D) can be a unit of a :class:`BinaryDenseStage`, after ``previous`` (the
    previous unit's conv, or None): packable, 3x3 or other square kernel, stride 1, no groups, padding =
    dilation, and the same growth, kernel, dilation, padding value and scaling as ``previous``."""
    if not (packable(conv) and conv.groups == 1 and conv.strides == (1, 1) and conv.kernel_size[0] == conv.kernel_size[1]
            and conv.dilation[0] == conv.dilation[1] and conv.padding == conv.dilation
            and conv.kernel_size[0] == 3):
        return False
    if previous is None:
        return True
    return (conv.channels, conv.dilation, conv.config.pad_mode, conv.scaling == "none") == \
        (previous.channels, previous.dilation, previous.config.pad_mode, previous.scaling == "none")


class NormPool(PackedBlock):
    """BatchNorm -> [ReLU] -> [MaxPool] -> [ChannelShuffle] (in that order or with the pool first: ReLU and
    max commute) as one ``norm_pool``, computing the BatchNorm as MXNet does (:func:`batchnorm_terms`).
    ``pool``: a Gluon MaxPool2D (floor rounding) or None; ``shuffle_groups``: a ChannelShuffle's groups, or 1."""

    operator = "norm_pool"
    constants = ("mean", "scale", "shift")

    def __init__(self, batchnorm, relu=True, pool=None, shuffle_groups=1):
        _check_batchnorm("NormPool", batchnorm)
        if pool is not None and not isinstance(pool, nn.MaxPool2D):
            raise TypeError("NormPool: pool must be a gluon.nn.MaxPool2D or None, got %r" % (pool,))
        attrs = dict(relu=relu, shuffle_groups=shuffle_groups)
        if pool is not None:
            attrs.update(kernel=pool._kwargs["kernel"], stride=pool._kwargs["stride"], pad=pool._kwargs["pad"])
        super().__init__(batchnorm.prefix, attrs)
        ctx = batchnorm.gamma.data().context
        for name, value in zip(self.constants, batchnorm_terms(batchnorm)):
            self.add_constant(name, value, ctx)


class NativeGroupedConv(PackedBlock):
    """A full-precision grouped ``nn.Conv2D`` (the grouped stem's 3x3 convs) as one ``float_conv2d``: the
    library's own convolution (``native/kernels/float_conv.h``); oneDNN in MXNet 1.9.1 is 1.4-3x slower with 4
    or 8 input channels per group. Its sums round in another order than oneDNN's (within 1e-5 relative;
    docs/native.md, Exactness). :func:`grouped_conv_form` says which convs it takes."""

    operator = "float_conv2d"

    def __init__(self, conv):
        kwargs = conv._kwargs
        super().__init__(conv.prefix, dict(kernel=kwargs["kernel"], stride=kwargs["stride"], dilate=kwargs["dilate"],
                                           pad=kwargs["pad"], num_filter=kwargs["num_filter"],
                                           num_group=kwargs["num_group"], no_bias=kwargs["no_bias"]))
        self.constants = ("weight",) if conv.bias is None else ("weight", "bias")
        for name in self.constants:
            param = getattr(conv, name)
            self.add_constant(name, param.data().asnumpy().astype(np.float32), param.data().context)


# Input channels per group where float_conv2d beats oneDNN (docs/native.md, Operators): from 2 (a depthwise
# conv, 1, has oneDNN's own kernel, 2-3x faster) to 16 (with 32, the same speed).
FEW_CHANNELS_PER_GROUP = (2, 16)


def grouped_conv_form(conv):
    """The :class:`NativeGroupedConv` of ``conv`` when it is a 2-D convolution with groups of
    :data:`FEW_CHANNELS_PER_GROUP` input channels, NCHW, float32, without a fused activation; else None (it
    stays MXNet's Convolution, where oneDNN is as fast or faster)."""
    kwargs = conv._kwargs
    if (kwargs.get("num_group", 1) < 2 or kwargs.get("layout", "NCHW") != "NCHW" or len(kwargs["kernel"]) != 2
            or conv.act is not None or np.dtype(conv.weight.dtype) != np.float32):
        return None
    low, high = FEW_CHANNELS_PER_GROUP
    return NativeGroupedConv(conv) if low <= conv.weight.shape[1] <= high else None


class NativeRPReLU(PackedBlock):
    """ReActNet's :class:`~binary_models.nn.react.RPReLU` as one ``rprelu`` (the same float32 roundings as MXNet's
    broadcast_sub, LeakyReLU(prelu) and broadcast_add: equal to the bit)."""

    operator = "rprelu"
    constants = ("shift_in", "slope", "shift_out")

    def __init__(self, block):
        super().__init__(block.prefix, {})
        for name in self.constants:
            param = getattr(block, name)
            self.add_constant(name, param.data().asnumpy().astype(np.float32), param.data().context)
