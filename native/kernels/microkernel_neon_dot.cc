// NEON kernels for ARMv8.2-A with the dot product (Cortex-A55, A76, Neoverse N1, ...; hwcap asimddp),
// compiled for it by function attributes only, chosen at run time (isa.cc): microkernel_neon.inc with
// UDOT summing each count's bytes (times 1) into 32-bit lanes, so nothing is widened or flushed.
#if defined(__aarch64__)  // aarch64 only; elsewhere this file is empty
#include <arm_neon.h>

#include <algorithm>
#include <cstring>

#include "output_transform.h"

namespace binary_models {
namespace {

#define NEON_TARGET __attribute__((target("arch=armv8.2-a+dotprod")))

using Partial = uint32x4_t;
constexpr int kChunkWords = 1 << 30;  // one chunk: 32-bit sums do not overflow

#include "microkernel_neon.inc"

NEON_TARGET inline Partial add_counts(Partial partial, uint8x16_t counts) {
  return vdotq_u32(partial, counts, vdupq_n_u8(1));
}
NEON_TARGET inline uint32x4_t flush(uint32x4_t sums, Partial partial) { return vaddq_u32(sums, partial); }

}  // namespace

const KernelSet& neon_dot_kernels() {
  static const KernelSet kernels{"neon-dot", TileLayout::kWithSwappedPairs, xor_popcount_neon, pack_rows_neon};
  return kernels;
}

}  // namespace binary_models

#endif  // __aarch64__
