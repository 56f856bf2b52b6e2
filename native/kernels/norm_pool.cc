#include "norm_pool.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "conv_shape.h"
#include "isa.h"

namespace binary_models {
namespace {

// MXNet's (oneDNN's) max pooling: the maximum starts at the lowest float and a value replaces it only when
// greater, so NaN never wins, a window of NaN and -inf gives -FLT_MAX, and of equal values (0.0 and -0.0)
// the first in raster order stays.
constexpr float kPoolStart = -std::numeric_limits<float>::max();
inline float pool_max(float best, float value) { return value > best ? value : best; }

// MXNet's (oneDNN's) ReLU: 0 for NaN and for -0.0 (std::max(NaN, 0.0f) would return NaN).
inline float relu(float value) { return value > 0.0f ? value : 0.0f; }

typedef float Floats __attribute__((vector_size(32)));
typedef int Indices __attribute__((vector_size(32)));

// BatchNorm + ReLU of eight floats (the scalar relu's rule: 0 for NaN and -0.0).
__attribute__((always_inline)) inline Floats norm_relu8(const float* x, Floats m, Floats a, Floats b) {
  Floats v;
  __builtin_memcpy(&v, x, sizeof v);
  v = (v - m) * a + b;
  return v > Floats{} ? v : Floats{};
}

// Max pool 2/2 (no padding) of BatchNorm + ReLU, reading the input once: after ReLU no value is NaN or
// -0.0, so the window's order does not matter. Rows pair up, and each pair's maximum splits into even and
// odd columns (two shuffles per eight outputs).
__attribute__((always_inline)) inline void pool_2x2_relu(const float* x, int width, int oh, int ow, float m, float a,
                                                         float b, float* out) {
  const Floats mv = Floats{} + m, av = Floats{} + a, bv = Floats{} + b;
  for (int oy = 0; oy < oh; ++oy) {
    const float* top = x + int64_t(2 * oy) * width;
    const float* bottom = top + width;
    float* line = out + int64_t(oy) * ow;
    int ox = 0;
    for (; ox + 8 <= ow; ox += 8) {
      const Floats u0 = norm_relu8(top + 2 * ox, mv, av, bv), u1 = norm_relu8(top + 2 * ox + 8, mv, av, bv);
      const Floats v0 = norm_relu8(bottom + 2 * ox, mv, av, bv), v1 = norm_relu8(bottom + 2 * ox + 8, mv, av, bv);
      const Floats w0 = u0 > v0 ? u0 : v0, w1 = u1 > v1 ? u1 : v1;
      const Floats even = __builtin_shuffle(w0, w1, Indices{0, 2, 4, 6, 8, 10, 12, 14});
      const Floats odd = __builtin_shuffle(w0, w1, Indices{1, 3, 5, 7, 9, 11, 13, 15});
      const Floats best = odd > even ? odd : even;
      __builtin_memcpy(line + ox, &best, sizeof best);
    }
    for (; ox < ow; ++ox) {
      float best = kPoolStart;
      for (const float* r : {top, bottom})
        for (int dx = 0; dx < 2; ++dx) best = pool_max(best, relu((r[2 * ox + dx] - m) * a + b));
      line[ox] = best;
    }
  }
}

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

namespace {

// The scratch rows of one thread (see norm_pool_plane).
struct PoolRows {
  std::vector<float> normalized, padded, phases;
};

// Channel `item` (image n, channel c) of norm_pool. Every loop runs over contiguous floats, so that the
// compiler vectorizes it; compiled twice below, for AVX2 (8 floats a vector) and for any CPU. No FMA either
// way: the file is built with -ffp-contract=off, and a BatchNorm's two roundings stay two.
__attribute__((always_inline)) inline void norm_pool_plane(const NormPoolShape& s, int64_t item, const float* input,
                                                           const float* mean, const float* scale, const float* shift,
                                                           float* output, PoolRows& rows) {
  const int oh = s.out_height(), ow = s.out_width();
  const int64_t plane = int64_t(s.height) * s.width, out_plane = int64_t(oh) * ow;
  const bool pooled = s.pooled();
  // A padded row: the window of output column ox covers its columns s.stride_w * ox .. + kernel_w - 1.
  const int padded_w = s.width + 2 * s.pad_w, phase_w = (padded_w + s.stride_w - 1) / s.stride_w;
  std::vector<float>& normalized = rows.normalized;
  std::vector<float>& padded = rows.padded;
  std::vector<float>& phases = rows.phases;
  const int64_t n = item / s.channels;
  const int c = int(item % s.channels);
  const float m = mean[c], a = scale[c], b = shift[c];
  const float* x = input + item * plane;
  float* out = output + (n * s.channels + s.out_channel(c)) * out_plane;
  float* y = pooled ? normalized.data() : out;
  if (pooled && s.relu && s.kernel_h == 2 && s.kernel_w == 2 && s.stride_h == 2 && s.stride_w == 2 &&
      s.pad_h == 0 && s.pad_w == 0) {
    pool_2x2_relu(x, s.width, oh, ow, m, a, b, out);  // the transitions' case, in one pass
    return;
  }
  if (s.relu)
    for (int64_t i = 0; i < plane; ++i) y[i] = relu((x[i] - m) * a + b);
  else
    for (int64_t i = 0; i < plane; ++i) y[i] = (x[i] - m) * a + b;
  if (!pooled) return;
  // Per output row: the maximum over the window's rows, column by column, into a row padded with
  // kPoolStart (which never wins: padding is excluded); that row split into its stride_w phases
  // (phase q holds columns q, q + stride_w, ...), so that each of the window's columns is one contiguous
  // run over the output columns: out[ox] = max over dx of phase (dx % stride_w) at ox + dx / stride_w.
  // Every loop is a vector loop. Without ReLU a maximum of zeros is taken again in raster order (rare):
  // its sign is the first zero's there (after ReLU every zero is +0).
  std::fill(padded.begin(), padded.end(), kPoolStart);
  float* row_max = padded.data() + s.pad_w;
  for (int oy = 0; oy < oh; ++oy) {
    const int y0 = std::max(oy * s.stride_h - s.pad_h, 0), y1 = std::min(oy * s.stride_h - s.pad_h + s.kernel_h, s.height);
    std::fill(row_max, row_max + s.width, kPoolStart);  // (a copy of the first row would keep its NaN)
    for (int yy = y0; yy < y1; ++yy) {
      const float* line = y + int64_t(yy) * s.width;
      for (int i = 0; i < s.width; ++i) row_max[i] = pool_max(row_max[i], line[i]);
    }
    const float* row = padded.data();
    if (s.stride_w == 2) {  // the usual stride: eight columns of each phase per two vectors
      int i = 0;
      for (; 2 * i + 16 <= padded_w; i += 8) {
        Floats u, v;
        __builtin_memcpy(&u, padded.data() + 2 * i, sizeof u);
        __builtin_memcpy(&v, padded.data() + 2 * i + 8, sizeof v);
        const Floats even = __builtin_shuffle(u, v, Indices{0, 2, 4, 6, 8, 10, 12, 14});
        const Floats odd = __builtin_shuffle(u, v, Indices{1, 3, 5, 7, 9, 11, 13, 15});
        __builtin_memcpy(phases.data() + i, &even, sizeof even);
        __builtin_memcpy(phases.data() + phase_w + i, &odd, sizeof odd);
      }
      for (; i < phase_w; ++i) {
        phases[i] = padded[2 * i];
        phases[phase_w + i] = 2 * i + 1 < padded_w ? padded[2 * i + 1] : kPoolStart;
      }
      row = phases.data();
    } else if (s.stride_w > 1) {
      for (int q = 0; q < s.stride_w; ++q)
        for (int i = 0; i < phase_w; ++i) {
          const int column = i * s.stride_w + q;
          phases[int64_t(q) * phase_w + i] = column < padded_w ? padded[column] : kPoolStart;
        }
      row = phases.data();
    }
    float* line = out + int64_t(oy) * ow;
    std::fill(line, line + ow, kPoolStart);
    for (int dx = 0; dx < s.kernel_w; ++dx) {
      const float* column = row + int64_t(dx % s.stride_w) * phase_w + dx / s.stride_w;
      for (int ox = 0; ox < ow; ++ox) line[ox] = pool_max(line[ox], column[ox]);
    }
    if (s.relu) continue;
    for (int ox = 0; ox < ow; ++ox) {
      if (line[ox] != 0.0f) continue;
      const int x0 = std::max(ox * s.stride_w - s.pad_w, 0), x1 = std::min(ox * s.stride_w - s.pad_w + s.kernel_w, s.width);
      float best = kPoolStart;
      for (int yy = y0; yy < y1; ++yy)
        for (int xx = x0; xx < x1; ++xx) best = pool_max(best, y[int64_t(yy) * s.width + xx]);
      line[ox] = best;
    }
  }
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) void norm_pool_plane_avx2(const NormPoolShape& s, int64_t item, const float* input,
                                                          const float* mean, const float* scale, const float* shift,
                                                          float* output, PoolRows& rows) {
  norm_pool_plane(s, item, input, mean, scale, shift, output, rows);
}
#endif

void norm_pool_plane_portable(const NormPoolShape& s, int64_t item, const float* input, const float* mean,
                              const float* scale, const float* shift, float* output, PoolRows& rows) {
  norm_pool_plane(s, item, input, mean, scale, shift, output, rows);
}

}  // namespace

void norm_pool(const NormPoolShape& s, const float* input, const float* mean, const float* scale, const float* shift,
               float* output) {
  auto plane_function = norm_pool_plane_portable;
#if defined(__x86_64__)
  if (active_isa() == Isa::kAvx2 || active_isa() == Isa::kAvx512) plane_function = norm_pool_plane_avx2;
#endif
  const int64_t plane = int64_t(s.height) * s.width, items = int64_t(s.batch) * s.channels;
#pragma omp parallel if (items * plane > (1 << 15))
  {
    PoolRows rows;
    if (s.pooled()) {
      const int padded_w = s.width + 2 * s.pad_w;
      rows.normalized.resize(plane);
      rows.padded.resize(padded_w);
      rows.phases.resize(int64_t(s.stride_w) * ((padded_w + s.stride_w - 1) / s.stride_w));
    }
#pragma omp for schedule(static)
    for (int64_t item = 0; item < items; ++item)
      plane_function(s, item, input, mean, scale, shift, output, rows);
  }
}

}  // namespace binary_models
