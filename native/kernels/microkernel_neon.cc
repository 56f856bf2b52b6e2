// NEON kernels for every ARMv8-A (Cortex-A53, A72, ...): microkernel_neon.inc with the counts summed in
// bytes (cnt gives at most 8 per byte, so 31 words fit a byte) and widened to 32 bits every 31 words.
#if defined(__aarch64__)  // aarch64 only; elsewhere this file is empty
#include <arm_neon.h>

#include <algorithm>
#include <cstring>

#include "output_transform.h"

namespace binary_models {
namespace {

#define NEON_TARGET

using Partial = uint8x16_t;
constexpr int kChunkWords = 31;  // 31 * 8 = 248: byte sums cannot overflow

#include "microkernel_neon.inc"

inline Partial add_counts(Partial partial, uint8x16_t counts) { return vaddq_u8(partial, counts); }
inline uint32x4_t flush(uint32x4_t sums, Partial partial) { return vpadalq_u16(sums, vpaddlq_u8(partial)); }

}  // namespace

const KernelSet& neon_kernels() {
  static const KernelSet kernels{"neon", TileLayout::kWithSwappedPairs, xor_popcount_neon, pack_rows_neon};
  return kernels;
}

}  // namespace binary_models

#endif  // __aarch64__
