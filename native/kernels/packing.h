// Activation packing, the first step of binary_conv2d (weight packing, done once offline, is
// pack_weights in conv_shape.h and lives in packing.cc too).
#pragma once

#include <cstdint>

#include "conv_plan.h"

namespace binary_models {

// Binarizes and packs `input` (NCHW float, images plan.input_image_floats apart; the bit of channel c as
// ConvOptions says) into `packed` (the plan's padded layout, padding 0 bits = -1, or +1 under pad_mode one).
// Call it from every thread of an OpenMP team (or outside one): the plan's row ranges are shared out.
void pack_activations(const ConvShape& shape, const ConvPlan& plan, const KernelSet& kernels, const float* input,
                      const ConvOptions& options, uint64_t* packed);

}  // namespace binary_models
