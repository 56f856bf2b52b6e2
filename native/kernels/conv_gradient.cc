#include "conv_gradient.h"

#include <algorithm>
#include <cstring>

#include "gemm.h"

namespace binary_models {
namespace {

constexpr int64_t kChunk = 128;         // output pixels per column tile call
constexpr int64_t kGroupPixels = 1024;  // output pixels summed per read and write of the weight gradient

int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

// The data gradient as a convolution: of d_output (channels: the filters) with pad kernel - 1 - pad.
FloatConvShape transposed(const FloatConvShape& s) {
  FloatConvShape t = s;
  t.channels = s.filters, t.filters = s.channels;
  t.height = s.out_height(), t.width = s.out_width();
  t.pad_h = s.kernel_h - 1 - s.pad_h, t.pad_w = s.kernel_w - 1 - s.pad_w;
  return t;
}

// The weight gradient's layout, for `images` images at a time (a pass): their input padded with pad_value, planes
// of padded_h x padded_w floats (plus `slack` so that the last taps of the extra columns stay inside), their
// output gradient over the padded width, pixel-major (`rows` floats a pixel: the filters rounded up to the column
// tile's), one image after the other; and the gradient's columns (channel, tap) x rows.
struct WeightPlan {
  int64_t padded_w, plane, slack, pixels, rows, columns, images, offset_floats, input_floats, gradient_floats,
      result_floats;
};

WeightPlan weight_plan(const FloatConvShape& s, const GemmTile& t, int64_t pass_floats) {
  WeightPlan p;
  p.padded_w = s.width + 2 * s.pad_w;
  p.plane = (s.height + 2 * s.pad_h) * p.padded_w;
  p.slack = s.kernel_w;
  p.pixels = s.out_height() * p.padded_w;
  p.rows = round_up(s.filters, t.column_mr);
  p.columns = s.channels * s.kernel_h * s.kernel_w;
  p.images = std::max<int64_t>(1, std::min<int64_t>(s.batch, pass_floats / (s.channels * p.plane + p.pixels * p.rows)));
  p.offset_floats = round_up(2 * round_up(p.columns, t.column_nr), 16);  // int64 per column, padded to a tile
  p.input_floats = round_up(p.images * s.channels * p.plane + p.slack, 16);
  p.gradient_floats = round_up(p.images * p.pixels * p.rows, 16);
  p.result_floats = round_up(round_up(p.columns, t.column_nr) * p.rows, 16);
  return p;
}

}  // namespace

std::string check_gradient_shape(const FloatConvShape& s) {
  if (std::string problem = s.check(); !problem.empty()) return problem;
  if (s.stride_h != 1 || s.stride_w != 1 || s.dilate_h != 1 || s.dilate_w != 1 || s.groups != 1)
    return "only stride 1, dilate 1 and num_group 1 are supported";
  if (s.pad_h > s.kernel_h - 1 || s.pad_w > s.kernel_w - 1) return "pad must be smaller than the kernel";
  return "";
}

size_t conv_data_gradient_bytes(const FloatConvShape& s) {
  return size_t(round_up(s.filters * s.channels * s.kernel_h * s.kernel_w, 16)) * sizeof(float) +
         transposed(s).workspace_bytes();
}

size_t conv_weight_gradient_bytes(const FloatConvShape& s, int64_t pass_floats) {
  const WeightPlan p = weight_plan(s, active_gemm_tile(), pass_floats);
  return size_t(p.offset_floats + p.input_floats + p.gradient_floats + p.result_floats) * sizeof(float);
}

void conv_data_gradient(const FloatConvShape& s, const float* d_output, const float* weight, float* d_input,
                        void* workspace) {
  const int64_t taps = int64_t(s.kernel_h) * s.kernel_w;
  float* flipped = static_cast<float*>(workspace);  // (channels, filters, kh, kw), taps reversed
#pragma omp parallel for schedule(static) if (s.channels * s.filters * taps > (1 << 15))
  for (int64_t c = 0; c < s.channels; ++c)
    for (int64_t f = 0; f < s.filters; ++f)
      for (int64_t k = 0; k < taps; ++k)
        flipped[(c * s.filters + f) * taps + k] = weight[(f * s.channels + c) * taps + taps - 1 - k];
  float_conv(transposed(s), d_output, flipped, nullptr, d_input,
             flipped + round_up(s.filters * s.channels * taps, 16));
}

void conv_weight_gradient(const FloatConvShape& s, const float* input, float pad_value, const float* d_output,
                          float* d_weight, void* workspace, int64_t pass_floats) {
  const GemmTile& t = active_gemm_tile();
  const WeightPlan p = weight_plan(s, t, pass_floats);
  const int64_t taps = int64_t(s.kernel_h) * s.kernel_w, out_h = s.out_height(), out_w = s.out_width();
  const int64_t blocks = (p.columns + t.column_nr - 1) / t.column_nr;
  int64_t* column_offsets = static_cast<int64_t*>(workspace);  // where each (channel, tap) column starts
  float* padded = static_cast<float*>(workspace) + p.offset_floats;
  float* gradient = padded + p.input_floats;
  float* result = gradient + p.gradient_floats;  // (columns rounded up) x rows
  std::fill(result, result + p.result_floats, 0.0f);
  std::fill(padded + p.images * s.channels * p.plane, padded + p.input_floats, 0.0f);
  for (int64_t j = 0; j < round_up(p.columns, t.column_nr); ++j) {
    const int64_t column = std::min(j, p.columns - 1);  // past the end: a repeat, dropped
    const int64_t c = column / taps, tap = column % taps;
    column_offsets[j] = c * p.plane + tap / s.kernel_w * p.padded_w + tap % s.kernel_w;
  }
  const int64_t chunks = (p.pixels + kChunk - 1) / kChunk;
#pragma omp parallel if (s.batch * s.filters * p.columns * p.pixels > (1 << 15))
  for (int64_t first_image = 0; first_image < s.batch; first_image += p.images) {
    const int64_t images = std::min(p.images, s.batch - first_image);
#pragma omp for schedule(static) nowait
    for (int64_t i = 0; i < images * s.channels; ++i) {  // image n, channel c (of the pass)
      float* plane = padded + i * p.plane;
      const float* source = input + (first_image * s.channels + i) * s.height * s.width;
      std::fill(plane, plane + s.pad_h * p.padded_w, pad_value);
      for (int64_t y = 0; y < s.height; ++y) {
        float* line = plane + (y + s.pad_h) * p.padded_w;
        std::fill(line, line + s.pad_w, pad_value);
        std::memcpy(line + s.pad_w, source + y * s.width, size_t(s.width) * sizeof(float));
        std::fill(line + s.pad_w + s.width, line + p.padded_w, pad_value);
      }
      std::fill(plane + (s.pad_h + s.height) * p.padded_w, plane + p.plane, pad_value);
    }
#pragma omp for schedule(static)
    for (int64_t i = 0; i < images * p.pixels; ++i) {  // pixel-major; 0 in the extra columns and past the filters
      const int64_t n = i / p.pixels, y = i % p.pixels / p.padded_w, x = i % p.padded_w;
      const float* image_gradient = d_output + (first_image + n) * s.filters * out_h * out_w;
      float* row = gradient + i * p.rows;
      if (x < out_w)
        for (int64_t f = 0; f < s.filters; ++f) row[f] = image_gradient[(f * out_h + y) * out_w + x];
      else
        std::fill(row, row + s.filters, 0.0f);
      std::fill(row + s.filters, row + p.rows, 0.0f);
    }
    // Chunks of output pixels (kChunk at most, within one image) in groups of kGroupPixels: per group, each
    // block of rows and columns sums all its chunks into its part of the result (one read and write of it per
    // group, from L1), while the group's rows of that block (kGroupPixels x column_mr floats) stay in L2. Each
    // thread keeps its blocks over all groups (a static schedule of the same count): no barrier between them.
    const int64_t row_blocks = p.rows / t.column_mr;
    for (int64_t first = 0; first < images * chunks;) {
      int64_t last = first + 1, group_pixels = std::min(kChunk, p.pixels - first % chunks * kChunk);
      for (; last < images * chunks; ++last) {
        const int64_t more = std::min(kChunk, p.pixels - last % chunks * kChunk);
        if (group_pixels + more > kGroupPixels) break;
        group_pixels += more;
      }
#pragma omp for schedule(static) nowait
      for (int64_t i = 0; i < row_blocks * blocks; ++i) {
        const int64_t m = i / blocks * t.column_mr, b = i % blocks;
        for (int64_t chunk = first; chunk < last; ++chunk) {
          const int64_t n = chunk / chunks, q0 = chunk % chunks * kChunk, K = std::min(kChunk, p.pixels - q0);
          const float* image = padded + n * s.channels * p.plane + q0;
          const float* cols[16];
          for (int j = 0; j < t.column_nr; ++j) cols[j] = image + column_offsets[b * t.column_nr + j];
          t.column_tile(K, gradient + (n * p.pixels + q0) * p.rows + m, p.rows, cols,
                        result + b * t.column_nr * p.rows + m, p.rows);
        }
      }
      first = last;
    }
#pragma omp barrier
  }
  // d_weight = the result transposed, in 32 x 32 blocks (a plain loop misses the cache on every element when the
  // result is larger than it: 512 filters x 4608 columns).
  constexpr int64_t kBlock = 32;
  const int64_t filter_blocks = (s.filters + kBlock - 1) / kBlock, column_blocks = (p.columns + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (s.filters * p.columns > (1 << 15))
  for (int64_t i = 0; i < filter_blocks * column_blocks; ++i) {
    const int64_t f0 = i / column_blocks * kBlock, c0 = i % column_blocks * kBlock;
    const int64_t f1 = std::min(f0 + kBlock, int64_t(s.filters)), c1 = std::min(c0 + kBlock, p.columns);
    for (int64_t f = f0; f < f1; ++f)
      for (int64_t column = c0; column < c1; ++column) d_weight[f * p.columns + column] = result[column * p.rows + f];
  }
}

}  // namespace binary_models
