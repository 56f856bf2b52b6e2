#include "tile_gather.h"

namespace binary_models {

void gather_tile(const ConvShape& s, const ConvPlan& p, const ConvPlan::Tile& tile, TileLayout layout,
                 const uint64_t* packed, uint64_t* gathered) {
  const int words = s.words(), taps = s.taps(), row = tile_rows(layout) * kTilePixels;
  const bool swapped = layout == TileLayout::kWithSwappedPairs;
  const uint64_t* image = packed + tile.n * p.image_words + int64_t(tile.g) * words;
  for (int j = 0, oy = tile.p0 / p.out_w, ox = tile.p0 % p.out_w; j < kTilePixels; ++j) {
    const uint64_t* origin = image + int64_t(oy) * s.stride_h * p.row_words + int64_t(ox) * s.stride_w * p.pixel_words;
    for (int t = 0; t < taps; ++t)
      for (int i = 0; i < words; ++i) {
        uint64_t* k = gathered + (t * words + i) * row;
        k[j] = origin[p.tap_offsets[t] + i];
        if (swapped) k[kTilePixels + (j ^ 1)] = k[j];
      }
    if (j + 1 < tile.pixels && ++ox == p.out_w) {
      ox = 0;
      ++oy;
    }
  }
}

}  // namespace binary_models
