// Portable reference kernels: one 64-bit word at a time with __builtin_popcountll. The fast kernels are
// tested against these, and they run where AVX2 is absent.
#include "output_transform.h"

namespace binary_models {

static void pack_rows_scalar(const float* x, int64_t channel_stride, int channels, int groups, int words,
                             int rows, int width, uint64_t* out, int64_t out_row_stride, const float* threshold,
                             const float* direction) {
  const int group_channels = channels / groups;
  for (int c = 0; c < channels; ++c) {
    const int g = c / group_channels, local = c % group_channels;
    const float t = threshold ? threshold[c] : 0.0f, d = direction ? direction[c] : 1.0f;
    const uint64_t bit = uint64_t(1) << (local % 64);
    for (int r = 0; r < rows; ++r) {
      const float* source = x + c * channel_stride + int64_t(r) * width;
      uint64_t* word = out + r * out_row_stride + int64_t(g) * words + local / 64;
      for (int p = 0; p < width; ++p)
        if (source[p] * d >= t) word[int64_t(p) * groups * words] |= bit;
    }
  }
}

// On x86-64 also compiled for the popcnt instruction (nearly every x86-64 CPU has it; without it
// __builtin_popcountll is a library call), chosen when the library is loaded. aarch64's base ISA has a
// popcount (cnt).
#if defined(__x86_64__)
#define POPCNT_CLONES __attribute__((target_clones("popcnt", "default")))
#else
#define POPCNT_CLONES
#endif

POPCNT_CLONES static void xor_popcount_scalar(const TileArgs& tile, int32_t* counts) {
  for (int b = 0; b < tile.blocks; ++b) {
    const uint64_t* weights = tile.weights + b * tile.block_stride;
    for (int l = 0; l < kLanes; ++l)
      for (int j = 0; j < kTilePixels; ++j) {
        int32_t count = 0;
        for (int k = 0; k < tile.reduction; ++k)
          count += __builtin_popcountll(tile.x[k * kTilePixels + j] ^ weights[kLanes * k + l]);
        counts[(b * kLanes + l) * kTilePixels + j] = count;
      }
  }
  if (tile.out) transform_full_tile(tile, counts);
}

const KernelSet& scalar_kernels() {
  static const KernelSet kernels{"scalar", TileLayout::kPlain, xor_popcount_scalar, pack_rows_scalar};
  return kernels;
}

}  // namespace binary_models
