// Portable reference kernels: one 64-bit word at a time with __builtin_popcountll. The fast kernels are
// tested against these, and they run where AVX2 is absent.
#include "microkernels.h"

namespace binary_models {

void pack_row_scalar(const float* x, int64_t channel_stride, int channels, int groups, int words, int pixels,
                     uint64_t* out) {
  const int group_channels = channels / groups;
  for (int p = 0; p < pixels; ++p) {
    for (int g = 0; g < groups; ++g) {
      const float* first = x + int64_t(g) * group_channels * channel_stride + p;
      for (int w = 0; w < words; ++w) {
        uint64_t word = 0;
        for (int k = 0, c = w * 64; k < 64 && c < group_channels; ++k, ++c)
          word |= uint64_t(first[c * channel_stride] >= 0.0f) << k;
        out[(int64_t(p) * groups + g) * words + w] = word;
      }
    }
  }
}

static void xor_popcount_scalar(const TileArgs& tile, int32_t* counts) {
  for (int j = 0; j < kMaxTilePixels; ++j) {
    for (int b = 0; b < tile.blocks; ++b) {
      for (int l = 0; l < 4; ++l) {
        int32_t count = 0;
        for (int t = 0; t < tile.taps; ++t) {
          const uint64_t* x = tile.pixels[j] + tile.tap_offsets[t];
          const uint64_t* w = tile.weights + b * tile.block_stride + int64_t(t) * tile.words * 4 + l;
          for (int i = 0; i < tile.words; ++i) count += __builtin_popcountll(x[i] ^ w[4 * i]);
        }
        counts[(4 * b + l) * kMaxTilePixels + j] = count;
      }
    }
  }
}

const KernelSet& scalar_kernels() {
  static const KernelSet kernels{"scalar", 1, xor_popcount_scalar, pack_row_scalar};
  return kernels;
}

}  // namespace binary_models
