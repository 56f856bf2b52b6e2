// The zero-padding correction. The packed activations are always padded with 0 bits (-1); under pad_mode
// zero a tap outside the image must count 0 instead, so the output transform subtracts what such a tap
// counted there, popcount(x xor w) = popcount(w), and uses the number of taps inside the image:
//   out = group_in * valid_taps - 2 * (count - sum over outside taps t of popcount(w_t)).
#pragma once

#include <cstdint>
#include <vector>

#include "conv_plan.h"

namespace binary_models {

// Which taps of one output pixel's receptive field fall outside the image (bit t set), and how many inside.
struct Border {
  int valid_taps;
  uint64_t outside;
};

class PaddingCorrection {
 public:
  // Sized for the shape when the plan has zero padding, else empty (and never used).
  PaddingCorrection(const ConvShape& shape, const ConvPlan& plan);
  // Counts the bits of every tap of every packed weight row. Call it from every thread of an OpenMP team
  // (or outside one): the rows are shared out.
  void count_weights(const uint64_t* packed_weights);
  // The borders of the tile's pixels.
  void borders(const ConvPlan::Tile& tile, Border* borders) const;
  // The dot product of local output channel `local` of group g at a pixel with `border`, from its count.
  int32_t dot(int g, int local, int32_t count, const Border& border) const {
    const int32_t* popcounts = tap_popcounts_.data() + (int64_t(g) * blocks_ * kLanes + local) * taps_;
    for (uint64_t outside = border.outside; outside; outside &= outside - 1)
      count -= popcounts[__builtin_ctzll(outside)];
    return group_in_ * border.valid_taps - 2 * count;
  }

 private:
  const ConvShape& shape_;
  const ConvPlan& plan_;
  int group_in_, blocks_, taps_, words_;
  std::vector<int32_t> tap_popcounts_;  // [packed weight row g * blocks * kLanes + local][tap]
};

}  // namespace binary_models
