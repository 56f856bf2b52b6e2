// AVX2 kernels, compiled for AVX2 by function attributes only: the library still loads on a CPU without
// AVX2, and isa.cc picks these at run time.
//
// xor-popcount: a 256-bit vector holds one 64-bit word of 4 output channels (one packed weight block); a
// pixel's word is broadcast to all lanes, xor'ed, and counted with Mula's nibble lookup (vpshufb into a
// 16-entry table). The nibbles are split before the xor, which commutes with the split: the tile gather
// stores each pixel word's low and high nibbles (TileLayout::kWithNibbles) and the kernel splits a weight
// vector once for all its pixels, so a pixel word costs 2 x (broadcast, vpxor, vpshufb, vpaddb) instead of
// 8 vector operations plus the broadcast. Byte counts accumulate for at most 31 words (8 per word: 248 <
// 256) before vpsadbw adds each 64-bit lane's bytes, which is then the count of one output channel: no
// horizontal sums.
#if defined(__x86_64__)  // x86-64 only; elsewhere this file is empty
#include <immintrin.h>

#include <algorithm>

#include "output_transform.h"

namespace binary_models {
namespace {

#define AVX2_TARGET __attribute__((target("avx2,popcnt")))

constexpr int kFlushWords = 31;  // 31 * 8 = 248: byte counters cannot overflow

// The tile: one weight vector (4 output channels) x kVectorPixels pixels counted with vpshufb in the
// vector units, and kScalarPixels more pixels counted with popcnt in the integer units, which would idle
// otherwise. Registers: kVectorPixels byte counters, the split weights, the table and temporaries (of 16
// ymm; the 64-bit sums are touched every 31 words and may live on the stack); 4 x kScalarPixels counters.
// The split: the loop is bound by the vector units on AMD (4 pipes; vpshufb and memory broadcasts share
// two) and by vpshufb's single port on Intel before Ice Lake, and issues 5-6 instructions a cycle, where a
// scalar (pixel, channel) word costs 4 (mov, xor, popcnt, add) and a vector one 2. llvm-mca cycles per
// reduction word of the loop GCC made from intrinsics (znver1 / znver3 / haswell / skylake), then Zen 5
// under --isa avx2 (bench_kernels --l1, reduction 36, binary MACs/ns): 5 + 3 pixels 29.0 / 17.1 / 31.1 /
// 25.1, 597; 6 + 2 26.1 / 15.9 / 25.1 / 19.9, 659; 7 + 1 24.1 / 17.6 / 23.6 / 18.4, 575; 8 + 0 22.4 / 21.1 /
// 23.1 / 18.7, 510. Before the split nibbles (8 vector operations a pixel word; 5 + 3 measured best on
// Zen 1): 30.0 / 18.4 / 29.1 / 25.8, 541. The loop written in assembly below (6 + 2): 25.1 / 15.1 / 25.1 /
// 23.0, 731-756 (skylake's model puts the same load on every port, 19 uops a word on ports 0, 1, 5 and 6,
// as for the intrinsics, and schedules it worse).
constexpr int kVectorPixels = 6;
constexpr int kScalarPixels = kTilePixels - kVectorPixels;

// Stores sums[j] (pixel j: four 64-bit counts, one per lane) as counts[l * kTilePixels + j] (int32),
// four pixels at a time with in-lane 128-bit shuffles (lane-crossing shuffles are slow on Zen 1).
AVX2_TARGET inline void store_four(const __m256i* sums, int32_t* counts) {
  for (int half = 0; half < 2; ++half) {  // lanes 0-1, then lanes 2-3
    __m128i pair[4];
    for (int i = 0; i < 4; ++i)
      pair[i] = half ? _mm256_extracti128_si256(sums[i], 1) : _mm256_castsi256_si128(sums[i]);
    for (int lane = 0; lane < 2; ++lane) {
      // counts < 2^31: the low dwords of (pixel j, j+1) and (j+2, j+3) for this lane.
      const __m128i a = lane ? _mm_unpackhi_epi64(pair[0], pair[1]) : _mm_unpacklo_epi64(pair[0], pair[1]);
      const __m128i b = lane ? _mm_unpackhi_epi64(pair[2], pair[3]) : _mm_unpacklo_epi64(pair[2], pair[3]);
      const __m128 row = _mm_shuffle_ps(_mm_castsi128_ps(a), _mm_castsi128_ps(b), _MM_SHUFFLE(2, 0, 2, 0));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(counts + (2 * half + lane) * kTilePixels),
                       _mm_castps_si128(row));
    }
  }
}

template <int NR>
AVX2_TARGET inline void store_sums(const __m256i (&sums)[NR], int32_t* counts) {
  int j = 0;
  for (; j + 4 <= NR; j += 4) store_four(sums + j, counts + j);
  for (; j < NR; ++j) {
    alignas(32) int64_t lanes[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), sums[j]);
    for (int l = 0; l < 4; ++l) counts[l * kTilePixels + j] = int32_t(lanes[l]);
  }
}

