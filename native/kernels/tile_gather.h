// The tile gather: an im2col of one tile. It copies the receptive fields of a tile's output pixels out of
// the packed activations into a small buffer (a few kB, in L1) that the micro-kernel then reads once per
// weight block.
#pragma once

#include <cstdint>

#include "conv_plan.h"

namespace binary_models {

// Word k = t * words + i (tap t, word i) of the tile's pixel j goes to gathered[k * rows * kTilePixels + j];
// under TileLayout::kWithSwappedPairs (rows 2) also to gathered[(k * 2 + 1) * kTilePixels + (j ^ 1)], under
// kWithNibbles (rows 3) its low and high nibbles to gathered[(k * 3 + 1) * kTilePixels + j] and
// gathered[(k * 3 + 2) * kTilePixels + j]. A partial tile repeats its last pixel. `gathered` holds taps x
// words x rows x kTilePixels words.
void gather_tile(const ConvShape& shape, const ConvPlan& plan, const ConvPlan::Tile& tile, TileLayout layout,
                 const uint64_t* packed, uint64_t* gathered);

}  // namespace binary_models
