// RPReLU in one pass over the map (kernels/rprelu.h); no FMA contraction (Makefile: -ffp-contract=off).
#include "rprelu.h"

namespace binary_models {

void rprelu(int64_t batch, int64_t channels, int64_t plane, const float* input, const float* shift_in,
            const float* slope, const float* shift_out, float* output) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t c = 0; c < channels; ++c) {
      const float a = shift_in[c], s = slope[c], b = shift_out[c];
      const int64_t offset = (n * channels + c) * plane;
      const float* x = input + offset;
      float* y = output + offset;
#pragma omp simd
      for (int64_t i = 0; i < plane; ++i) {
        const float v = x[i] - a;
        y[i] = (v > 0.0f ? v : v * s) + b;
      }
    }
  }
}

}  // namespace binary_models
