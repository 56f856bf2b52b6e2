#include "gemm.h"

#include <algorithm>
#include <cstring>

#include "isa.h"

namespace binary_models {

const GemmTile& generic_tile();  // gemm_tiles.cc; the others are null where the architecture lacks them
const GemmTile* avx2_tile();
const GemmTile* avx512_tile();

namespace {

constexpr uint32_t kFma = 1u << 12, kOsxsave = 1u << 27, kAvx = 1u << 28;  // CPUID leaf 1 ECX
constexpr uint32_t kAvx2 = 1u << 5, kAvx512F = 1u << 16;                      // leaf 7 EBX
constexpr uint64_t kYmmState = 0x6, kZmmState = 0xe6;                         // XCR0 (isa.cc)

bool has(uint64_t bits, uint64_t wanted) { return (bits & wanted) == wanted; }

// The micro-kernels the CPU and OS allow, read once.
struct Allowed {
  bool avx2, avx512;
};

Allowed allowed() {
  const CpuBits bits = read_cpu_bits();
  const bool avx2 = avx2_tile() && has(bits.leaf1_ecx, kFma | kOsxsave | kAvx) && has(bits.leaf7_ebx, kAvx2) &&
                    has(bits.xcr0, kYmmState);
  return {avx2, avx2 && avx512_tile() && has(bits.leaf7_ebx, kAvx512F) && has(bits.xcr0, kZmmState)};
}

int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

}  // namespace

// The best micro-kernel allowed; when the binary kernels run below the best ISA (BINARY_MODELS_ISA, or
// set_active_isa: how the tests run each), no wider than theirs (scalar and avx512-emulated: generic).
const GemmTile& active_gemm_tile() {
  static const Allowed cpu = allowed();
  const Isa isa = active_isa();
  const bool capped = isa != best_isa();
  const bool avx512 = cpu.avx512 && (!capped || isa == Isa::kAvx512);
  const bool avx2 = cpu.avx2 && (!capped || isa == Isa::kAvx512 || isa == Isa::kAvx2);
  return avx512 ? *avx512_tile() : avx2 ? *avx2_tile() : generic_tile();
}

const char* gemm_isa() { return active_gemm_tile().name; }

// The workspace: the last partial tile's row offsets (K int64), then per group A packed per block of MR rows
// (k-major, zero rows past M), that tile's columns of B (K x NR, zeros past N) and of C (MR-rounded M x NR).
size_t gemm_workspace_floats(int64_t groups, int64_t M, int64_t K) {
  // The most any micro-kernel needs: the active one may change (set_active_isa) between sizing and running.
  size_t most = 0;
  for (const GemmTile* t : {&generic_tile(), avx2_tile(), avx512_tile()})
    if (t)
      most = std::max(most, size_t(2 * K + groups * (round_up(M, t->mr) * K + K * t->nr + round_up(M, t->mr) * t->nr)));
  return most;
}

void gemm(int64_t groups, int64_t M, int64_t K, int64_t N, const float* a, const float* b, int64_t b_step,
          const int64_t* offsets, float* c, int64_t c_step, int64_t ldc, float* workspace, bool a_packed) {
  const GemmTile& t = active_gemm_tile();
  const int64_t mr = t.mr, nr = t.nr, blocks = (M + mr - 1) / mr, full = N / nr, tiles = (N + nr - 1) / nr;
  const int64_t tail = N - full * nr, packed_size = blocks * mr * K, tail_b_size = K * nr, tail_c_size = blocks * mr * nr;
  int64_t* tail_offsets = reinterpret_cast<int64_t*>(workspace);
  float* packed = workspace + 2 * K;
  float* tail_b = packed + groups * packed_size;
  float* tail_c = tail_b + groups * tail_b_size;
#pragma omp for schedule(static) nowait
  for (int64_t i = 0; i < (a_packed ? 0 : groups * blocks); ++i) {
    const int64_t g = i / blocks, block = i % blocks;
    float* to = packed + g * packed_size + block * mr * K;
    for (int64_t k = 0; k < K; ++k)
      for (int64_t m = 0; m < mr; ++m) {
        const int64_t row = block * mr + m;
        to[k * mr + m] = row < M ? a[(g * M + row) * K + k] : 0.0f;
      }
  }
  if (tail) {
#pragma omp for schedule(static)
    for (int64_t i = 0; i < groups * K; ++i) {
      const int64_t g = i / K, k = i % K;
      float* to = tail_b + g * tail_b_size + k * nr;
      if (g == 0) tail_offsets[k] = k * nr;
      std::memcpy(to, b + g * b_step + offsets[k] + full * nr, size_t(tail) * sizeof(float));
      std::fill(to + tail, to + nr, 0.0f);
    }
  } else {
#pragma omp barrier
  }
  // Blocks of rows inner: a thread's consecutive tiles share their columns of B.
#pragma omp for schedule(static)
  for (int64_t i = 0; i < groups * tiles * blocks; ++i) {
    const int64_t g = i / (tiles * blocks), column = i / blocks % tiles, block = i % blocks;
    const int rows = int(std::min(mr, M - block * mr));
    const float* weights = packed + g * packed_size + block * mr * K;
    if (column < full)
      t.tile(K, weights, b + g * b_step + column * nr, offsets, c + g * c_step + block * mr * ldc + column * nr, ldc,
             rows);
    else
      t.tile(K, weights, tail_b + g * tail_b_size, tail_offsets, tail_c + g * tail_c_size + block * mr * nr, nr, rows);
  }
  if (tail) {
#pragma omp for schedule(static)
    for (int64_t i = 0; i < groups * M; ++i) {
      const int64_t g = i / M, m = i % M;
      std::memcpy(c + g * c_step + m * ldc + full * nr, tail_c + g * tail_c_size + m * nr, size_t(tail) * sizeof(float));
    }
  }
}

}  // namespace binary_models
