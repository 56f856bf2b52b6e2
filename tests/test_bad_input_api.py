"""The sweep of bad input to the Python API and the native operators (issue 16), as a table: each row is a
call, the exception it must raise (ValueError / TypeError from the API at construction, MXNetError from an
operator, never a crash, a later failure in an unrelated op, or a silent cast) and a fragment of the message
that names the argument, attribute or input and what is allowed."""
import math
import re

import pytest
import mxnet as mx
from mxnet import nd
from mxnet.gluon import nn

import binary_models as bm
from binary_models.inference import native
from binary_models.nn import quantization as q
from binary_models.inference.convert import convert
from binary_models.model_zoo import check_input_size, minimum_input_size
from binary_models.inference.packed_layers import BinaryConv2D, BinaryDense, NormPool


@pytest.fixture(scope="module", autouse=True)
def library():
    return native.load()


# ---- the operators, called as tests/test_native.py calls them, with one thing changed ----

def conv(data=(1, 16, 5, 5), extra=(), data_dtype="float32", weight=None, **changes):
    attrs = dict(dict(kernel=3, pad=1, num_filter=8, in_channels=16), **changes)
    packed = nd.binary_pack_weights(nd.ones((8, 16, 3, 3))) if weight is None else weight
    nd.binary_conv2d(nd.ones(data, dtype=data_dtype), packed, *extra, **attrs).wait_to_read()


def dense(data_dtype="float32", **changes):
    attrs = dict(dict(num_hidden=4, in_units=16), **changes)
    nd.binary_dense(nd.ones((2, 16), dtype=data_dtype), nd.binary_pack_weights(nd.ones((4, 16))), **attrs).wait_to_read()


def pack(shape=(8, 16, 3, 3), dtype="float32", **attrs):
    nd.binary_pack_weights(nd.ones(shape, dtype=dtype), **attrs).wait_to_read()


def stage(data=(1, 8, 4, 4), weights=((72,), "int64"), thresholds=(8,), directions=((8,), "float32"), scales=None,
          **changes):
    """A one-unit dense stage (8 channels, growth 8: 72 packed words), one input or attribute changed."""
    inputs = [nd.ones(data), nd.ones(weights[0], dtype=weights[1]), nd.ones(thresholds),
              nd.ones(directions[0], dtype=directions[1])] + ([] if scales is None else [nd.ones(scales)])
    attrs = dict(dict(units="D", in_channels=8, growth=8), **changes)
    nd.binary_dense_stage(*inputs, **attrs).wait_to_read()


def norm_pool(data=(1, 8, 6, 6), mean=((8,), "float32"), scale=(8,), inputs=4, **attrs):
    arrays = [nd.ones(data), nd.ones(mean[0], dtype=mean[1]), nd.ones(scale), nd.ones((8,))][:inputs]
    nd.norm_pool(*arrays, **attrs).wait_to_read()


def train_conv(data=(1, 4, 5, 5), weight=(2, 4, 3, 3), dtype="float32", **changes):
    """binary_conv2d_train of 4 channels -> 2, 3x3, one input or attribute changed."""
    attrs = dict(dict(kernel=3, num_filter=2, pad=1), **changes)
    nd.binary_conv2d_train(nd.ones(data, dtype=dtype), nd.ones(weight), **attrs).wait_to_read()


def batch_norm(data=(2, 3, 4), gamma=(3,), training=(1,), dtype="float32", **attrs):
    """plain_batch_norm over 3 channels, one input or attribute changed."""
    inputs = [nd.ones(data, dtype=dtype), nd.ones(gamma)] + [nd.ones(3) for _ in range(3)] + [nd.ones(training)]
    nd.plain_batch_norm(*inputs, **attrs)[0].wait_to_read()


def stage_shape_inference(**attrs):
    """Shape inference only (nothing allocated): for stages whose inputs would not fit in memory."""
    symbol = mx.sym.binary_dense_stage(*(mx.sym.var(n) for n in ("data", "w", "t", "d")), **attrs)
    symbol.infer_shape(data=(1, attrs["in_channels"], 1, 1))


