// A whole dense stage of BinaryDenseNet / MeliusNet in one call, without concatenation: the stage's output
// tensor is allocated at its final width, the input is copied into its first channels once, and each unit
// binarizes the channels written so far (its own folded BatchNorm: ConvOptions thresholds) and writes its
// `growth` new channels in place. A DenseBlock (BinaryDenseNet section 4, MeliusNet section 3.1) writes
// them after the others; an ImprovementBlock (MeliusNet section 3.2) adds them to the last `growth`
// channels. Each unit reads its input once and writes only its outputs: O(L) copying per stage instead of
// the O(L^2) of a concat per unit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "binary_conv.h"

namespace binary_models {

struct DenseStageShape {
  int batch = 1, in_channels = 0, height = 0, width = 0;
  // Every unit: kernel x kernel (odd), stride 1, padding dilation * (kernel - 1) / 2: the size stays.
  int growth = 64, kernel = 3, dilation = 1;
  PadMode pad_mode = PadMode::kMinusOne;
  std::string units;  // one letter per unit, in order: 'D' (dense: + growth channels) or 'I' (improvement)

  int out_channels() const;           // in_channels + growth per 'D'
  int unit_in_channels(int u) const;  // channels unit u binarizes
  ConvShape unit_shape(int u) const;  // unit u's convolution
  int64_t weight_words() const;       // all units' packed weights, one after the other
  int64_t threshold_count() const;    // all units' input channels (thresholds, directions)
  std::string check() const;          // "" when supported, else the problem
};

// Bytes of scratch memory dense_stage needs.
size_t dense_stage_workspace_bytes(const DenseStageShape& shape);

// output (batch, out_channels, height, width) from input (batch, in_channels, height, width); weights,
// thresholds/directions and (when not null) scales hold the units' parts one after the other. `workspace`
// holds dense_stage_workspace_bytes(shape) bytes, or is null (then it is allocated).
void dense_stage(const DenseStageShape& shape, const float* input, const uint64_t* weights, const float* thresholds,
                 const float* directions, const float* scales, float* output, void* workspace = nullptr,
                 Isa isa = Isa::kAuto);

}  // namespace binary_models
