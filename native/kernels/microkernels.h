// The interface between the convolution driver (binary_conv.cc) and its ISA-specific parts: a row
// packer and an xor-popcount micro-kernel over a register tile of output channels x pixels.
#pragma once

#include <cstdint>

namespace binary_models {

constexpr int kMaxTilePixels = 8;
constexpr int kMaxTileBlocks = 4;
constexpr int kMaxTileChannels = kMaxTileBlocks * 4;

// One tile: `blocks` weight blocks (4 output channels each) against kMaxTilePixels output pixels.
struct TileArgs {
  const uint64_t* pixels[kMaxTilePixels];  // per pixel: its receptive field's origin in the packed input
  const int64_t* tap_offsets;              // words from the origin to each tap
  int taps, words;                         // the reduction: taps x words 64-bit words
  const uint64_t* weights;                 // first block: [taps][words][4]
  int64_t block_stride;                    // words between consecutive blocks
  int blocks;                              // 1 .. KernelSet::tile_blocks
};

struct KernelSet {
  const char* name;
  int tile_blocks;  // blocks a tile computes at most (tile_pixels is always kMaxTilePixels)
  // counts[(4 * b + l) * kMaxTilePixels + j] = popcount(x xor w) summed over the reduction, for lane l
  // of block b and pixel j.
  void (*xor_popcount)(const TileArgs& tile, int32_t* counts);
  // Packs `pixels` pixels of one image row: channel c of pixel p is x[c * channel_stride + p]; pixel p's
  // words go to out[p * groups * words + g * words + w] (bit k of word w = channel 64w + k of group g).
  void (*pack_row)(const float* x, int64_t channel_stride, int channels, int groups, int words, int pixels,
                   uint64_t* out);
};

const KernelSet& scalar_kernels();
const KernelSet& avx2_kernels();

// The portable row packer; the AVX2 one uses it for the pixels left over after groups of eight.
void pack_row_scalar(const float* x, int64_t channel_stride, int channels, int groups, int words, int pixels,
                     uint64_t* out);

}  // namespace binary_models