// bytes += lut[x_low ^ low] + lut[x_high ^ high], byte by byte, with the pixel's nibble words broadcast.
// The loop is written in assembly, a statement per pixel (and per scalar word, count_word): from intrinsics
// GCC kept each byte counter in two registers, copying one to the other every word, held the weight words
// in general registers and spilled a counter for it: 95 instructions a reduction word instead of 90, in a
// loop bound by how many issue. volatile keeps the statements in the order they are written.
AVX2_TARGET inline __m256i count_nibbles(__m256i bytes, const uint64_t& x_low, const uint64_t& x_high, __m256i low,
                                         __m256i high, __m256i lut) {
  __m256i a, b;
  asm volatile(
      "vpbroadcastq %[x_low], %[a]\n\t"
      "vpbroadcastq %[x_high], %[b]\n\t"
      "vpxor %[a], %[low], %[a]\n\t"
      "vpxor %[b], %[high], %[b]\n\t"
      "vpshufb %[a], %[lut], %[a]\n\t"
      "vpshufb %[b], %[lut], %[b]\n\t"
      "vpaddb %[a], %[bytes], %[bytes]\n\t"
      "vpaddb %[b], %[bytes], %[bytes]"
      : [bytes] "+x"(bytes), [a] "=&x"(a), [b] "=&x"(b)
      : [x_low] "m"(x_low), [x_high] "m"(x_high), [low] "x"(low), [high] "x"(high), [lut] "x"(lut));
  return bytes;
}

// count + popcount(x ^ w), the weight word read from memory (not held in a register).
AVX2_TARGET inline uint64_t count_word(uint64_t count, uint64_t x, const uint64_t& w) {
  uint64_t t;
  asm volatile("mov %[x], %[t]\n\txor %[w], %[t]\n\tpopcnt %[t], %[t]\n\tadd %[t], %[count]"
               : [count] "+r"(count), [t] "=&r"(t)
               : [x] "r"(x), [w] "m"(w)
               : "cc");
  return count;
}

