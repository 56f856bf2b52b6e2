// AVX2 kernels, compiled for AVX2 by function attributes only: the library still loads on a CPU without
// AVX2, and binary_conv.cc picks these at run time (__builtin_cpu_supports).
//
// xor-popcount: a 256-bit vector holds one 64-bit word of 4 output channels (one packed weight block); a
// pixel's word is broadcast to all lanes, xor'ed, and counted with Mula's nibble lookup (vpshufb into a
// 16-entry table, low and high nibble). Byte counts accumulate for at most 31 words (8 per word: 248 <
// 256) before vpsadbw adds each 64-bit lane's bytes, which is then the count of one output channel: no
// horizontal sums. The register tile is kBlocks weight vectors x kPixels pixels of byte accumulators.
#include <immintrin.h>

#include "microkernels.h"

namespace binary_models {
namespace {

#define AVX2_TARGET __attribute__((target("avx2,popcnt")))

constexpr int kFlushWords = 31;  // 31 * 8 = 248: byte counters cannot overflow

// Tile shape: kBlocks x kPixels accumulators + kBlocks weights + 1 pixel word + 2 constants + 3
// temporaries fit the 16 ymm registers.
constexpr int kBlocks = 1, kPixels = 8;
static_assert(kMaxTilePixels % kPixels == 0, "the tile's pixels are computed kPixels at a time");

// Stores sums[j] (pixel j: four 64-bit counts, one per lane) as counts[l * kMaxTilePixels + j] (int32),
// four pixels at a time with in-lane 128-bit shuffles (lane-crossing shuffles are slow on Zen 1).
template <int NR>
AVX2_TARGET inline void store_transposed(const __m256i (&sums)[NR], int32_t* counts) {
  static_assert(NR % 4 == 0, "pixels are transposed four at a time");
  for (int j = 0; j < NR; j += 4) {
    for (int half = 0; half < 2; ++half) {  // lanes 0-1, then lanes 2-3
      __m128i pair[4];
      for (int i = 0; i < 4; ++i)
        pair[i] = half ? _mm256_extracti128_si256(sums[j + i], 1) : _mm256_castsi256_si128(sums[j + i]);
      for (int lane = 0; lane < 2; ++lane) {
        // counts < 2^31: the low dwords of (pixel j, j+1) and (j+2, j+3) for this lane.
        const __m128i a = lane ? _mm_unpackhi_epi64(pair[0], pair[1]) : _mm_unpacklo_epi64(pair[0], pair[1]);
        const __m128i b = lane ? _mm_unpackhi_epi64(pair[2], pair[3]) : _mm_unpacklo_epi64(pair[2], pair[3]);
        const __m128 row = _mm_shuffle_ps(_mm_castsi128_ps(a), _mm_castsi128_ps(b), _MM_SHUFFLE(2, 0, 2, 0));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(counts + (2 * half + lane) * kMaxTilePixels + j),
                         _mm_castps_si128(row));
      }
    }
  }
}

// Adds each 64-bit lane's byte counts to its sum and clears the byte counts.
template <int MR, int NR>
AVX2_TARGET inline void flush(__m256i (&bytes)[MR][NR], __m256i (&sums)[MR][NR]) {
  const __m256i zero = _mm256_setzero_si256();
  for (int b = 0; b < MR; ++b)
    for (int j = 0; j < NR; ++j) {
      sums[b][j] = _mm256_add_epi64(sums[b][j], _mm256_sad_epu8(bytes[b][j], zero));
      bytes[b][j] = zero;
    }
}

template <int MR, int NR>
AVX2_TARGET void xor_popcount_part(const TileArgs& tile, int j0, int32_t* counts) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                       0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  const __m256i zero = _mm256_setzero_si256();
  __m256i bytes[MR][NR], sums[MR][NR];
  for (int b = 0; b < MR; ++b)
    for (int j = 0; j < NR; ++j) bytes[b][j] = sums[b][j] = zero;
  const uint64_t* pixels[NR];
  for (int j = 0; j < NR; ++j) pixels[j] = tile.pixels[j0 + j];
  int budget = kFlushWords;
  const int words = tile.words;
  for (int t = 0; t < tile.taps; ++t) {
    const int64_t offset = tile.tap_offsets[t];
    const uint64_t* weights = tile.weights + int64_t(t) * words * 4;
    for (int i = 0; i < words; ++i) {
      __m256i w[MR];
      for (int b = 0; b < MR; ++b)
        w[b] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(weights + b * tile.block_stride + 4 * i));
      for (int j = 0; j < NR; ++j) {
        const __m256i x = _mm256_set1_epi64x(static_cast<long long>(pixels[j][offset + i]));
        for (int b = 0; b < MR; ++b) {
          const __m256i v = _mm256_xor_si256(w[b], x);
          const __m256i lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, nibble));
          const __m256i hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble));
          bytes[b][j] = _mm256_add_epi8(bytes[b][j], _mm256_add_epi8(lo, hi));
        }
      }
      if (--budget == 0) {
        flush<MR, NR>(bytes, sums);
        budget = kFlushWords;
      }
    }
  }
  flush<MR, NR>(bytes, sums);
  for (int b = 0; b < MR; ++b) store_transposed<NR>(sums[b], counts + 4 * b * kMaxTilePixels + j0);
}

