// The output transform: a tile's xor-popcount counts -> float outputs. Over a receptive field of K bits,
// dot = K - 2 * popcount(x xor w); the output is dot * scale[o] (scale may be null: 1), exactly what the
// float-emulated layer computes (one rounding, in the multiplication). Under zero padding the dot comes from
// the PaddingCorrection.
#pragma once

#include <cstdint>

#include "microkernels.h"
#include "padding_correction.h"

namespace binary_models {

// A full tile without padding correction: each micro-kernel inlines this (compiled for its ISA) when the
// driver sets TileArgs::out, so the counts go from L1 straight to the outputs, one vector of kTilePixels
// per channel (written as such: left to itself, GCC vectorizes across the channels, with gathers).
__attribute__((always_inline)) inline void transform_full_tile(const TileArgs& tile, const int32_t* counts) {
  typedef int32_t Counts __attribute__((vector_size(4 * kTilePixels)));
  typedef float Outputs __attribute__((vector_size(4 * kTilePixels)));
  const TileArgs t = tile;  // a copy: the stores below cannot change it
  for (int c = 0; c < t.channels; ++c) {
    Counts count;
    __builtin_memcpy(&count, counts + c * kTilePixels, sizeof count);
    const Outputs out = __builtin_convertvector(t.full - 2 * count, Outputs) * (t.scale ? t.scale[c] : 1.0f);
    __builtin_memcpy(t.out + c * t.out_stride, &out, sizeof out);
  }
}

// Every other tile (the last, partial one of an image, or any under zero padding): writes the outputs of
// weight blocks first_block .. first_block + blocks - 1 (kLanes output channels each, of the tile's group)
// at the tile's pixels; counts[c * kTilePixels + j] is the micro-kernel's count of channel c of these
// blocks at pixel j. `borders` (the tile's) is read only under zero padding.
void write_outputs(const ConvShape& shape, const ConvPlan& plan, const ConvPlan::Tile& tile, int first_block,
                   int blocks, const int32_t* counts, const float* scale, const PaddingCorrection& correction,
                   const Border* borders, float* output);

}  // namespace binary_models
