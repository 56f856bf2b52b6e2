#include "norm_pool.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "conv_shape.h"

namespace binary_models {
namespace {

// MXNet's (oneDNN's) max pooling: the maximum starts at the lowest float and a value replaces it only when
// greater, so NaN never wins, a window of NaN and -inf gives -FLT_MAX, and of equal values (0.0 and -0.0)
// the first in raster order stays.
constexpr float kPoolStart = -std::numeric_limits<float>::max();
inline float pool_max(float best, float value) { return value > best ? value : best; }

// MXNet's (oneDNN's) ReLU: 0 for NaN and for -0.0 (std::max(NaN, 0.0f) would return NaN).
inline float relu(float value) { return value > 0.0f ? value : 0.0f; }

}  // namespace

int NormPoolShape::out_channel(int c) const {
  const int per_group = channels / shuffle_groups;
  return (c % per_group) * shuffle_groups + c / per_group;
}

std::string NormPoolShape::check() const {
  auto range = [](const char* name, int value, int low, int high) -> std::string {
    if (value >= low && value <= high) return "";
    return std::string(name) + " " + std::to_string(value) + " is not supported (allowed: " + std::to_string(low) +
           ".." + std::to_string(high) + ")";
  };
  for (const std::string& problem :
       {range("batch", batch, 0, 1 << 30), range("channels", channels, 1, kMaxChannels),
        range("height", height, 1, kMaxSize), range("width", width, 1, kMaxSize),
        range("kernel height", kernel_h, 1, 16), range("kernel width", kernel_w, 1, 16),
        range("stride", stride_h, 1, 16), range("stride", stride_w, 1, 16), range("pad", pad_h, 0, kernel_h / 2),
        range("pad", pad_w, 0, kernel_w / 2), range("shuffle_groups", shuffle_groups, 1, channels)})
    if (!problem.empty()) return problem;
  if (channels % shuffle_groups)
    return "channels " + std::to_string(channels) + " must be a multiple of shuffle_groups " +
           std::to_string(shuffle_groups);
  if (height + 2 * pad_h < kernel_h || width + 2 * pad_w < kernel_w) return "the pooling window is larger than the padded input";
  return "";
}

void norm_pool(const NormPoolShape& s, const float* input, const float* mean, const float* scale,
               const float* shift, float* output) {
  const int oh = s.out_height(), ow = s.out_width();
  const int64_t plane = int64_t(s.height) * s.width, out_plane = int64_t(oh) * ow;
  const bool pooled = s.kernel_h > 1 || s.kernel_w > 1 || s.stride_h > 1 || s.stride_w > 1;
  const int64_t items = int64_t(s.batch) * s.channels;
#pragma omp parallel if (items * plane > (1 << 15))
  {
    std::vector<float> normalized(pooled ? plane : 0), rows(pooled ? s.width : 0);
#pragma omp for schedule(static)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t n = item / s.channels;
      const int c = int(item % s.channels);
      const float m = mean[c], a = scale[c], b = shift[c];
      const float* x = input + item * plane;
      float* out = output + (n * s.channels + s.out_channel(c)) * out_plane;
      float* y = pooled ? normalized.data() : out;
      if (s.relu)
        for (int64_t i = 0; i < plane; ++i) y[i] = relu((x[i] - m) * a + b);
      else
        for (int64_t i = 0; i < plane; ++i) y[i] = (x[i] - m) * a + b;
      if (!pooled) continue;
      // Per output row: the maximum over the window's rows, column by column (a vector loop), then over
      // each window's columns. Without ReLU a maximum of zeros is taken again in raster order (rare): its
      // sign is the first zero's there (after ReLU every zero is +0).
      float* row_max = rows.data();
      for (int oy = 0; oy < oh; ++oy) {
        const int y0 = std::max(oy * s.stride_h - s.pad_h, 0), y1 = std::min(oy * s.stride_h - s.pad_h + s.kernel_h, s.height);
        std::fill(row_max, row_max + s.width, kPoolStart);
        for (int yy = y0; yy < y1; ++yy) {
          const float* line = y + int64_t(yy) * s.width;
          for (int i = 0; i < s.width; ++i) row_max[i] = pool_max(row_max[i], line[i]);
        }
        for (int ox = 0; ox < ow; ++ox) {
          const int x0 = std::max(ox * s.stride_w - s.pad_w, 0), x1 = std::min(ox * s.stride_w - s.pad_w + s.kernel_w, s.width);
          float best = kPoolStart;
          for (int xx = x0; xx < x1; ++xx) best = pool_max(best, row_max[xx]);
          if (best == 0.0f && !s.relu) {
            best = kPoolStart;
            for (int yy = y0; yy < y1; ++yy)
              for (int xx = x0; xx < x1; ++xx) best = pool_max(best, y[int64_t(yy) * s.width + xx]);
          }
          out[int64_t(oy) * ow + ox] = best;
        }
      }
    }
  }
}

}  // namespace binary_models