def qconv(*args, **kwargs):
    return lambda: bm.QConv2D(*args, **kwargs)


def qdense(*args, **kwargs):
    return lambda: bm.QDense(*args, **kwargs)


def model(*args, **kwargs):
    return lambda: bm.get_model(*args, **kwargs)


def initialized(net):
    net.initialize()
    return net


OVERFLOW = 2 ** 32 + 1  # cast to int, 1: a silent wrong value before the checks
MXNetError = mx.MXNetError

ROWS = [
    # ---- layers: ValueError at construction, naming the argument ----
    ("qconv2d_negative_padding", qconv(8, 3, padding=-1), ValueError, "padding must be an integer >= 0, got -1"),
    ("qconv2d_negative_padding_in_a_pair", qconv(8, 3, padding=(1, -2)), ValueError, "padding must be an integer >= 0"),
    ("qconv2d_padding_same", qconv(8, 3, padding="same"), ValueError, "padding must be an integer >= 0, got 'same'"),
    ("qconv2d_channels_0", qconv(0, 3), ValueError, "channels must be an integer >= 1, got 0"),
    ("qconv2d_channels_negative", qconv(-8, 3), ValueError, "channels must be an integer >= 1, got -8"),
    ("qconv2d_channels_float", qconv(8.0, 3), ValueError, "channels must be an integer >= 1, got 8.0"),
    ("qconv2d_channels_bool", qconv(True, 3), ValueError, "channels must be an integer >= 1, got True"),
    ("qconv2d_kernel_size_0", qconv(8, 0), ValueError, "kernel_size must be an integer >= 1, got 0"),
    ("qconv2d_kernel_size_3d", qconv(8, (3, 3, 3)), ValueError, "kernel_size must be an integer or a pair"),
    ("qconv2d_kernel_size_1_value", qconv(8, (3,)), ValueError, "kernel_size must be an integer or a pair"),
    ("qconv2d_strides_0", qconv(8, 3, strides=0), ValueError, "strides must be an integer >= 1, got 0"),
    ("qconv2d_strides_negative", qconv(8, 3, strides=(1, -1)), ValueError, "strides must be an integer >= 1, got -1"),
    ("qconv2d_dilation_0", qconv(8, 3, dilation=0), ValueError, "dilation must be an integer >= 1, got 0"),
    ("qconv2d_groups_0", qconv(8, 3, groups=0), ValueError, "groups must be an integer >= 1, got 0"),
    ("qconv2d_groups_not_dividing", qconv(8, 3, groups=3, in_channels=6), ValueError, "must be multiples of groups (3)"),
    ("qconv2d_in_channels_negative", qconv(8, 3, in_channels=-4), ValueError, "in_channels must be an integer >= 0"),
    ("qconv2d_bias", qconv(8, 3, use_bias=True), ValueError, "takes no bias"),
    ("qconv2d_unknown_option", qconv(8, 3, bitz=1), TypeError, "'bitz'"),
    ("qdense_units_0", qdense(0), ValueError, "units must be an integer >= 1, got 0"),
    ("qdense_units_negative", qdense(-3), ValueError, "units must be an integer >= 1, got -3"),
    ("qdense_in_units_negative", qdense(4, in_units=-1), ValueError, "in_units must be an integer >= 0, got -1"),
    ("layer_bits_0", qconv(8, 3, bits=0), ValueError, "unsupported bits 0; allowed: 1, 2"),
    ("layer_bits_true", qconv(8, 3, bits=True), ValueError, "unsupported bits True"),
    ("layer_bits_a_float", qdense(4, bits_a=1.0), ValueError, "unsupported bits_a 1.0"),
    ("layer_grad_cancel_nan", lambda: bm.QActivation(grad_cancel=math.nan), ValueError, "grad_cancel must be a number > 0"),
    ("layer_grad_cancel_string", lambda: bm.QActivation(grad_cancel="1"), ValueError, "grad_cancel must be a number > 0, got '1'"),
    ("layer_wd_mult_negative", qconv(8, 3, wd_mult=-1.0), ValueError, "wd_mult must be a finite number >= 0"),
    ("layer_binarizations_0", lambda: bm.QActivation(binarizations=0), ValueError, "binarizations must be an integer >= 1"),
    ("layer_activation_unknown", lambda: bm.QActivation(activation="tanh"), ValueError, "unsupported activation 'tanh'; allowed: 'sign'"),
    ("layer_pad_mode_unknown", qconv(8, 3, pad_mode="reflect"), ValueError, "unsupported pad_mode 'reflect'; allowed: 'minus_one', 'zero'"),
    ("layer_scaling_unknown", qdense(4, scaling="mean"), ValueError, "unsupported scaling 'mean'"),
    ("scale_init_nan", lambda: bm.Scale(math.nan), ValueError, "init must be a finite number"),
    ("quantizer_not_a_quantizer", lambda: bm.QActivation(quantizer=5), TypeError,
     "quantizer must be a binary_models.quantization.Quantizer"),
    ("weight_quantizer_not_a_quantizer", qdense(4, weight_quantizer=abs), TypeError, "weight_quantizer must be a"),
    ("ste_sign_grad_cancel_negative", lambda: q.SteSign(-1), ValueError, "SteSign: grad_cancel must be a number > 0, got -1"),
    ("multi_sign_terms_0", lambda: q.MultiSign(0), ValueError, "MultiSign: terms must be an integer in 1..32, got 0"),
    ("dorefa_bits_0", lambda: q.DoReFaActivation(0), ValueError, "DoReFaActivation: bits must be an integer in 1..8, got 0"),
    ("dorefa_weight_bits_32", lambda: q.DoReFaWeight(32), ValueError, "DoReFaWeight: bits must be an integer in 1..8"),
    # ---- packed blocks of the API (packed_layers) ----
    ("binary_conv2d_block_of_a_multibit_layer", lambda: BinaryConv2D(initialized(bm.QConv2D(8, 3, in_channels=4, bits=2))),
     ValueError, "has no xnor kernel (it is not a sign)"),
    ("binary_conv2d_block_of_a_dense_layer", lambda: BinaryConv2D(bm.QDense(4, in_units=3)), TypeError,
     "BinaryConv2D needs a QConv2D, got QDense"),
    ("binary_conv2d_block_batchnorm_not_a_batchnorm", lambda: BinaryConv2D(initialized(bm.QConv2D(8, 3, in_channels=4)),
                                                                           batchnorm=nn.Dense(4)),
     TypeError, "batchnorm must be a gluon.nn.BatchNorm"),
    ("binary_dense_block_of_two_binarizations", lambda: BinaryDense(initialized(bm.QDense(4, in_units=8, binarizations=2))),
     ValueError, "BinaryDense cannot pack"),
    ("norm_pool_block_of_a_conv", lambda: NormPool(nn.Conv2D(4, 3)), TypeError, "NormPool: batchnorm must be a gluon.nn.BatchNorm"),
    ("norm_pool_block_average_pool", lambda: NormPool(nn.BatchNorm(in_channels=4), pool=nn.AvgPool2D()), TypeError,
     "pool must be a gluon.nn.MaxPool2D or None"),
    # ---- get_model and the input size ----
    ("get_model_none", model(None), TypeError, "the model name must be a string, got None; this package's models: "),
    ("get_model_int", model(5), TypeError, "got 5; this package's models: binary_alexnet"),
    ("get_model_misspelt", model("meliusnt22"), ValueError, "Closest known: meliusnet22"),
    ("get_model_classes_0", model("meliusnet22", classes=0), ValueError, "meliusnet22: classes must be an integer >= 1"),
    ("get_model_classes_negative", model("resnet_e18", classes=-1), ValueError, "classes must be an integer >= 1, got -1"),
    ("get_model_classes_float", model("tang_nin", classes=2.5), ValueError, "tang_nin: classes must be an integer >= 1, got 2.5"),
    ("get_model_classes_bool", model("binary_densenet28", classes=True), ValueError, "classes must be an integer >= 1, got True"),
    ("get_model_gluoncv_classes_0", model("resnet18_v1", classes=0), ValueError, "resnet18_v1: classes must be an integer >= 1"),
    ("get_model_growth_0", model("meliusnet22", growth=0), ValueError, "growth must be an integer >= 1, got 0"),
    ("get_model_unknown_stem", model("meliusnet22", stem="huge"), ValueError, "unknown stem 'huge'; allowed: "),
    ("input_too_small_for_meliusnet22", lambda: check_input_size("meliusnet22", 16), ValueError,
     "input_size 16 is too small for meliusnet22: it needs at least 29"),
    ("input_too_small_for_thumbnail_stem", lambda: check_input_size("resnet_e18", 8, 4, stem="thumbnail"), ValueError,
     "input_size 8x4 is too small for resnet_e18: it needs at least 5x5"),
    ("minimum_input_size_of_a_number", lambda: minimum_input_size(5), TypeError, "needs a model name or a Gluon HybridBlock"),
    # ---- convert() ----
    ("convert_int", lambda: convert(5), TypeError, "convert needs a Gluon block"),
    ("convert_none", lambda: convert(None), TypeError, "convert needs a Gluon block"),
    ("convert_model_name", lambda: convert("meliusnet22"), TypeError, "got 'meliusnet22'"),
    ("convert_float_block", lambda: convert(initialized(nn.Dense(3))), ValueError, "has no binary layer to convert"),
    # ---- binary_conv2d: every attribute, dtypes, shapes, inputs ----
    ("conv_kernel_0", lambda: conv(kernel=(0, 3)), MXNetError, "binary_conv2d: kernel height 0 is not supported (allowed: 1..7)"),
    ("conv_kernel_3_values", lambda: conv(kernel=(3, 3, 3)), MXNetError, "attribute kernel: expected one or two integers"),
    ("conv_kernel_text", lambda: conv(kernel="abc"), MXNetError, "attribute kernel: 'abc' is not a list of integers"),
    ("conv_stride_negative", lambda: conv(stride=-1), MXNetError, "stride -1 is not supported (allowed: 1..4)"),
    ("conv_stride_fraction", lambda: conv(stride=1.5), MXNetError, "attribute stride: '1.5' is not a list of integers"),
    ("conv_stride_nan", lambda: conv(stride=math.nan), MXNetError, "attribute stride: 'nan' is not a list of integers"),
    ("conv_dilate_0", lambda: conv(dilate=0), MXNetError, "dilate 0 is not supported (allowed: 1..16)"),
    ("conv_dilate_17", lambda: conv(dilate=17), MXNetError, "dilate 17 is not supported (allowed: 1..16)"),
    ("conv_pad_negative", lambda: conv(pad=-1), MXNetError, "pad -1 is not supported (allowed: 0..65536)"),
    ("conv_num_filter_0", lambda: conv(num_filter=0), MXNetError, "num_filter 0 must be a positive multiple of num_group 1"),
    ("conv_num_filter_negative", lambda: conv(num_filter=-8), MXNetError, "num_filter -8 must be a positive multiple"),
    ("conv_num_filter_empty", lambda: conv(num_filter=()), MXNetError, "attribute num_filter: expected an integer"),
    ("conv_num_filter_overflow_to_1", lambda: conv(num_filter=OVERFLOW), MXNetError, "attribute num_filter: 4294967297 is out of range"),
    ("conv_in_channels_negative", lambda: conv(in_channels=-16), MXNetError, "in_channels -16 must be a positive multiple"),
    ("conv_num_group_0", lambda: conv(num_group=0), MXNetError, "num_group 0 must be >= 1"),
    ("conv_num_group_negative", lambda: conv(num_group=-2), MXNetError, "num_group -2 must be >= 1"),
    ("conv_pad_mode_unknown", lambda: conv(pad_mode="edge"), MXNetError, "attribute pad_mode: expected 'minus_one', 'zero' or 'one'"),
    ("conv_scaled_not_bool", lambda: conv(scaled="maybe"), MXNetError, "attribute scaled: expected True or False"),
    ("conv_folded_bn_not_bool", lambda: conv(folded_bn="yes"), MXNetError, "attribute folded_bn: expected True or False"),
    ("conv_unknown_attribute", lambda: conv(padding=1), MXNetError, "unknown attribute 'padding' (known: dilate, folded_bn"),
    ("conv_data_int32", lambda: conv(data_dtype="int32"), MXNetError, "binary_conv2d: data must be float32, got int32"),
    ("conv_data_float16", lambda: conv(data_dtype="float16"), MXNetError, "data must be float32, got float16"),
    ("conv_packed_weight_float32", lambda: conv(weight=nd.ones((2, 3, 3, 1, 4))), MXNetError,
     "packed weight must be int64 (from binary_pack_weights), got float32"),
    ("conv_packed_weight_4d", lambda: conv(weight=nd.ones((2, 3, 3, 4), dtype="int64")), MXNetError,
     "packed weight shape (2, 3, 3, 4) does not match the attributes, which need (2, 3, 3, 1, 4)"),
    ("conv_data_5d", lambda: conv(data=(1, 16, 5, 5, 1)), MXNetError, "data must be 4-D NCHW, got shape (1, 16, 5, 5, 1)"),
    ("conv_scale_float64", lambda: conv(extra=[nd.ones(8, dtype="float64")], scaled=True), MXNetError,
     "scale must be float32, got float64"),
    ("conv_threshold_int32", lambda: conv(extra=[nd.ones(16, dtype="int32"), nd.ones(16)], folded_bn=True), MXNetError,
     "threshold must be float32, got int32"),
    ("conv_direction_shape", lambda: conv(extra=[nd.ones(16), nd.ones(4)], folded_bn=True), MXNetError,
     "direction shape (4,) must be (16,)"),
    ("conv_scaled_without_scale_input", lambda: conv(scaled=True), MXNetError, "binary_conv2d expects 3 inputs, but got 2"),
    ("conv_extra_input", lambda: conv(extra=[nd.ones(8)]), MXNetError, "binary_conv2d expects 2 inputs, but got 3"),
    # ---- binary_dense, binary_pack_weights ----
    ("dense_num_hidden_negative", lambda: dense(num_hidden=-4), MXNetError, "num_hidden -4 is not supported (allowed: 1..16777216)"),
    ("dense_in_units_text", lambda: dense(in_units="16x"), MXNetError, "attribute in_units: '16x' is not a list of integers"),
    ("dense_scaled_not_bool", lambda: dense(scaled="x"), MXNetError, "binary_dense: attribute scaled: expected True or False"),
    ("dense_data_float64", lambda: dense(data_dtype="float64"), MXNetError, "binary_dense: data must be float32, got float64"),
    ("dense_unknown_attribute", lambda: dense(kernel=3), MXNetError, "unknown attribute 'kernel' (known: in_units, num_hidden, scaled)"),
    ("pack_num_group_0", lambda: pack(num_group=0), MXNetError, "binary_pack_weights: num_group 0 must be >= 1"),
    ("pack_num_group_not_dividing", lambda: pack(num_group=3), MXNetError, "num_filter 8 must be a positive multiple of num_group 3"),
    ("pack_kernel_8", lambda: pack((8, 16, 8, 8)), MXNetError, "kernel height 8 is not supported (allowed: 1..7)"),
    ("pack_float64", lambda: pack(dtype="float64"), MXNetError, "binary_pack_weights: weight must be float32, got float64"),
    ("pack_unknown_attribute", lambda: pack(groups=2), MXNetError, "unknown attribute 'groups' (known: num_group)"),
    # ---- binary_dense_stage ----
    ("stage_units_empty", lambda: stage(units=""), MXNetError, "units is empty (one letter per unit"),
    ("stage_in_channels_overflow", lambda: stage(in_channels=2 ** 32 + 8), MXNetError,
     "attribute in_channels: 4294967304 is out of range"),
    ("stage_growth_0", lambda: stage(growth=0), MXNetError, "growth 0 is not supported (allowed: 1..16777216)"),
    ("stage_growth_negative", lambda: stage(growth=-8), MXNetError, "growth -8 is not supported"),
    ("stage_growth_overflow", lambda: stage(growth=2 ** 32 + 8), MXNetError, "attribute growth: 4294967304 is out of range"),
    ("stage_kernel_0", lambda: stage(kernel=0), MXNetError, "binary_dense_stage: kernel height 0 is not supported"),
    ("stage_kernel_overflow", lambda: stage(kernel=2 ** 32 + 3), MXNetError, "attribute kernel: 4294967299 is out of range"),
    ("stage_kernel_pair", lambda: stage(kernel=(3, 3)), MXNetError, "attribute kernel: expected an integer"),
    ("stage_dilate_0", lambda: stage(dilate=0), MXNetError, "dilate 0 is not supported (allowed: 1..16)"),
    ("stage_dilate_overflow", lambda: stage(dilate=2 ** 33), MXNetError, "attribute dilate: 8589934592 is out of range"),
    ("stage_pad_mode_unknown", lambda: stage(pad_mode="reflect"), MXNetError, "attribute pad_mode: expected 'minus_one', 'zero' or 'one'"),
    ("stage_scaled_not_bool", lambda: stage(scaled="yes"), MXNetError, "attribute scaled: expected True or False"),
    ("stage_unknown_attribute", lambda: stage(stride=2), MXNetError, "unknown attribute 'stride' (known: dilate, growth"),
    ("stage_data_float64", lambda: nd.binary_dense_stage(nd.ones((1, 8, 4, 4), dtype="float64"), nd.ones((72,), dtype="int64"),
                                                         nd.ones(8), nd.ones(8), units="D", in_channels=8, growth=8).wait_to_read(),
     MXNetError, "binary_dense_stage: data must be float32, got float64"),
    ("stage_directions_int32", lambda: stage(directions=((8,), "int32")), MXNetError, "direction must be float32, got int32"),
    ("stage_directions_shape", lambda: stage(directions=((3,), "float32")), MXNetError, "directions shape (3,) must be (8,)"),
    ("stage_scales_shape", lambda: stage(scales=(3,), scaled=True), MXNetError, "scales shape (3,) must be (8,)"),
    ("stage_weights_2d", lambda: stage(weights=((72, 1), "int64")), MXNetError, "packed weights shape (72, 1) must be (72,)"),
    ("stage_data_3d", lambda: stage(data=(8, 4, 4)), MXNetError, "data must be 4-D NCHW, got shape (8, 4, 4)"),
    ("stage_scaled_without_scales_input", lambda: stage(scaled=True), MXNetError, "binary_dense_stage expects 5 inputs, but got 4"),
    ("stage_weights_beyond_an_mxnet_dimension", lambda: stage_shape_inference(units="D", in_channels=2 ** 23, growth=2 ** 23),
     MXNetError, "packed weights would have 9895604649984 elements, more than an MXNet dimension holds (4294967295)"),
    # ---- norm_pool ----
    ("norm_pool_kernel_0", lambda: norm_pool(kernel=0), MXNetError, "norm_pool: kernel height 0 is not supported (allowed: 1..16)"),
    ("norm_pool_kernel_17", lambda: norm_pool(kernel=(2, 17)), MXNetError, "kernel width 17 is not supported (allowed: 1..16)"),
    ("norm_pool_kernel_overflow", lambda: norm_pool(kernel=2 ** 32 + 2), MXNetError, "attribute kernel: 4294967298 is out of range"),
    ("norm_pool_kernel_3_values", lambda: norm_pool(kernel=(2, 2, 2)), MXNetError, "attribute kernel: expected one or two integers"),
    ("norm_pool_stride_0", lambda: norm_pool(stride=0), MXNetError, "norm_pool: stride 0 is not supported (allowed: 1..16)"),
    ("norm_pool_stride_negative", lambda: norm_pool(stride=-2), MXNetError, "stride -2 is not supported"),
    ("norm_pool_stride_overflow", lambda: norm_pool(stride=2 ** 32 + 2), MXNetError, "attribute stride: 4294967298 is out of range"),
    ("norm_pool_pad_negative", lambda: norm_pool(kernel=3, pad=-1), MXNetError, "pad -1 is not supported (allowed: 0..1)"),
    ("norm_pool_pad_beyond_half_kernel", lambda: norm_pool(kernel=3, pad=2), MXNetError, "pad 2 is not supported (allowed: 0..1)"),
    ("norm_pool_pad_overflow", lambda: norm_pool(kernel=3, pad=2 ** 32), MXNetError, "attribute pad: 4294967296 is out of range"),
    ("norm_pool_shuffle_groups_0", lambda: norm_pool(shuffle_groups=0), MXNetError, "shuffle_groups 0 is not supported (allowed: 1..8)"),
    ("norm_pool_shuffle_groups_overflow", lambda: norm_pool(shuffle_groups=2 ** 32 + 2), MXNetError,
     "attribute shuffle_groups: 4294967298 is out of range"),
    ("norm_pool_shuffle_groups_not_dividing", lambda: norm_pool(shuffle_groups=3), MXNetError,
     "channels 8 must be a multiple of shuffle_groups 3"),
    ("norm_pool_relu_not_bool", lambda: norm_pool(relu="sometimes"), MXNetError, "attribute relu: expected True or False"),
    ("norm_pool_unknown_attribute", lambda: norm_pool(pool_type="avg"), MXNetError, "unknown attribute 'pool_type' (known: kernel"),
    ("norm_pool_mean_int32", lambda: norm_pool(mean=((8,), "int32")), MXNetError, "norm_pool: mean must be float32, got int32"),
    ("norm_pool_scale_2d", lambda: norm_pool(scale=(2, 4)), MXNetError, "scale shape (2, 4) must be (8,)"),
    ("norm_pool_window_larger_than_input", lambda: norm_pool(data=(1, 8, 2, 2), kernel=3), MXNetError,
     "the pooling window is larger than the padded input"),
    ("norm_pool_three_inputs", lambda: norm_pool(inputs=3), MXNetError, "norm_pool expects 4 inputs, but got 3"),
    # ---- binary_conv2d_train and plain_batch_norm (training) ----
    ("train_conv_kernel_0", lambda: train_conv(kernel=0), MXNetError, "kernel, stride and dilate must be 1 to 65536"),
    ("train_conv_pad_not_below_kernel", lambda: train_conv(pad=3), MXNetError, "pad must be smaller than the kernel"),
    ("train_conv_num_filter_missing", lambda: nd.binary_conv2d_train(nd.ones((1, 4, 5, 5)), nd.ones((2, 4, 3, 3)),
                                                                     kernel=3).wait_to_read(),
     MXNetError, "attribute num_filter: required attribute missing"),
    ("train_conv_pad_mode_two", lambda: train_conv(pad_mode="two"), MXNetError,
     "attribute pad_mode: expected 'minus_one', 'zero' or 'one'"),
    ("train_conv_stride_unknown", lambda: train_conv(stride=2), MXNetError, "unknown attribute 'stride'"),
    ("train_conv_data_float64", lambda: train_conv(dtype="float64"), MXNetError, "data must be float32"),
    ("train_conv_weight_shape", lambda: train_conv(weight=(2, 3, 3, 3)), MXNetError,
     "weight shape (2, 3, 3, 3) must be (2, 4, 3, 3)"),
    ("train_conv_data_3d", lambda: train_conv(data=(4, 5, 5)), MXNetError, "NCHW"),
    ("train_conv_kernel_larger_than_input", lambda: train_conv(data=(1, 4, 2, 2), pad=0), MXNetError, "larger than"),
    ("batch_norm_eps_0", lambda: batch_norm(eps=0), MXNetError, "eps must be positive and finite"),
    ("batch_norm_eps_text", lambda: batch_norm(eps="small"), MXNetError, "attribute eps: 'small' is not a number"),
    ("batch_norm_momentum_2", lambda: batch_norm(momentum=2), MXNetError, "momentum must be 0 to 1"),
    ("batch_norm_fix_gamma_not_bool", lambda: batch_norm(fix_gamma="maybe"), MXNetError,
     "attribute fix_gamma: expected True or False"),
    ("batch_norm_use_global_stats_not_bool", lambda: batch_norm(use_global_stats="maybe"), MXNetError,
     "attribute use_global_stats: expected True or False"),
    ("batch_norm_axis_unknown", lambda: batch_norm(axis=2), MXNetError, "unknown attribute 'axis'"),
    ("batch_norm_gamma_shape", lambda: batch_norm(gamma=(4,)), MXNetError, "gamma shape (4,) must be (3,)"),
    ("batch_norm_training_shape", lambda: batch_norm(training=(2,)), MXNetError, "training shape (2,) must be (1,)"),
    ("batch_norm_data_float64", lambda: batch_norm(dtype="float64"), MXNetError, "data must be float32"),
    ("batch_norm_data_1d", lambda: batch_norm(data=(6,), gamma=(6,)), MXNetError, "a batch and a channel axis"),
    ("caller_threads_0", lambda: native.set_caller_threads(0), ValueError,
     "threads must be an integer from 1 to 2^31 - 1, got 0"),
    ("caller_threads_float", lambda: native.set_caller_threads(2.0), ValueError, "got 2.0"),
    ("caller_threads_bool", lambda: native.set_caller_threads(True), ValueError, "got True"),
    ("caller_threads_overflow", lambda: native.set_caller_threads(2 ** 31), ValueError, "got 2147483648"),
]


