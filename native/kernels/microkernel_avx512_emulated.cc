// microkernel_wide.inc compiled for any x86-64: the AVX-512 kernels' logic with a portable popcount, so
// that a machine without AVX-512 tests everything of them but the choice of instructions. Not fast.
#if defined(__x86_64__)  // x86-64 only: an emulation of x86 kernels; elsewhere this file is empty
#include <algorithm>

#include "output_transform.h"

namespace binary_models {
namespace {

#define WIDE_TARGET

#include "microkernel_wide.inc"

// The SWAR popcount (Hacker's Delight 5-2) of each lane.
inline U64x8 popcount64x8(U64x8 v) {
  v -= (v >> 1) & 0x5555555555555555ull;
  v = (v & 0x3333333333333333ull) + ((v >> 2) & 0x3333333333333333ull);
  v = (v + (v >> 4)) & 0x0f0f0f0f0f0f0f0full;
  return (v * 0x0101010101010101ull) >> 56;
}

inline F32x16 load16(const float* p, int valid) {
  F32x16 v = {};
  __builtin_memcpy(&v, p, valid * sizeof(float));
  return v;
}

}  // namespace

const KernelSet& avx512_emulated_kernels() {
  static const KernelSet kernels{"avx512-emulated", TileLayout::kPlain, xor_popcount_wide, pack_rows_wide};
  return kernels;
}

}  // namespace binary_models

#endif  // __x86_64__
