// The interface between the convolution driver (binary_conv.cc) and its ISA-specific parts: a row
// packer and an xor-popcount micro-kernel over a register tile of output channels x pixels.
#pragma once

#include <cstdint>

#include "conv_shape.h"

namespace binary_models {

constexpr int kTilePixels = 8;  // output pixels per tile (8 x 64 bits = one 512-bit vector)
constexpr int kTileBlocks = 4;  // weight blocks (of kLanes output channels) per micro-kernel call, at most

// How the driver gathers a tile's receptive fields for a kernel (tile_gather.h): row k holds word k of the
// kTilePixels pixels; kWithSwappedPairs follows it by the same words with the pixels of each pair swapped
// (pixel j ^ 1 at j), so that 128-bit vectors of two pixels meet both channels of a two-channel weight
// vector without a shuffle (NEON); kWithNibbles follows it by the words' low nibbles (word & 0x0f0f...), then
// their high nibbles ((word >> 4) & 0x0f0f...), the indices of a byte lookup table (AVX2).
enum class TileLayout { kPlain, kWithSwappedPairs, kWithNibbles };
inline int tile_rows(TileLayout layout) {
  return layout == TileLayout::kPlain ? 1 : layout == TileLayout::kWithSwappedPairs ? 2 : 3;
}

// One tile: up to kTileBlocks weight blocks against kTilePixels output pixels, whose receptive fields the
// driver has gathered into one small buffer (a packed im2col of this tile only).
struct TileArgs {
  const uint64_t* x;        // x[k * tile_rows(layout) * kTilePixels + j]: word k of pixel j's receptive field
  int reduction;            // words per receptive field (taps x words per tap)
  const uint64_t* weights;  // block b: weights + b * block_stride, [reduction][kLanes]
  int64_t block_stride;
  int blocks;               // 1 .. kTileBlocks
  // When `out` is set, the kernel applies the output transform (transform_full_tile, output_transform.h)
  // instead of returning counts: out[c * out_stride + j] = float(full - 2 * count) * scale[c] (scale null:
  // 1) for its first `channels` channels.
  float* out;
  int64_t out_stride;
  int32_t full;
  const float* scale;
  int channels;
};

// Where the packers' words go: the rows' pixels taken one after the other, as they lie in a channel's plane
// (a pass over 16 or 32 of them fills its vector lanes however short the rows), pixel q of the rows at
// out[q / width * row_stride + q % width * pixel_words].
class PixelWords {
 public:
  PixelWords(uint64_t* out, int64_t first_pixel, int width, int64_t row_stride, int64_t pixel_words)
      : row_(out + first_pixel / width * row_stride), column_(first_pixel % width), width_(width),
        row_stride_(row_stride), pixel_words_(pixel_words) {}
  // The next pixel's word.
  void put(uint64_t word) {
    row_[column_ * pixel_words_] = word;
    if (++column_ == width_) {
      column_ = 0;
      row_ += row_stride_;
    }
  }

 private:
  uint64_t* row_;
  int64_t column_, width_, row_stride_, pixel_words_;
};

struct KernelSet {
  const char* name;
  TileLayout layout;
  // counts[(b * kLanes + l) * kTilePixels + j] = popcount(x xor w) summed over the reduction, for lane l
  // of block b and pixel j; with tile.out set, the outputs instead (counts is scratch space then).
  void (*xor_popcount)(const TileArgs& tile, int32_t* counts);
  // Packs `rows` rows of `width` pixels of one image into a zeroed buffer: channel c of pixel p of row r
  // is x[c * channel_stride + r * width + p]; its bit goes to word out[r * out_row_stride +
  // p * groups * words + g * words + c_g / 64], bit c_g % 64 (c_g: the channel's index in its group g).
  // Channels are read one plane after the other, sequentially, as the hardware prefetchers like. The bit
  // of channel c is x * direction[c] >= threshold[c] (both null: x >= 0), see ConvOptions.
  void (*pack_rows)(const float* x, int64_t channel_stride, int channels, int groups, int words, int rows,
                    int width, uint64_t* out, int64_t out_row_stride, const float* threshold,
                    const float* direction);
};

const KernelSet& scalar_kernels();
const KernelSet& avx2_kernels();             // x86-64 only, as the next two
const KernelSet& avx512_kernels();
const KernelSet& avx512_emulated_kernels();
const KernelSet& neon_kernels();             // aarch64 only, as the next one
const KernelSet& neon_dot_kernels();

}  // namespace binary_models
