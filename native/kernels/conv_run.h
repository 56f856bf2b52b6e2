// One binary convolution made ready to run inside an OpenMP team that a caller already holds (a dense stage
// runs all its units in one team: a barrier between units instead of a team started per unit).
// binary_conv2d (binary_conv.h) is this, in a team of its own.
#pragma once

#include <cstdint>

#include "conv_plan.h"
#include "microkernels.h"
#include "padding_correction.h"

namespace binary_models {

class ConvRun {
 public:
  // A plan for a team of up to `threads` threads. Holds references to `shape` and `options`: keep them alive.
  ConvRun(const ConvShape& shape, int threads, const ConvOptions& options);
  ConvRun(const ConvRun&) = delete;  // the padding correction refers to the plan
  ConvRun& operator=(const ConvRun&) = delete;

  const ConvPlan& plan() const { return plan_; }
  // binary_conv2d's work, called by every thread of the team (or by one thread outside a team): packs the
  // input into `packed` (workspace_bytes(shape)), then shares the tiles out. Returns after a barrier, with
  // every output written.
  void run(const KernelSet& kernels, const float* input, const uint64_t* packed_weights, const float* scale,
           float* output, uint64_t* packed);

 private:
  const ConvShape& shape_;
  const ConvOptions& options_;
  ConvPlan plan_;
  PaddingCorrection correction_;
};

int max_threads();  // OpenMP's for the next team (1 without OpenMP)

}  // namespace binary_models
