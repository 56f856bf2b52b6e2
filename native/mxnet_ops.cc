// Registers the binary operators with stock MXNet through the extension-library API (lib_api.h, MXNet
// >= 1.7): after mx.library.load(path) they are mx.nd.<name> and mx.sym.<name>. The computation lives in
// kernels/; ops/ parses attributes, checks inputs and infers shapes and types. Every problem is
// refused with MX_FAIL and a message naming it (Python raises MXNetError), never a crash.
//
//   binary_pack_weights(weight; num_group=1) -> int64 packed weights (layout: kernels/conv_shape.h)
//       weight: float32 (out_channels, in_channels / num_group, kh, kw), or (units, in_units) for a dense layer
//   binary_conv2d(data, packed_weight[, threshold, direction][, scale]; kernel, num_filter, in_channels,
//                 stride=1, dilate=1, pad=0, num_group=1, pad_mode='minus_one'|'zero', folded_bn=False,
//                 scaled=False) -> float32 NCHW
//   binary_dense(data, packed_weight[, scale]; num_hidden, in_units, scaled=False) -> float32 (batch, units)
// The output is sum(sign(data) * sign(weight)) over each receptive field (data padded with -1 or 0), times
// scale[o] (float32, one per output channel) when scaled: what QConv2D / QDense compute in float. With
// folded_bn the sign of channel c is data * direction[c] >= threshold[c] (float32, one per input channel):
// sign(BatchNorm(data)) with the BatchNorm folded in (kernels/conv_shape.h ConvOptions).
//   binary_dense_stage(data, packed_weights, thresholds, directions[, scales]; units, in_channels, growth=64,
//                      kernel=3, dilate=1, pad_mode, scaled=False) -> float32 NCHW
//       a whole dense stage (kernels/dense_stage.h): units 'D' (DenseBlock) / 'I' (ImprovementBlock), each
//       a folded BN -> binary conv; the units' parts of the 1-D weights, thresholds, directions, scales
//       one after the other.
//   norm_pool(data, mean, scale, shift; kernel=1, stride=1, pad=0, relu=False, shuffle_groups=1) -> float32
//       max pool of (data - mean[c]) * scale[c] + shift[c] (a BatchNorm, as MXNet rounds it), then ReLU,
//       then channel shuffle (kernels/norm_pool.h).
//   rprelu(data, shift_in, slope, shift_out) -> float32 NCHW
//       ReActNet's RPReLU: prelu(data - shift_in[c], slope[c]) + shift_out[c], rounded as MXNet's ops (kernels/rprelu.h).
//   float_conv2d(data, weight[, bias]; kernel, num_filter, stride=1, dilate=1, pad=0, num_group=1, no_bias=False)
//       -> float32 NCHW: MXNet's Convolution on the library's own micro-kernels (kernels/float_conv.h), for the
//       grouped convs that oneDNN runs slowly.
//   ste_sign(data; grad_cancel) -> data's dtype (float32, float64), data's shape; for training, with a gradient
//       sign (x >= 0 ? 1 : -1) forward, grad * (|x| <= grad_cancel) backward: the straight-through estimator
//       of binary_models.nn.quantization.ste_sign in one pass each way.
//   binary_conv2d_train(data, weight; kernel, num_filter, pad=0, pad_mode='minus_one'|'zero'|'one') -> float32 NCHW;
//       for training, with a gradient: data and weight (float32 OIHW) are signs (+-1); the forward pass is
//       binary_conv2d (exact), the backward the float gradients of the convolution (kernels/conv_gradient.h);
//       stride 1, dilation 1, one group.
//   plain_batch_norm(data, gamma, beta, moving_mean, moving_var, training; eps=1e-3, momentum=0.9, fix_gamma=False,
//                    use_global_stats=False) -> (out, mean, invstd), float32: MXNet's BatchNorm over axis 1 on the
//       plain layout (kernels/batch_norm.h), for training; moving_mean and moving_var are auxiliary states
//       (updated in training); training (1,) is 1 exactly at inference, anything else in training.
//
// Each operator family has its file in ops/ (binary_conv.cc: binary_pack_weights, binary_conv2d and
// binary_dense; dense_stage.cc; norm_pool.cc; rprelu.cc; float_conv.cc; ste_sign.cc; binary_conv_train.cc;
// batch_norm.cc), their shared glue is
// ops/glue.h; this file holds what the library has once: the version check MXNet calls when it loads the library.
#include <mxnet/lib_api.h>

#include "kernels/isa.h"

mxnet::ext::MXReturnValue initialize(int version) {
  binary_models::active_isa();  // reads BINARY_MODELS_ISA now: a complaint about it comes at load time
  if (version >= 10700) return mxnet::ext::MX_SUCCESS;
  MX_ERROR_MSG << "binary_models native operators need MXNet >= 1.7.0, got " << version;
  return mxnet::ext::MX_FAIL;
}
