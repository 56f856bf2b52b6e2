// A full-precision convolution as MXNet's Convolution computes it at inference (NCHW; groups, stride,
// padding, dilation; an optional bias), on gemm.h's micro-kernels: per group, the weights times the input's
// rows read in place: the image itself (1x1, stride 1), a zero-padded copy of it (stride 1: each output row
// computed over the padded width, the extra columns dropped when copied out) or im2col's columns (strided).
// The runtime's Convolution and the float_conv2d operator of both the runtime and the MXNet extension run
// this code, so they give the same bits; against oneDNN the sums round in another order (within
// 1e-5 relative). Splits its work over an OpenMP team of the caller's thread count.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace binary_models {

struct FloatConvShape {
  int64_t batch = 1, channels = 0, height = 0, width = 0, filters = 0;
  int groups = 1, kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;
  int dilate_h = 1, dilate_w = 1;

  int64_t out_height() const { return (height + 2 * pad_h - (dilate_h * (kernel_h - 1) + 1)) / stride_h + 1; }
  int64_t out_width() const { return (width + 2 * pad_w - (dilate_w * (kernel_w - 1) + 1)) / stride_w + 1; }
  std::string check_attributes() const;  // "" when the window, filters and groups are valid, else the problem
  std::string check() const;             // "" when the convolution of this input is defined, else the problem
  size_t workspace_bytes() const;  // what float_conv needs (aligned to 8 bytes)
};

// output (batch, filters, out_height(), out_width()) = input (batch, channels, height, width) convolved with
// weight (filters, channels / groups, kernel_h, kernel_w), plus bias[f] when `bias` is not null.
void float_conv(const FloatConvShape& shape, const float* input, const float* weight, const float* bias,
                float* output, void* workspace);

}  // namespace binary_models
