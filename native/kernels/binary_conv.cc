// The binary convolution driver. It packs the activations once per call (packing.cc), then, per tile of
// kTilePixels output pixels, gathers their receptive fields into a small buffer (tile_gather.cc) and runs
// the micro-kernel (isa.cc picks its ISA) on it against up to kTileBlocks weight blocks per call. The
// micro-kernel applies the output transform of a full tile itself (output_transform.h); the others go
// through write_outputs (output_transform.cc, with padding_correction.cc under zero padding). The plan
// (conv_plan.cc) lays out the buffers and shares the packing rows and the tiles out over the OpenMP threads.
#include "binary_conv.h"

#include <algorithm>
#include <vector>

#include "conv_run.h"
#include "output_transform.h"
#include "packing.h"
#include "tile_gather.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace binary_models {

int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

namespace {

// Every tile of the plan, shared out over the team: gather, micro-kernel per weight block, output transform.
void run_tiles(const ConvShape& s, const ConvPlan& p, const KernelSet& kernels, const uint64_t* packed,
               const uint64_t* packed_weights, const float* scale, const PaddingCorrection& correction,
               float* output) {
  std::vector<uint64_t> gathered(int64_t(s.taps()) * s.words() * tile_rows(kernels.layout) * kTilePixels);
  TileArgs args;
  args.x = gathered.data();
  args.reduction = s.taps() * s.words();
  args.block_stride = p.block_words;
  args.out_stride = p.pixels;
  args.full = s.group_in_channels() * s.taps();
  const int group_out = s.group_out_channels();
  Border borders[kTilePixels];
#pragma omp for schedule(static)  // contiguous tiles: threads share no output cache lines but at the seams
  for (int64_t item = 0; item < p.tile_items; ++item) {
    const ConvPlan::Tile tile = p.tile(item);
    gather_tile(s, p, tile, kernels.layout, packed, gathered.data());
    if (p.zero_padding) correction.borders(tile, borders);
    const bool fused = tile.pixels == kTilePixels && !p.zero_padding;  // the kernel writes the outputs
    for (int block = tile.block_begin; block < tile.block_end; block += kTileBlocks) {
      const int first = tile.g * group_out + block * kLanes;  // output channel
      args.weights = packed_weights + (int64_t(tile.g) * p.blocks + block) * p.block_words;
      args.blocks = std::min(kTileBlocks, tile.block_end - block);
      args.out = fused ? output + tile.n * p.output_image_floats + int64_t(first) * p.pixels + tile.p0 : nullptr;
      args.scale = scale ? scale + first : nullptr;
      args.channels = std::min(args.blocks * kLanes, group_out - block * kLanes);
      alignas(64) int32_t counts[kTileBlocks * kLanes * kTilePixels];
      kernels.xor_popcount(args, counts);
      if (!fused) write_outputs(s, p, tile, block, args.blocks, counts, scale, correction, borders, output);
    }
  }
}

}  // namespace

ConvRun::ConvRun(const ConvShape& shape, int threads, const ConvOptions& options)
    : shape_(shape), options_(options), plan_(shape, threads, options), correction_(shape, plan_) {}

void ConvRun::run(const KernelSet& kernels, const float* input, const uint64_t* packed_weights, const float* scale,
                  float* output, uint64_t* packed) {
  pack_activations(shape_, plan_, kernels, input, options_, packed);
  if (plan_.zero_padding) correction_.count_weights(packed_weights);
  run_tiles(shape_, plan_, kernels, packed, packed_weights, scale, correction_, output);
}

void binary_conv2d(const ConvShape& s, const float* input, const uint64_t* packed_weights, const float* scale,
                   float* output, void* workspace, Isa isa, const ConvOptions& options) {
  const KernelSet& kernels = kernels_for(isa);
  ConvRun conv(s, max_threads(), options);
  std::vector<uint64_t> owned;
  if (!workspace) owned.resize(workspace_bytes(s) / sizeof(uint64_t));
  uint64_t* packed = workspace ? static_cast<uint64_t*>(workspace) : owned.data();
#pragma omp parallel num_threads(conv.plan().threads) if (conv.plan().parallel)
  conv.run(kernels, input, packed_weights, scale, output, packed);
}

}  // namespace binary_models
