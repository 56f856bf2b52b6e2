#include "batch_norm.h"

#include <cmath>

namespace binary_models {
namespace {

constexpr int64_t kMinParallelFloats = 1 << 15;

float plane_sum(int64_t n, const float* x) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += x[i];
  return sum;
}

float plane_squares(int64_t n, const float* x, float mean) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += (x[i] - mean) * (x[i] - mean);
  return sum;
}

// The sums of d_out and of d_out * (x - mean) over a plane.
void plane_gradient_sums(int64_t n, const float* d_out, const float* x, float mean, double* sum, double* dot) {
  float s = 0.0f, d = 0.0f;
#pragma omp simd reduction(+ : s, d)
  for (int64_t i = 0; i < n; ++i) {
    s += d_out[i];
    d += d_out[i] * (x[i] - mean);
  }
  *sum += s, *dot += d;
}

void apply_plane(int64_t n, const float* x, float mean, float scale, float shift, float* out) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = (x[i] - mean) * scale + shift;
}

bool parallel(const NormShape& s) { return s.batch * s.channels * s.pixels > kMinParallelFloats; }

}  // namespace

void batch_norm_apply(const NormShape& s, const float* x, const float* gamma, const float* beta, const float* mean,
                      const float* invstd, float* out) {
#pragma omp parallel for schedule(static) if (parallel(s))
  for (int64_t c = 0; c < s.channels; ++c)
    for (int64_t n = 0; n < s.batch; ++n) {
      const int64_t at = (n * s.channels + c) * s.pixels;
      apply_plane(s.pixels, x + at, mean[c], invstd[c] * gamma[c], beta[c], out + at);
    }
}

void batch_norm_train(const NormShape& s, const float* x, const float* gamma, const float* beta, float eps, float* out,
                      float* mean, float* var, float* invstd) {
  const double count = double(s.batch) * double(s.pixels);
#pragma omp parallel for schedule(static) if (parallel(s))
  for (int64_t c = 0; c < s.channels; ++c) {
    double sum = 0.0;
    for (int64_t n = 0; n < s.batch; ++n) sum += plane_sum(s.pixels, x + (n * s.channels + c) * s.pixels);
    const float m = float(sum / count);
    double squares = 0.0;
    for (int64_t n = 0; n < s.batch; ++n) squares += plane_squares(s.pixels, x + (n * s.channels + c) * s.pixels, m);
    mean[c] = m;
    var[c] = float(squares / count);
    invstd[c] = float(1.0 / std::sqrt(double(var[c]) + double(eps)));
    for (int64_t n = 0; n < s.batch; ++n) {
      const int64_t at = (n * s.channels + c) * s.pixels;
      apply_plane(s.pixels, x + at, m, invstd[c] * gamma[c], beta[c], out + at);
    }
  }
}

void batch_norm_backward(const NormShape& s, const float* d_out, const float* x, const float* gamma, const float* mean,
                         const float* invstd, bool batch_statistics, float* d_x, float* d_gamma, float* d_beta) {
  const double count = double(s.batch) * double(s.pixels);
#pragma omp parallel for schedule(static) if (parallel(s))
  for (int64_t c = 0; c < s.channels; ++c) {
    double sum = 0.0, dot = 0.0;  // of d_out, of d_out * (x - mean)
    for (int64_t n = 0; n < s.batch; ++n) {
      const int64_t at = (n * s.channels + c) * s.pixels;
      plane_gradient_sums(s.pixels, d_out + at, x + at, mean[c], &sum, &dot);
    }
    if (d_gamma) d_gamma[c] = float(dot * invstd[c]);
    if (d_beta) d_beta[c] = float(sum);
    const float scale = gamma[c] * invstd[c];
    // batch statistics: d_x = scale * (d_out - sum / count - (x - mean) * invstd^2 * dot / count)
    const float offset = batch_statistics ? float(sum / count) : 0.0f;
    const float slope = batch_statistics ? float(dot / count * double(invstd[c]) * double(invstd[c])) : 0.0f;
    const float m = mean[c];
    for (int64_t n = 0; n < s.batch; ++n) {
      const int64_t at = (n * s.channels + c) * s.pixels;
      const float* g = d_out + at;
      const float* v = x + at;
      float* dx = d_x + at;
#pragma omp simd
      for (int64_t i = 0; i < s.pixels; ++i) dx[i] = scale * (g[i] - offset - (v[i] - m) * slope);
    }
  }
}

}  // namespace binary_models
