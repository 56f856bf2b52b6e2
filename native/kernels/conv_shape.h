// The shape of a binary (xnor/popcount) convolution and the packed layouts of its operands: what every
// part of the convolution (plan, packing, micro-kernels, output transform) and its callers share. Plain
// C++17, no MXNet.
//
// Values are signs: a bit is 1 for x >= 0 (+1) and 0 for x < 0 (-1). Channels are packed along 64-bit
// words; for a sum over K sign products, dot = K - 2 * popcount(x xor w) (BinaryDenseNet Eq. 4 written
// with xor instead of xnor). Bits past the last channel are 0 in both operands, so they never count.
//
// Packed weight layout (int64 words, shape (groups * blocks, kernel_h, kernel_w, words, 4)):
//   element [g * blocks + b, ky, kx, w, l] holds input channels 64w .. 64w+63 of group g (bit k = channel
//   64w + k) of output channel g * group_out_channels + 4b + l at tap (ky, kx); lanes past the group's
//   output channels are 0. words = ceil(group_in_channels / 64), blocks = ceil(group_out_channels / 4).
//   Four output channels share a 256-bit vector, so one vpsadbw yields four output channels at once.
// Packed activations (the workspace): [batch][padded rows][padded columns][groups][words].
// A dense layer is the 1x1 convolution of a 1x1 image (weights (units, in_units) as (units, in_units, 1, 1)).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace binary_models {

// What the sign'd input is padded with: -1 (0 bits), 0 (exact, corrected in the output transform) or +1 (1 bits
// for the group's channels; larq's pad_values=1). The order is binary_models.nn.config.PAD_MODES's.
enum class PadMode { kMinusOne, kZero, kOne };

constexpr int kLanes = 4;      // output channels per packed weight block (4 x 64 bits = one AVX2 vector)
constexpr int kWordBits = 64;
// Supported geometry; anything else is refused by ConvShape::check().
constexpr int kMaxKernel = 7, kMaxStride = 4, kMaxDilation = 16;
constexpr int kMaxChannels = 1 << 24, kMaxSize = 1 << 16;  // channels; height, width and padding

// Geometry of a binary convolution: NCHW input, OIHW weights, `groups` groups.
struct ConvShape {
  int batch = 1, in_channels = 0, height = 0, width = 0;
  int out_channels = 0, kernel_h = 1, kernel_w = 1;
  int stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilate_h = 1, dilate_w = 1;
  int groups = 1;
  PadMode pad_mode = PadMode::kMinusOne;

  int out_height() const;
  int out_width() const;
  int group_in_channels() const { return in_channels / groups; }
  int group_out_channels() const { return out_channels / groups; }
  int taps() const { return kernel_h * kernel_w; }
  int words() const { return (group_in_channels() + kWordBits - 1) / kWordBits; }
  int blocks() const { return (group_out_channels() + kLanes - 1) / kLanes; }
  int64_t packed_weight_words() const { return int64_t(groups) * blocks() * taps() * words() * kLanes; }
  // One image's packed activations, padding included.
  int64_t packed_image_words() const {
    return int64_t(height + 2 * pad_h) * (width + 2 * pad_w) * groups * words();
  }
  // Each check returns "" when supported, else names the problem: the weights alone (channels, groups,
  // kernel); those and stride, dilation, padding; everything, including the input size.
  std::string check_weights() const;
  std::string check_geometry() const;
  std::string check() const;
};

// The shape of a dense layer as a 1x1 convolution of `batch` 1x1 images.
ConvShape dense_shape(int batch, int in_units, int units);

// Bytes of scratch memory binary_conv2d needs (the packed, padded activations of the batch).
inline size_t workspace_bytes(const ConvShape& shape) {
  return size_t(shape.batch) * size_t(shape.packed_image_words()) * sizeof(uint64_t);
}

// Packs OIHW float weights (out_channels, group_in_channels, kernel_h, kernel_w) to the layout above.
void pack_weights(const ConvShape& shape, const float* weights, uint64_t* packed);

// What a binary_conv2d call may do beyond the dense NCHW tensors of its shape.
struct ConvOptions {
  // A BatchNorm folded into the binarization: the bit of input channel c is input * direction[c] >=
  // threshold[c] (direction +1, or -1 where the BN's gamma < 0, or 0 where gamma == 0: a constant bit).
  // Null: the bit is input >= 0.
  const float* threshold = nullptr;
  const float* direction = nullptr;
  // Floats from one image to the next, of the input and of the output; 0: in_channels (out_channels) x
  // pixels, dense NCHW. Larger strides read a channel prefix of, and write a channel range into, wider
  // tensors (a dense block's growing feature map, without concatenation).
  int64_t input_image_stride = 0;
  int64_t output_image_stride = 0;
};

}  // namespace binary_models
