// The output transform: a tile's xor-popcount counts -> float outputs. Over a receptive field of K bits,
// dot = K - 2 * popcount(x xor w); the output is dot * scale[o] (scale may be null: 1), exactly what the
// float-emulated layer computes. Under zero padding the dot comes from the PaddingCorrection.
#pragma once

#include <cstdint>

#include "padding_correction.h"

namespace binary_models {

// Writes the outputs of weight blocks first_block .. first_block + blocks - 1 (kLanes output channels each,
// of the tile's group) at the tile's pixels; counts[c * kTilePixels + j] is the micro-kernel's count of
// channel c of these blocks at pixel j. `borders` (the tile's) is read only under zero padding.
void write_outputs(const ConvShape& shape, const ConvPlan& plan, const ConvPlan::Tile& tile, int first_block,
                   int blocks, const int32_t* counts, const float* scale, const PaddingCorrection& correction,
                   const Border* borders, float* output);

}  // namespace binary_models