// One weight block (4 output channels) against the tile's pixels.
AVX2_TARGET void xor_popcount_block(const TileArgs& tile, const uint64_t* weights, int32_t* counts) {
  constexpr int V = kVectorPixels, S = kScalarPixels;
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                       0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  const __m256i zero = _mm256_setzero_si256();
  __m256i sums[V];
  uint64_t scalar[S][4] = {};
  for (int j = 0; j < V; ++j) sums[j] = zero;
  for (int k0 = 0; k0 < tile.reduction; k0 += kFlushWords) {
    const int k1 = tile.reduction - k0 < kFlushWords ? tile.reduction : k0 + kFlushWords;
    __m256i bytes[V];
    for (int j = 0; j < V; ++j) bytes[j] = zero;
    for (int k = k0; k < k1; ++k) {
      const uint64_t* x = tile.x + k * 3 * kTilePixels;  // words, low nibbles, high nibbles
      const uint64_t* w = weights + 4 * k;
      __m256i low, high;
      // (vpsrlw's immediate form takes no memory operand under VEX: GAS would encode one as AVX-512.)
      asm volatile("vmovdqu %[w], %[high]\n\tvpand %[high], %[nibble], %[low]\n\t"
                   "vpsrlw $4, %[high], %[high]\n\tvpand %[high], %[nibble], %[high]"
                   : [low] "=&x"(low), [high] "=&x"(high)
                   : [w] "m"(*reinterpret_cast<const __m256i*>(w)), [nibble] "x"(nibble));
      // Scalar pixel p after vector pixel (p + 1) * V / S - 1: both kinds of work at every point of the loop.
#pragma GCC unroll 8
      for (int j = 0; j < V; ++j) {
        bytes[j] = count_nibbles(bytes[j], x[kTilePixels + j], x[2 * kTilePixels + j], low, high, lut);
#pragma GCC unroll 8
        for (int p = 0; p < S; ++p)
          if ((p + 1) * V / S - 1 == j)
#pragma GCC unroll 4
            for (int l = 0; l < 4; ++l) scalar[p][l] = count_word(scalar[p][l], x[V + p], w[l]);
      }
    }
    for (int j = 0; j < V; ++j)  // vpsadbw: each 64-bit lane's byte counts -> that lane's count
      sums[j] = _mm256_add_epi64(sums[j], _mm256_sad_epu8(bytes[j], zero));
  }
  store_sums<V>(sums, counts);
  for (int j = 0; j < S; ++j)
    for (int l = 0; l < 4; ++l) counts[l * kTilePixels + V + j] = int32_t(scalar[j][l]);
}

AVX2_TARGET void xor_popcount_avx2(const TileArgs& tile, int32_t* counts) {
  for (int b = 0; b < tile.blocks; ++b)
    xor_popcount_block(tile, tile.weights + b * tile.block_stride, counts + b * kLanes * kTilePixels);
  if (tile.out) transform_full_tile(tile, counts);
}

// The compares of one channel at 32 consecutive pixels as bytes (0 or 0xff) in pixel order: packsswb of the
// four 8-pixel masks puts them in 128-bit lanes as [0-3, 8-11, 16-19, 24-27 | 4-7, 12-15, 20-23, 28-31].
template <bool kFull>  // all 32 pixels valid, else `valid` of them
AVX2_TARGET inline __m256i compare_bytes(const float* source, int valid, __m256 direction, __m256 threshold) {
  __m256i masks[4];
  for (int k = 0; k < 4; ++k) {
    const int n = valid - 8 * k;  // the rows' last pixels: masked loads
    const __m256 v = kFull || n >= 8 ? _mm256_loadu_ps(source + 8 * k)
                     : n > 0 ? _mm256_maskload_ps(source + 8 * k, _mm256_cmpgt_epi32(_mm256_set1_epi32(n),
                                                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)))
                             : _mm256_setzero_ps();
    masks[k] = _mm256_castps_si256(_mm256_cmp_ps(_mm256_mul_ps(v, direction), threshold, _CMP_GE_OQ));
  }
  return _mm256_packs_epi16(_mm256_packs_epi32(masks[0], masks[1]), _mm256_packs_epi32(masks[2], masks[3]));
}

