// The binary convolution driver: packs the activations once per call into a padded, channel-packed buffer
// ([batch][padded rows][padded columns][groups][words]; padding = 0 bits = -1), then runs the micro-kernel
// over tiles of 8 output pixels x the kernel set's weight blocks, with no im2col copy: each tap is an
// offset from a pixel's receptive-field origin. OpenMP splits both phases over rows / tiles.
#include "binary_conv.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "microkernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace binary_models {
namespace {

int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

const KernelSet& kernels_for(Isa isa) {
  if (isa == Isa::kAuto) isa = best_isa();
  return isa == Isa::kAvx2 && best_isa() == Isa::kAvx2 ? avx2_kernels() : scalar_kernels();
}

std::string range_problem(const char* name, int value, int low, int high) {
  if (value >= low && value <= high) return "";
  return std::string(name) + " " + std::to_string(value) + " is not supported (allowed: " + std::to_string(low) +
         ".." + std::to_string(high) + ")";
}

std::string first_problem(std::initializer_list<std::string> problems) {
  for (const std::string& problem : problems)
    if (!problem.empty()) return problem;
  return "";
}

// Receptive-field facts of one output pixel under zero padding: how many taps fall inside the image and
// which do not (bit t set).
struct Border {
  int valid_taps;
  uint64_t outside;
};

Border border_of(const ConvShape& s, int oy, int ox) {
  Border border{0, 0};
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
  return border;
}

}  // namespace

int ConvShape::out_height() const { return (height + 2 * pad_h - dilate_h * (kernel_h - 1) - 1) / stride_h + 1; }
int ConvShape::out_width() const { return (width + 2 * pad_w - dilate_w * (kernel_w - 1) - 1) / stride_w + 1; }

std::string ConvShape::check_weights() const {
  if (groups < 1) return "num_group " + std::to_string(groups) + " must be >= 1";
  if (in_channels < 1 || in_channels % groups)
    return "in_channels " + std::to_string(in_channels) + " must be a positive multiple of num_group " +
           std::to_string(groups);
  if (out_channels < 1 || out_channels % groups)
    return "num_filter " + std::to_string(out_channels) + " must be a positive multiple of num_group " +
           std::to_string(groups);
  return first_problem({range_problem("kernel height", kernel_h, 1, kMaxKernel),
                        range_problem("kernel width", kernel_w, 1, kMaxKernel)});
}

std::string ConvShape::check_geometry() const {
  return first_problem({check_weights(), range_problem("stride", stride_h, 1, kMaxStride),
                        range_problem("stride", stride_w, 1, kMaxStride),
                        range_problem("dilate", dilate_h, 1, kMaxDilation),
                        range_problem("dilate", dilate_w, 1, kMaxDilation), range_problem("pad", pad_h, 0, 1 << 16),
                        range_problem("pad", pad_w, 0, 1 << 16)});
}

std::string ConvShape::check() const {
  std::string problem =
      first_problem({check_geometry(), range_problem("batch", batch, 0, 1 << 30),
                     range_problem("height", height, 1, 1 << 16), range_problem("width", width, 1, 1 << 16)});
  if (!problem.empty()) return problem;
  if (height + 2 * pad_h < dilate_h * (kernel_h - 1) + 1 || width + 2 * pad_w < dilate_w * (kernel_w - 1) + 1)
    return "the (dilated) kernel is larger than the padded input";
  return "";
}

ConvShape dense_shape(int batch, int in_units, int units) {
  ConvShape s;
  s.batch = batch;
  s.in_channels = in_units;
  s.height = s.width = 1;
  s.out_channels = units;
  return s;
}

