#include "tile_gather.h"

namespace binary_models {

void gather_tile(const ConvShape& s, const ConvPlan& p, const ConvPlan::Tile& tile, TileLayout layout,
                 const uint64_t* packed, uint64_t* gathered) {
  const int words = s.words(), taps = s.taps(), row = tile_rows(layout) * kTilePixels;
  const bool swapped = layout == TileLayout::kWithSwappedPairs;
  constexpr uint64_t kLowNibbles = 0x0f0f0f0f0f0f0f0full;
  const uint64_t* image = packed + tile.n * p.image_words + int64_t(tile.g) * words;
  const uint64_t* origins[kTilePixels];  // each pixel's receptive field (a partial tile repeats its last)
  for (int j = 0, oy = tile.p0 / p.out_w, ox = tile.p0 % p.out_w; j < kTilePixels; ++j) {
    origins[j] = image + int64_t(oy) * s.stride_h * p.row_words + int64_t(ox) * s.stride_w * p.pixel_words;
    if (j + 1 < tile.pixels && ++ox == p.out_w) {
      ox = 0;
      ++oy;
    }
  }
  for (int t = 0; t < taps; ++t)  // row by row: each row's kTilePixels words are written together
    for (int i = 0; i < words; ++i) {
      uint64_t* k = gathered + (t * words + i) * row;
      const int64_t offset = p.tap_offsets[t] + i;
      for (int j = 0; j < kTilePixels; ++j) k[j] = origins[j][offset];
      if (swapped)
        for (int j = 0; j < kTilePixels; ++j) k[kTilePixels + (j ^ 1)] = k[j];
    }
  if (layout == TileLayout::kWithNibbles)  // a pass of its own (3-4% faster dense stages than in the loop above)
    for (int k = 0; k < taps * words; ++k) {
      uint64_t* x = gathered + k * row;
      for (int j = 0; j < kTilePixels; ++j) {
        x[kTilePixels + j] = x[j] & kLowNibbles;
        x[2 * kTilePixels + j] = (x[j] >> 4) & kLowNibbles;
      }
    }
}

}  // namespace binary_models
