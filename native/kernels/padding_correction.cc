#include "padding_correction.h"

namespace binary_models {

PaddingCorrection::PaddingCorrection(const ConvShape& s, const ConvPlan& p)
    : shape_(s), plan_(p), group_in_(s.group_in_channels()), blocks_(s.blocks()), taps_(s.taps()), words_(s.words()),
      tap_popcounts_(p.zero_padding ? int64_t(s.groups) * blocks_ * kLanes * taps_ : 0) {}

void PaddingCorrection::count_weights(const uint64_t* packed_weights) {
  const int rows = int(tap_popcounts_.size() / taps_);
#pragma omp for schedule(static)
  for (int row = 0; row < rows; ++row)
    for (int t = 0; t < taps_; ++t) {
      const uint64_t* w = packed_weights + (row / kLanes) * plan_.block_words + int64_t(t) * words_ * kLanes + row % kLanes;
      int32_t count = 0;
      for (int i = 0; i < words_; ++i) count += __builtin_popcountll(w[i * kLanes]);
      tap_popcounts_[int64_t(row) * taps_ + t] = count;
    }
}

void PaddingCorrection::borders(const ConvPlan::Tile& tile, Border* borders) const {
  const ConvShape& s = shape_;
  for (int j = 0; j < tile.pixels; ++j) {
    const int oy = (tile.p0 + j) / plan_.out_w, ox = (tile.p0 + j) % plan_.out_w;
    Border& border = borders[j];
    border = Border{0, 0};
    for (int ky = 0; ky < s.kernel_h; ++ky) {
      const int y = oy * s.stride_h - s.pad_h + ky * s.dilate_h;
      for (int kx = 0; kx < s.kernel_w; ++kx) {
        const int x = ox * s.stride_w - s.pad_w + kx * s.dilate_w;
        if (y >= 0 && y < s.height && x >= 0 && x < s.width)
          ++border.valid_taps;
        else
          border.outside |= uint64_t(1) << (ky * s.kernel_w + kx);
      }
    }
  }
}

}  // namespace binary_models