// One word (up to 64 channels) of 32 consecutive pixels of the rows at a time (PixelWords). Per channel, 32 compares become 32 bytes
// whose bit i is channel i of an octet (the octet's 8 channels OR'ed together); per octet, a dword
// permutation puts the bytes in pixel order, and a byte transpose of the 8 octets (three rounds of unpacks)
// gives each pixel's word.
AVX2_TARGET void pack_rows_avx2(const float* x, int64_t channel_stride, int channels, int groups, int words,
                                int rows, int width, uint64_t* out, int64_t out_row_stride, const float* threshold,
                                const float* direction) {
  const int group_channels = channels / groups;
  const int64_t pixel_words = int64_t(groups) * words, pixels = int64_t(rows) * width;
  const __m256i pixel_order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int g = 0; g < groups; ++g)
    for (int w = 0; w < words; ++w) {
      const int first = g * group_channels + 64 * w, n = std::min(64, group_channels - 64 * w);
      for (int64_t q0 = 0; q0 < pixels; q0 += 32) {
        const int valid = int(std::min<int64_t>(32, pixels - q0));
        __m256i octets[8];
        for (int q = 0; q < 8; ++q) {
          __m256i bits = _mm256_setzero_si256();
#pragma GCC unroll 8
          for (int i = 0; i < 8; ++i) {
            if (8 * q + i >= n) break;
            const int c = first + 8 * q + i;
            const __m256 t = _mm256_set1_ps(threshold ? threshold[c] : 0.0f);
            const __m256 d = _mm256_set1_ps(direction ? direction[c] : 1.0f);  // x * 1 is x, NaN included
            const float* source = x + int64_t(c) * channel_stride + q0;
            const __m256i bytes = valid == 32 ? compare_bytes<true>(source, 32, d, t)
                                              : compare_bytes<false>(source, valid, d, t);
            bits = _mm256_or_si256(bits, _mm256_and_si256(bytes, _mm256_set1_epi8(char(1 << i))));
          }
          octets[q] = _mm256_permutevar8x32_epi32(bits, pixel_order);
        }
        // Byte transpose, in each 128-bit lane (pixels 0-15, 16-31): pairs of octets, then quads, then words.
        __m256i pairs[8], quads[8], pixel_words_out[8];
        for (int k = 0; k < 4; ++k) {
          pairs[k] = _mm256_unpacklo_epi8(octets[2 * k], octets[2 * k + 1]);      // pixels 0-7
          pairs[4 + k] = _mm256_unpackhi_epi8(octets[2 * k], octets[2 * k + 1]);  // pixels 8-15
        }
        for (int h = 0; h < 2; ++h)
          for (int m = 0; m < 2; ++m) {
            quads[4 * h + m] = _mm256_unpacklo_epi16(pairs[4 * h + 2 * m], pairs[4 * h + 2 * m + 1]);      // +0-3
            quads[4 * h + 2 + m] = _mm256_unpackhi_epi16(pairs[4 * h + 2 * m], pairs[4 * h + 2 * m + 1]);  // +4-7
          }
        for (int k = 0; k < 4; ++k) {  // quads[2k] (octets 0-3) with quads[2k + 1] (4-7): pixels 4k + 0-1, 2-3
          pixel_words_out[2 * k] = _mm256_unpacklo_epi32(quads[2 * k], quads[2 * k + 1]);
          pixel_words_out[2 * k + 1] = _mm256_unpackhi_epi32(quads[2 * k], quads[2 * k + 1]);
        }
        alignas(32) uint64_t chunk[32];  // pixel j's word
        for (int k = 0; k < 8; ++k) {
          _mm_store_si128(reinterpret_cast<__m128i*>(chunk + 2 * k), _mm256_castsi256_si128(pixel_words_out[k]));
          _mm_store_si128(reinterpret_cast<__m128i*>(chunk + 16 + 2 * k),
                          _mm256_extracti128_si256(pixel_words_out[k], 1));
        }
        PixelWords target(out + int64_t(g) * words + w, q0, width, out_row_stride, pixel_words);
        for (int j = 0; j < valid; ++j) target.put(chunk[j]);
      }
    }
}

}  // namespace

const KernelSet& avx2_kernels() {
  static const KernelSet kernels{"avx2", TileLayout::kWithNibbles, xor_popcount_avx2, pack_rows_avx2};
  return kernels;
}

}  // namespace binary_models

#endif  // __x86_64__
