// The plan of one binary_conv2d call: the layout of the packed activations, the tap offsets into it, and
// how the work is split into items over threads. Computed once per call, read by every other piece.
#pragma once

#include <cstdint>
#include <vector>

#include "conv_shape.h"
#include "microkernels.h"

namespace binary_models {

// The least work (binary MACs) worth another thread. Starting or joining a team costs about a microsecond
// where idle threads spin (libgomp's default), 10-20 microseconds where they wait asleep
// (OMP_WAIT_POLICY=passive, as bm-run runs: docs/runtime.md, Threads), so then 20x more.
constexpr double kMacsPerThread = 1e6, kMacsPerSleepingThread = 2e7;
double macs_per_thread();  // the one of the two that this process's wait policy calls for

struct ConvPlan {
  ConvPlan(const ConvShape& shape, int max_threads, const ConvOptions& options = ConvOptions());

  int groups, blocks;  // of the shape: groups, and weight blocks per group

  // Packed activations: [batch][padded rows][padded columns][groups][words] (padding: 0 bits = -1, or
  // one_pixel's 1 bits = +1).
  int padded_h, padded_w;
  int64_t pixel_words, row_words, image_words;
  std::vector<int64_t> tap_offsets;  // words from a receptive field's origin to tap t
  int64_t block_words;               // one packed weight block: taps x words x kLanes
  int out_w, pixels;                 // output pixels per image and channel
  int64_t input_image_floats, output_image_floats;  // image strides (ConvOptions, or dense NCHW)
  bool zero_padding;                 // pad_mode zero with some padding: the counts need a correction
  // pad_mode one with some padding: the words of one padding pixel (1 bits for each group's channels,
  // pixel_words of them); empty otherwise (padding: 0 bits).
  std::vector<uint64_t> one_pixel;

  bool parallel;  // large enough to be worth an OpenMP team
  int threads;    // of the team: max_threads, fewer for small convolutions

  // Packing: the padded rows of each image in row_ranges ranges, one item per (image, range).
  int row_ranges;
  int64_t pack_items;

  // Tiles: kTilePixels output pixels of one image and group against a range of weight blocks (all of
  // them, unless there are too few pixel tiles to give every thread eight items).
  int pixel_tiles, ranges, range_blocks;
  int64_t tile_items;

  struct Tile {
    int64_t n;        // image
    int g;            // group
    int p0, pixels;   // first output pixel, and how many (kTilePixels, fewer in an image's last tile)
    int block_begin, block_end;
  };
  Tile tile(int64_t item) const;  // item in [0, tile_items): consecutive items are neighbouring tiles
};

}  // namespace binary_models
