// The full-precision pieces around the binary convolutions of a converted model, in one pass: a BatchNorm
// at inference (y = (x - mean[c]) * scale[c] + shift[c], each operation rounded to float32 as MXNet's
// BatchNorm computes it, so the outputs are the same to the bit), max pooling, ReLU and a channel shuffle. It serves the
// transitions (BN -> MaxPool 2/2 -> ReLU -> [ChannelShuffle], MeliusNet section 3.3), the stem's last BN ->
// ReLU -> MaxPool 3/2, and the head's and SSD taps' BN -> ReLU (kernel 1: no pooling). ReLU commutes with
// max, so BN -> ReLU -> pool and BN -> pool -> ReLU are the same. Plain C++: it is memory-bound, and on NCHW
// maps it is many times faster than MXNet's (oneDNN's) pooling.
#pragma once

#include <cstdint>
#include <string>

namespace binary_models {

struct NormPoolShape {
  int batch = 1, channels = 0, height = 0, width = 0;
  int kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;  // max pooling (floor)
  bool relu = false;
  int shuffle_groups = 1;  // output channel (c % (C / g)) * g + c / (C / g) takes channel c (ShuffleNet)

  int out_height() const { return (height + 2 * pad_h - kernel_h) / stride_h + 1; }
  int out_width() const { return (width + 2 * pad_w - kernel_w) / stride_w + 1; }
  bool pooled() const { return kernel_h > 1 || kernel_w > 1 || stride_h > 1 || stride_w > 1; }
  int out_channel(int c) const;
  std::string check() const;  // "" when supported, else the problem
};

// output (batch, channels, out_height, out_width): max over each window (padding excluded, as MXNet's
// max pooling) of (x - mean[c]) * scale[c] + shift[c], then ReLU when asked. Non-finite values as MXNet's
// (oneDNN's) operators treat them: ReLU gives 0 for NaN and -0.0; the maximum of a window ignores NaN, is
// at least -FLT_MAX (a window of only NaN and -inf gives -FLT_MAX), and of 0.0 and -0.0 it is the first in
// raster order. (MXNet without oneDNN, MXNET_MKLDNN_ENABLED=0, pools the same but its relu keeps NaN.)
void norm_pool(const NormPoolShape& shape, const float* input, const float* mean, const float* scale,
               const float* shift, float* output);  // AVX2-compiled where active_isa() is avx2 or avx512

}  // namespace binary_models
