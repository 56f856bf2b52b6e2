// Binary (xnor/popcount) 2-D convolution and dense layer on bit-packed operands: the driver's entry point.
// Shapes and packed layouts are in conv_shape.h, the choice of instruction set in isa.h; this header
// includes both, so a caller needs only this one.
#pragma once

#include "conv_shape.h"
#include "isa.h"

namespace binary_models {

// output[n, o, y, x] = sum over the receptive field of sign(input) * sign(weight), times scale[o] when
// `scale` is not null: exactly what the float-emulated QConv2D computes. `workspace` holds
// workspace_bytes(shape) bytes, or is null (then it is allocated). Parallel with OpenMP over pixels.
// `isa` kAuto runs active_isa(); an ISA this machine cannot run runs active_isa() too.
void binary_conv2d(const ConvShape& shape, const float* input, const uint64_t* packed_weights,
                   const float* scale, float* output, void* workspace = nullptr, Isa isa = Isa::kAuto,
                   const ConvOptions& options = ConvOptions());

}  // namespace binary_models
