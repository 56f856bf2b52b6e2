#include "output_transform.h"

namespace binary_models {

void write_outputs(const ConvShape& s, const ConvPlan& p, const ConvPlan::Tile& tile, int first_block, int blocks,
                   const int32_t* counts, const float* scale, const PaddingCorrection& correction,
                   const Border* borders, float* output) {
  const int group_out = s.group_out_channels();
  const int32_t full = s.group_in_channels() * s.taps();
  for (int c = 0; c < blocks * kLanes && first_block * kLanes + c < group_out; ++c) {
    const int local = first_block * kLanes + c, o = tile.g * group_out + local;
    const float factor = scale ? scale[o] : 1.0f;
    const int32_t* count = counts + c * kTilePixels;
    float* out = output + tile.n * p.output_image_floats + int64_t(o) * p.pixels + tile.p0;
    for (int j = 0; j < tile.pixels; ++j)
      out[j] = float(p.zero_padding ? correction.dot(tile.g, local, count[j], borders[j]) : full - 2 * count[j]) * factor;
  }
}

}  // namespace binary_models