@pytest.mark.parametrize("call,error,fragment", [pytest.param(*row[1:], id=row[0]) for row in ROWS])
def test_bad_input_raises_a_clear_error_naming_the_problem(call, error, fragment):
    with pytest.raises(error, match=re.escape(fragment)):
        call()


def test_the_sweep_has_a_row_for_every_attribute_of_every_native_operator():
    attributes = {"conv": ("kernel", "stride", "dilate", "pad", "num_filter", "in_channels", "num_group", "pad_mode",
                           "scaled", "folded_bn"),
                  "dense": ("num_hidden", "in_units", "scaled"), "pack": ("num_group",),
                  "stage": ("units", "in_channels", "growth", "kernel", "dilate", "pad_mode", "scaled"),
                  "norm_pool": ("kernel", "stride", "pad", "relu", "shuffle_groups"),
                  "train_conv": ("kernel", "pad", "num_filter", "pad_mode"),
                  "batch_norm": ("eps", "momentum", "fix_gamma", "use_global_stats")}
    ids = [row[0] for row in ROWS]
    missing = [(op, name) for op, names in attributes.items() for name in names
               if not any(i.startswith(op + "_" + name) for i in ids)]
    assert not missing
    assert len(ids) == len(set(ids))


def test_minimum_input_size_is_the_least_size_a_model_runs_on():
    net = bm.get_model("resnet_e18", stem="thumbnail", classes=3)
    net.initialize()
    least = minimum_input_size("resnet_e18", stem="thumbnail")
    assert least == minimum_input_size(net) == 5
    assert net(nd.zeros((1, 3, least, least))).shape == (1, 3)
    with pytest.raises(MXNetError):
        net(nd.zeros((1, 3, least - 1, least - 1))).wait_to_read()
    assert check_input_size("resnet_e18", 224, 5, stem="thumbnail") == 5
