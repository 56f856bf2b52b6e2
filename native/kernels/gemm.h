// The float matrix product of Convolution: C = A * B with A the weights (M x K, row-major) and B read in
// place, row k at b + offsets[k] (so the rows of an input image, of its zero-padded copy or of im2col's
// columns serve without copying them into a matrix). A micro-kernel per instruction set (gemm_tiles.inc:
// generic vectors, AVX2 + FMA, AVX-512), chosen at run time from the CPU's bits as the binary kernels are
// (native/kernels/isa.h); groups, tiles of columns and blocks of rows split over the OpenMP team of the caller.
#pragma once

#include <cstddef>
#include <cstdint>

namespace binary_models {

// Floats of workspace gemm() needs for `groups` products of M rows and K inner terms (packed A and the last
// partial tiles).
size_t gemm_workspace_floats(int64_t groups, int64_t M, int64_t K);

// For each group g < groups: c[g * c_step + m * ldc + q] = sum over k of a[g * M * K + m * K + k] *
// b[g * b_step + offsets[k] + q], for m < M, q < N. Reads b there for q < N only. The workspace must be aligned
// to 8 bytes. Called by every thread of a parallel region with the same arguments, it splits the work over the
// team (orphaned `omp for`) and returns after a barrier; called outside one, it runs on the calling thread.
// `a_packed`: the workspace holds A packed by an earlier call with the same a, M, K and groups (the next image
// of a batch), so it is not packed again.
void gemm(int64_t groups, int64_t M, int64_t K, int64_t N, const float* a, const float* b, int64_t b_step,
          const int64_t* offsets, float* c, int64_t c_step, int64_t ldc, float* workspace, bool a_packed = false);

// The micro-kernel gemm() runs here: "avx512", "avx2" (with FMA), or "generic" (the compiler's vectors:
// SSE2 on x86-64, NEON on aarch64).
const char* gemm_isa();

// The micro-kernels of one instruction set: the MR x NR tile c[m * ldc + j] (m < rows) = sum over k of
// a[k * MR + m] * b[offsets[k] + j]; and the column tile, c[j * ldc + m] += sum over k of cols[j][k] *
// a[k * lda + m] for m < column_mr, j < column_nr (A's rows are vectors, each column's values broadcast).
struct GemmTile {
  const char* name;
  int mr, nr;
  void (*tile)(int64_t K, const float* a, const float* b, const int64_t* offsets, float* c, int64_t ldc, int rows);
  int column_mr, column_nr;
  void (*column_tile)(int64_t K, const float* a, int64_t lda, const float* const* cols, float* c, int64_t ldc);
};

// The micro-kernels gemm() runs here (the same choice as gemm_isa()'s).
const GemmTile& active_gemm_tile();

}  // namespace binary_models
