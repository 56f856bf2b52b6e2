// AVX-512 kernels (F/BW/VL + VPOPCNTDQ), compiled for it by function attributes only: the library still
// loads on any x86-64, and isa.cc picks these at run time when CPUID and XCR0 allow. The kernels are
// microkernel_wide.inc with vpopcntq and masked loads.
#if defined(__x86_64__)  // x86-64 only; elsewhere this file is empty
#include <immintrin.h>

#include <algorithm>

#include "output_transform.h"

namespace binary_models {
namespace {

#define WIDE_TARGET __attribute__((target("avx2,bmi2,popcnt,avx512f,avx512bw,avx512vl,avx512vpopcntdq")))

#include "microkernel_wide.inc"

WIDE_TARGET inline U64x8 popcount64x8(U64x8 v) { return U64x8(_mm512_popcnt_epi64(__m512i(v))); }

WIDE_TARGET inline F32x16 load16(const float* p, int valid) {
  return F32x16(_mm512_maskz_loadu_ps(__mmask16((1u << valid) - 1), p));
}

}  // namespace

const KernelSet& avx512_kernels() {
  static const KernelSet kernels{"avx512", TileLayout::kPlain, xor_popcount_wide, pack_rows_wide};
  return kernels;
}

}  // namespace binary_models

#endif  // __x86_64__
