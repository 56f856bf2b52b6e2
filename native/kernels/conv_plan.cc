#include "conv_plan.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <string>

namespace binary_models {

double macs_per_thread() {
  static const double macs = [] {
    const char* policy = std::getenv("OMP_WAIT_POLICY");  // libgomp's reading: case-insensitive
    const char* spins = std::getenv("GOMP_SPINCOUNT");
    std::string p = policy ? policy : "";
    for (char& c : p) c = char(std::tolower(static_cast<unsigned char>(c)));
    const bool asleep = p == "passive" || (!policy && spins && std::string(spins) == "0");
    return asleep ? kMacsPerSleepingThread : kMacsPerThread;
  }();
  return macs;
}

ConvPlan::ConvPlan(const ConvShape& s, int max_threads, const ConvOptions& options)
    : groups(s.groups), blocks(s.blocks()) {
  const int words = s.words(), taps = s.taps();
  padded_h = s.height + 2 * s.pad_h;
  padded_w = s.width + 2 * s.pad_w;
  pixel_words = int64_t(s.groups) * words;
  row_words = padded_w * pixel_words;
  image_words = s.packed_image_words();
  tap_offsets.resize(taps);
  for (int t = 0; t < taps; ++t)
    tap_offsets[t] = (int64_t(t / s.kernel_w) * s.dilate_h * padded_w + (t % s.kernel_w) * s.dilate_w) * pixel_words;
  block_words = int64_t(taps) * words * kLanes;
  out_w = s.out_width();
  pixels = s.out_height() * out_w;
  input_image_floats = options.input_image_stride ? options.input_image_stride : int64_t(s.in_channels) * s.height * s.width;
  output_image_floats = options.output_image_stride ? options.output_image_stride : int64_t(s.out_channels) * pixels;
  zero_padding = s.pad_mode == PadMode::kZero && (s.pad_h > 0 || s.pad_w > 0);
  if (s.pad_mode == PadMode::kOne && (s.pad_h > 0 || s.pad_w > 0)) {
    one_pixel.assign(pixel_words, 0);
    for (int g = 0; g < s.groups; ++g)
      for (int w = 0; w < words; ++w) {
        const int bits = std::min(kWordBits, s.group_in_channels() - w * kWordBits);
        one_pixel[int64_t(g) * words + w] = bits == kWordBits ? ~uint64_t(0) : (uint64_t(1) << bits) - 1;
      }
  }

  // A thread per macs_per_thread() binary MACs at most. Measured on an idle Zen 4 (2 spinning threads, batch
  // 1): 1e6 gave meliusnet22 12.1 ms, binary_densenet28 10.6 ms and resnet_e18 8.1 ms, against 13.9 / 13.3 /
  // 12.5 ms with 2e7; with threads asleep, 2e7 keeps the 7x7 dense stages on one thread (docs/native.md).
  const double macs = double(s.batch) * pixels * s.out_channels * s.group_in_channels() * taps;
  threads = int(std::max(1.0, std::min(double(max_threads), macs / macs_per_thread())));
  parallel = threads > 1;

  row_ranges = std::min(threads, padded_h);
  pack_items = int64_t(s.batch) * row_ranges;

  pixel_tiles = (pixels + kTilePixels - 1) / kTilePixels;
  const int64_t all_pixel_tiles = int64_t(s.batch) * s.groups * pixel_tiles;
  ranges = 1;
  while (all_pixel_tiles * ranges < 8 * threads && ranges < blocks) ranges *= 2;
  range_blocks = (blocks + ranges - 1) / ranges;
  range_blocks = std::min(blocks, (range_blocks + kTileBlocks - 1) / kTileBlocks * kTileBlocks);  // whole calls
  ranges = (blocks + range_blocks - 1) / range_blocks;
  tile_items = all_pixel_tiles * ranges;
}

ConvPlan::Tile ConvPlan::tile(int64_t item) const {
  const int range = int(item % ranges);
  const int64_t pixel_tile = item / ranges;  // over (image, group, tile)
  Tile t;
  t.p0 = int(pixel_tile % pixel_tiles) * kTilePixels;
  t.pixels = std::min(kTilePixels, pixels - t.p0);
  const int64_t image_group = pixel_tile / pixel_tiles;
  t.g = int(image_group % groups);
  t.n = image_group / groups;
  t.block_begin = range * range_blocks;
  t.block_end = std::min(blocks, t.block_begin + range_blocks);
  return t;
}

}  // namespace binary_models
