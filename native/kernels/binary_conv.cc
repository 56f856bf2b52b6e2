// The binary convolution driver: packs the activations once per call into a padded, channel-packed buffer
// ([batch][padded rows][padded columns][groups][words]; padding = 0 bits = -1), then, per tile of 8 output
// pixels, gathers their receptive fields into a small buffer (an im2col of one tile, in L1) and runs the
// micro-kernel on it against every weight block (4 output channels), writing the float outputs. OpenMP
// splits packing over rows and the tiles over threads.
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
  const int64_t pixel_words = int64_t(groups) * words, row_words = int64_t(padded_w) * pixel_words;
  const int64_t image_words = padded_h * row_words, block_words = int64_t(taps) * words * kLanes;
  const int64_t image_floats = int64_t(s.in_channels) * height * width;

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

  // Work items: a tile of 8 output pixels against a range of weight blocks (all of them, unless there are
  // too few pixel tiles to keep every thread busy). Packing: one range of rows per thread and image.
  const bool parallel = double(s.batch) * pixels * s.out_channels * group_in * taps > 1e6;
  const int threads = parallel ? max_threads() : 1;
  const int pixel_tiles = (pixels + kTilePixels - 1) / kTilePixels;
  const int64_t all_pixel_tiles = int64_t(s.batch) * groups * pixel_tiles;
  int ranges = 1;
  while (all_pixel_tiles * ranges < 8 * threads && ranges < blocks) ranges *= 2;
  const int range_blocks = (blocks + ranges - 1) / ranges;
  ranges = (blocks + range_blocks - 1) / range_blocks;
  const int row_ranges = std::min(threads, padded_h);

#pragma omp parallel if (parallel)
  {
#pragma omp for schedule(static)
    for (int64_t item = 0; item < int64_t(s.batch) * row_ranges; ++item) {
      const int64_t n = item / row_ranges;
      const int range = int(item % row_ranges);
      const int begin = int(int64_t(padded_h) * range / row_ranges);
      const int end = int(int64_t(padded_h) * (range + 1) / row_ranges);
      uint64_t* image = packed + n * image_words;
      std::memset(image + begin * row_words, 0, (end - begin) * row_words * sizeof(uint64_t));  // padding: -1
      const int y0 = std::max(begin - s.pad_h, 0), y1 = std::min(end - s.pad_h, height);
      if (y0 < y1)
        kernels.pack_rows(input + n * image_floats + int64_t(y0) * width, int64_t(height) * width, s.in_channels,
                          groups, words, y1 - y0, width, image + (y0 + s.pad_h) * row_words + s.pad_w * pixel_words,
                          row_words);
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

    std::vector<uint64_t> gathered(int64_t(taps) * words * kTilePixels);
    TileArgs tile;
    tile.x = gathered.data();
    tile.reduction = taps * words;
#pragma omp for schedule(static)  // contiguous tiles: threads share no output cache lines but at the seams
    for (int64_t item = 0; item < all_pixel_tiles * ranges; ++item) {
      const int range = int(item % ranges);
      const int p0 = int(item / ranges % pixel_tiles) * kTilePixels;
      const int g = int(item / ranges / pixel_tiles % groups);
      const int64_t n = item / ranges / pixel_tiles / groups;
      const int tile_pixels = std::min(kTilePixels, pixels - p0);

      // Gather the tile's receptive fields: word i of tap t of pixel j goes to word (t * words + i) * 8 + j.
      // A partial tile repeats its last pixel.
      Border borders[kTilePixels];
      for (int j = 0, oy = p0 / out_w, ox = p0 % out_w; j < kTilePixels; ++j) {
        const uint64_t* origin = packed + n * image_words + int64_t(oy) * s.stride_h * row_words +
                                 int64_t(ox) * s.stride_w * pixel_words + int64_t(g) * words;
        for (int t = 0; t < taps; ++t)
          for (int i = 0; i < words; ++i) gathered[(t * words + i) * kTilePixels + j] = origin[tap_offsets[t] + i];
        if (j < tile_pixels) borders[j] = zero_padding ? border_of(s, oy, ox) : Border{taps, 0};
        if (j + 1 < tile_pixels && ++ox == out_w) {
          ox = 0;
          ++oy;
        }
      }

      const int block_end = std::min(blocks, (range + 1) * range_blocks);
      for (int block = range * range_blocks; block < block_end; ++block) {
        tile.weights = packed_weights + (int64_t(g) * blocks + block) * block_words;
        alignas(32) int32_t counts[kLanes * kTilePixels];
        kernels.xor_popcount(tile, counts);

        for (int l = 0; l < kLanes && block * kLanes + l < group_out; ++l) {
          const int local = block * kLanes + l, o = g * group_out + local;
          const float factor = scale ? scale[o] : 1.0f;
          const int32_t* count = counts + l * kTilePixels;
          const int32_t full = group_in * taps;
          float* out = output + (n * s.out_channels + o) * pixels + p0;
          if (!zero_padding && tile_pixels == kTilePixels) {  // the common case, in fixed-size vectors
            for (int j = 0; j < kTilePixels; ++j) out[j] = float(full - 2 * count[j]) * factor;
          } else if (!zero_padding) {
            for (int j = 0; j < tile_pixels; ++j) out[j] = float(full - 2 * count[j]) * factor;
          } else {
            const int32_t* popcounts = weight_popcounts.data() + (int64_t(g) * blocks * kLanes + local) * taps;
            for (int j = 0; j < tile_pixels; ++j) {
              int32_t inside = count[j];
              for (uint64_t outside = borders[j].outside; outside; outside &= outside - 1)
                inside -= popcounts[__builtin_ctzll(outside)];
              out[j] = float(group_in * borders[j].valid_taps - 2 * inside) * factor;
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