template <int MR>
AVX2_TARGET void xor_popcount_blocks(const TileArgs& tile, int32_t* counts) {
  for (int j0 = 0; j0 < kMaxTilePixels; j0 += kPixels) xor_popcount_part<MR, kPixels>(tile, j0, counts);
}

AVX2_TARGET void xor_popcount_avx2(const TileArgs& tile, int32_t* counts) {
  static_assert(kBlocks <= 2, "add the instantiations for larger tiles");
  if (kBlocks == 2 && tile.blocks == 2)
    xor_popcount_blocks<kBlocks>(tile, counts);
  else
    xor_popcount_blocks<1>(tile, counts);
}

// Transposes an 8x8 bit matrix held in a word, row r in byte r (Hacker's Delight, transpose8).
AVX2_TARGET inline uint64_t transpose8x8(uint64_t m) {
  uint64_t t = (m ^ (m >> 7)) & 0x00AA00AA00AA00AAull;
  m ^= t ^ (t << 7);
  t = (m ^ (m >> 14)) & 0x0000CCCC0000CCCCull;
  m ^= t ^ (t << 14);
  t = (m ^ (m >> 28)) & 0x00000000F0F0F0F0ull;
  return m ^ t ^ (t << 28);
}

// Eight pixels at a time (masked loads for a row's last ones): per channel, one compare + movemask gives a byte over the pixels; eight channels'
// bytes form an 8x8 bit matrix whose transpose holds one byte (eight channels) per pixel.
AVX2_TARGET void pack_row_avx2(const float* x, int64_t channel_stride, int channels, int groups, int words,
                               int pixels, uint64_t* out) {
  const int group_channels = channels / groups;
  const int64_t pixel_words = int64_t(groups) * words;
  const __m256 zero = _mm256_setzero_ps();
  for (int p = 0; p < pixels; p += 8) {
    const int valid = pixels - p < 8 ? pixels - p : 8;  // the row's last pixels: masked loads
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (int g = 0; g < groups; ++g) {
      const float* first = x + int64_t(g) * group_channels * channel_stride + p;
      for (int w = 0; w < words; ++w) {
        uint64_t pixel_word[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int byte = 0; byte < 8; ++byte) {
          const int c0 = w * 64 + byte * 8;
          const int n = group_channels - c0 < 8 ? group_channels - c0 : 8;
          if (n <= 0) break;
          uint64_t rows = 0;
          for (int i = 0; i < n; ++i) {
            const float* source = first + (c0 + i) * channel_stride;
            const __m256 v = valid == 8 ? _mm256_loadu_ps(source) : _mm256_maskload_ps(source, mask);
            rows |= uint64_t(_mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_GE_OQ))) << (8 * i);
          }
          const uint64_t columns = transpose8x8(rows);
          for (int j = 0; j < 8; ++j) pixel_word[j] |= ((columns >> (8 * j)) & 0xff) << (8 * byte);
        }
        for (int j = 0; j < valid; ++j) out[(p + j) * pixel_words + int64_t(g) * words + w] = pixel_word[j];
      }
    }
  }
}

}  // namespace

const KernelSet& avx2_kernels() {
  static const KernelSet kernels{"avx2", kBlocks, xor_popcount_avx2, pack_row_avx2};
  return kernels;
}

}  // namespace binary_models
