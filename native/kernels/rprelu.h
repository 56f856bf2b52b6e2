// ReActNet's RPReLU (Liu et al. 2020, Eq. 3) on an NCHW map, per channel c:
//   output = prelu(input - shift_in[c], slope[c]) + shift_out[c],  prelu(v, s) = v > 0 ? v : v * s,
// each operation rounded to float32 as MXNet's broadcast_sub, LeakyReLU(act_type='prelu') and broadcast_add
// round it (compiled without floating-point contraction), so a converted model equals the trained one.
#pragma once

#include <cstdint>

namespace binary_models {

void rprelu(int64_t batch, int64_t channels, int64_t plane, const float* input, const float* shift_in,
            const float* slope, const float* shift_out, float* output);

}  // namespace binary_models
