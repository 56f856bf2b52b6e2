// gemm.h's micro-kernels: gemm_tiles.inc compiled for each instruction set by function attributes (the
// library still loads on any CPU of its architecture; gemm.cc picks one at run time). Floats multiply and add
// in one rounding where the target has FMA (-ffp-contract=fast for this file).
#include "gemm.h"

namespace binary_models {

namespace generic {  // SSE2 (x86-64's baseline), NEON (aarch64's): 16-byte vectors
#define GEMM_TARGET
#define GEMM_NAME "generic"
#define GEMM_VECTOR_BYTES 16
#if defined(__aarch64__)
#define GEMM_MR 8  // 32 vector registers
#define GEMM_COLUMN_MV 4
#else
#define GEMM_MR 4  // 16
#define GEMM_COLUMN_MV 2
#endif
#define GEMM_NV 2
#define GEMM_COLUMN_NR 6
#include "gemm_tiles.inc"
}  // namespace generic

const GemmTile& generic_tile() { return generic::kTile; }

#if defined(__x86_64__)
namespace avx2 {  // 16 ymm registers: 4 x 3 accumulators, 3 columns, 1 broadcast (column tile: 6 x 2, 2 rows, 1)
#define GEMM_TARGET __attribute__((target("avx2,fma")))
#define GEMM_NAME "avx2"
#define GEMM_VECTOR_BYTES 32
#define GEMM_MR 4
#define GEMM_NV 3
#define GEMM_COLUMN_MV 2
#define GEMM_COLUMN_NR 6
#include "gemm_tiles.inc"
}  // namespace avx2

namespace avx512 {  // 32 zmm registers: 8 x 2 accumulators (a group of 8 filters is one tile); column tile 6 x 4
#define GEMM_TARGET __attribute__((target("avx2,fma,avx512f")))
#define GEMM_NAME "avx512"
#define GEMM_VECTOR_BYTES 64
#define GEMM_MR 8
#define GEMM_NV 2
#define GEMM_COLUMN_MV 4
#define GEMM_COLUMN_NR 6
#include "gemm_tiles.inc"
}  // namespace avx512

const GemmTile* avx2_tile() { return &avx2::kTile; }
const GemmTile* avx512_tile() { return &avx512::kTile; }
#else
const GemmTile* avx2_tile() { return nullptr; }
const GemmTile* avx512_tile() { return nullptr; }
#endif

}  // namespace binary_models
