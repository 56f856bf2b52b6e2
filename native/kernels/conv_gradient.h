// The gradients of a full-precision convolution with stride 1, dilation 1 and one group, for training: the
// backward pass of binary_conv2d_train (its forward is binary_conv2d on the same signs). The data gradient is
// float_conv.h's convolution of the output gradient with the weights flipped and transposed; the weight
// gradient runs gemm.h's column tile over the zero-padded grid of float_conv's padded path (each output row
// over the padded width, the extra columns' gradient 0). Sums round in another order than oneDNN's.
#pragma once

#include <cstddef>
#include <cstdint>

#include "float_conv.h"

namespace binary_models {

// "" when conv_data_gradient and conv_weight_gradient compute `shape` (stride 1, dilation 1, one group, no
// padding wider than the kernel less one), else the problem.
std::string check_gradient_shape(const FloatConvShape& shape);

// The weight gradient copies the input (padded) and the output gradient (pixel-major) of as many images at a time
// as fit in this many floats (at least one image).
constexpr int64_t kGradientPassFloats = int64_t(1) << 24;  // 64 MB

// Bytes of workspace each of the two needs (aligned to 8 bytes).
size_t conv_data_gradient_bytes(const FloatConvShape& shape);
size_t conv_weight_gradient_bytes(const FloatConvShape& shape, int64_t pass_floats = kGradientPassFloats);

// d_input (batch, channels, height, width) = the gradient of the convolution's input, from d_output (batch,
// filters, out_height(), out_width()) and weight (filters, channels, kernel_h, kernel_w).
void conv_data_gradient(const FloatConvShape& shape, const float* d_output, const float* weight, float* d_input,
                        void* workspace);

// d_weight (filters, channels, kernel_h, kernel_w) = the sum over images and output pixels of d_output times
// the input under each tap, the input padded with `pad_value` (binary_conv2d's -1, 0 or +1). The input must be
// finite: the padded rows' extra columns multiply it by 0.
void conv_weight_gradient(const FloatConvShape& shape, const float* input, float pad_value, const float* d_output,
                          float* d_weight, void* workspace, int64_t pass_floats = kGradientPassFloats);

}  // namespace binary_models