void pack_weights(const ConvShape& s, const float* weights, uint64_t* packed) {
  const int group_in = s.group_in_channels(), group_out = s.group_out_channels();
  const int taps = s.taps(), words = s.words(), blocks = s.blocks();
  std::fill(packed, packed + s.packed_weight_words(), uint64_t(0));
  for (int o = 0; o < s.out_channels; ++o) {
    const int g = o / group_out, local = o % group_out;
    uint64_t* block = packed + (int64_t(g) * blocks + local / kLanes) * taps * words * kLanes + local % kLanes;
    for (int c = 0; c < group_in; ++c)
      for (int t = 0; t < taps; ++t)
        if (weights[(int64_t(o) * group_in + c) * taps + t] >= 0.0f)
          block[(int64_t(t) * words + c / kWordBits) * kLanes] |= uint64_t(1) << (c % kWordBits);
  }
}

size_t workspace_bytes(const ConvShape& s) {
  return size_t(s.batch) * (s.height + 2 * s.pad_h) * (s.width + 2 * s.pad_w) * s.groups * s.words() *
         sizeof(uint64_t);
}

void binary_conv2d(const ConvShape& s, const float* input, const uint64_t* packed_weights, const float* scale,
                   float* output, void* workspace, Isa isa) {
  const KernelSet& kernels = kernels_for(isa);
  const int height = s.height, width = s.width, groups = s.groups, words = s.words(), taps = s.taps();
  const int padded_h = height + 2 * s.pad_h, padded_w = width + 2 * s.pad_w;
  const int out_w = s.out_width(), pixels = s.out_height() * out_w;
  const int blocks = s.blocks(), group_in = s.group_in_channels(), group_out = s.group_out_channels();
  const int64_t pixel_words = int64_t(groups) * words, image_words = int64_t(padded_h) * padded_w * pixel_words;
  const int64_t block_words = int64_t(taps) * words * kLanes;

  std::vector<uint64_t> owned;
  if (!workspace) owned.resize(workspace_bytes(s) / sizeof(uint64_t));
  uint64_t* packed = workspace ? static_cast<uint64_t*>(workspace) : owned.data();

  std::vector<int64_t> tap_offsets(taps);
  for (int t = 0; t < taps; ++t)
    tap_offsets[t] = (int64_t(t / s.kernel_w) * s.dilate_h * padded_w + (t % s.kernel_w) * s.dilate_w) * pixel_words;

  // Zero padding: a tap outside the image met 0 bits (-1) in the buffer and counted popcount(w) there; the
  // epilogue subtracts that count and uses the number of taps inside the image.
  const bool zero_padding = s.pad_mode == PadMode::kZero && (s.pad_h > 0 || s.pad_w > 0);
  const int weight_rows = groups * blocks * kLanes;
  std::vector<int32_t> weight_popcounts(zero_padding ? int64_t(weight_rows) * taps : 0);

  // Work items: a tile of 8 output pixels against a range of weight chunks (tile_blocks blocks each): all
  // chunks, unless there are too few pixel tiles to keep every thread busy.
  const int tile_blocks = kernels.tile_blocks;
  const int chunks = (blocks + tile_blocks - 1) / tile_blocks;
  const int pixel_tiles = (pixels + kMaxTilePixels - 1) / kMaxTilePixels;
  const int64_t all_pixel_tiles = int64_t(s.batch) * groups * pixel_tiles;
  const bool parallel = double(s.batch) * pixels * s.out_channels * group_in * taps > 1e6;
  int ranges = 1;
  while (all_pixel_tiles * ranges < 8 * max_threads() && ranges < chunks) ranges *= 2;
  const int range_chunks = (chunks + ranges - 1) / ranges;
  ranges = (chunks + range_chunks - 1) / range_chunks;
  const int64_t items = all_pixel_tiles * ranges;
  const int64_t rows = int64_t(s.batch) * padded_h;
  const int64_t image_floats = int64_t(s.in_channels) * height * width;

#pragma omp parallel if (parallel)
  {
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t n = r / padded_h;
      const int y = int(r % padded_h) - s.pad_h;
      uint64_t* row = packed + n * image_words + (y + s.pad_h) * padded_w * pixel_words;
      if (y < 0 || y >= height) {
        std::memset(row, 0, padded_w * pixel_words * sizeof(uint64_t));
        continue;
      }
      std::memset(row, 0, s.pad_w * pixel_words * sizeof(uint64_t));
      std::memset(row + (s.pad_w + width) * pixel_words, 0, s.pad_w * pixel_words * sizeof(uint64_t));
      kernels.pack_row(input + n * image_floats + int64_t(y) * width, int64_t(height) * width, s.in_channels, groups,
                       words, width, row + s.pad_w * pixel_words);
    }

    if (zero_padding) {
#pragma omp for schedule(static)
      for (int row = 0; row < weight_rows; ++row)
        for (int t = 0; t < taps; ++t) {
          const uint64_t* w = packed_weights + (row / kLanes) * block_words + int64_t(t) * words * kLanes + row % kLanes;
          int32_t count = 0;
          for (int i = 0; i < words; ++i) count += __builtin_popcountll(w[i * kLanes]);
          weight_popcounts[int64_t(row) * taps + t] = count;
        }
    }

#pragma omp for schedule(static)
    for (int64_t item = 0; item < items; ++item) {
      int64_t rest = item;
      const int range = int(rest % ranges);
      rest /= ranges;
      const int p0 = int(rest % pixel_tiles) * kMaxTilePixels;
      rest /= pixel_tiles;
      const int g = int(rest % groups);
      const int64_t n = rest / groups;
      const int tile_pixels = std::min(kMaxTilePixels, pixels - p0);

      TileArgs tile;
      Border borders[kMaxTilePixels];
      for (int j = 0, oy = p0 / out_w, ox = p0 % out_w; j < kMaxTilePixels; ++j) {
        // a partial tile repeats its last pixel
        tile.pixels[j] = packed + n * image_words + (int64_t(oy) * s.stride_h * padded_w + int64_t(ox) * s.stride_w) *
                                                        pixel_words + int64_t(g) * words;
        if (j < tile_pixels) borders[j] = zero_padding ? border_of(s, oy, ox) : Border{taps, 0};
        if (j + 1 < tile_pixels && ++ox == out_w) {
          ox = 0;
          ++oy;
        }
      }
      tile.tap_offsets = tap_offsets.data();
      tile.taps = taps;
      tile.words = words;
      tile.block_stride = block_words;

      const int chunk_end = std::min(chunks, (range + 1) * range_chunks);
      for (int chunk = range * range_chunks; chunk < chunk_end; ++chunk) {
        const int b0 = chunk * tile_blocks;
        tile.weights = packed_weights + (int64_t(g) * blocks + b0) * block_words;
        tile.blocks = std::min(tile_blocks, blocks - b0);
        alignas(32) int32_t counts[kMaxTileChannels * kMaxTilePixels];
        kernels.xor_popcount(tile, counts);

        for (int b = 0; b < tile.blocks; ++b) {
          for (int l = 0; l < kLanes; ++l) {
            const int local = (b0 + b) * kLanes + l;
            if (local >= group_out) break;
            const int o = g * group_out + local;
            const float factor = scale ? scale[o] : 1.0f;
            const int32_t* row = counts + (b * kLanes + l) * kMaxTilePixels;
            float* out = output + (n * s.out_channels + o) * pixels + p0;
            if (!zero_padding) {
              const int32_t full = group_in * taps;
              for (int j = 0; j < tile_pixels; ++j) out[j] = float(full - 2 * row[j]) * factor;
              continue;
            }
            const int32_t* popcounts = weight_popcounts.data() + (int64_t(g) * blocks * kLanes + local) * taps;
            for (int j = 0; j < tile_pixels; ++j) {
              int32_t count = row[j];
              for (uint64_t outside = borders[j].outside; outside; outside &= outside - 1)
                count -= popcounts[__builtin_ctzll(outside)];
              out[j] = float(group_in * borders[j].valid_taps - 2 * count) * factor;
            }
          }
        }
      }
    }
  }
}

Isa best_isa() {
  static const Isa isa = __builtin_cpu_supports("avx2") ? Isa::kAvx2 : Isa::kScalar;
  return isa;
}

const char* isa_name(Isa isa) { return isa == Isa::kAuto ? "auto" : kernels_for(isa).name; }

}  // namespace binary_models
