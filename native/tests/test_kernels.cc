// Tests of the kernels without MXNet: every ISA this machine supports against a naive direct convolution
// and against the portable scalar kernels, on the same random shapes (channels not a multiple of 64,
// kernels 1..7, strides, dilation, groups, both paddings, batch, odd sizes, scaling); ISAs the machine
// lacks are reported as skipped. Also the dispatch's reading of CPUID/XCR0. Exits non-zero on the first
// failure. Usage: test_kernels [shapes] [seed]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "../kernels/batch_norm.h"
#include "../kernels/binary_conv.h"
#include "../kernels/conv_gradient.h"
#include "../kernels/dense_stage.h"
#include "../kernels/float_conv.h"
#include "../kernels/gemm.h"
#include "../kernels/norm_pool.h"

using binary_models::ConvShape;
using binary_models::Isa;
using binary_models::PadMode;

namespace {

int sign_of(float v) { return v >= 0.0f ? 1 : -1; }

const char* pad_mode_name(PadMode mode) {
  return mode == PadMode::kZero ? "zero" : mode == PadMode::kOne ? "one" : "minus_one";
}

// Direct convolution of sign(input) padded with -1, 0 or +1 with sign(weights) (integer sums). Signs are laid out
// channels-last ([n][y][x][c] padded, [o][ky][kx][c]) so the inner loop is a plain dot product.
// With `threshold` and `direction`, the sign of channel c is +1 where x * direction[c] >= threshold[c].
std::vector<int> naive_conv(const ConvShape& s, const std::vector<float>& input, const std::vector<float>& weights,
                            const float* threshold = nullptr, const float* direction = nullptr) {
  const int oh = s.out_height(), ow = s.out_width(), cg = s.group_in_channels(), og = s.group_out_channels();
  const int c = s.in_channels, hp = s.height + 2 * s.pad_h, wp = s.width + 2 * s.pad_w;
  const int pad_value = s.pad_mode == PadMode::kMinusOne ? -1 : s.pad_mode == PadMode::kOne ? 1 : 0;
  std::vector<int> image(size_t(s.batch) * hp * wp * c, pad_value);
  for (int n = 0; n < s.batch; ++n)
    for (int ci = 0; ci < c; ++ci)
      for (int y = 0; y < s.height; ++y)
        for (int x = 0; x < s.width; ++x)
          image[((size_t(n) * hp + y + s.pad_h) * wp + x + s.pad_w) * c + ci] =
              threshold ? (input[((size_t(n) * c + ci) * s.height + y) * s.width + x] * direction[ci] >= threshold[ci]
                               ? 1 : -1)
                        : sign_of(input[((size_t(n) * c + ci) * s.height + y) * s.width + x]);
  std::vector<int> filters(size_t(s.out_channels) * s.taps() * cg);
  for (int o = 0; o < s.out_channels; ++o)
    for (int ci = 0; ci < cg; ++ci)
      for (int t = 0; t < s.taps(); ++t)
        filters[(size_t(o) * s.taps() + t) * cg + ci] = sign_of(weights[(size_t(o) * cg + ci) * s.taps() + t]);
  std::vector<int> out(size_t(s.batch) * s.out_channels * oh * ow);
  for (int n = 0; n < s.batch; ++n)
    for (int o = 0; o < s.out_channels; ++o)
      for (int oy = 0; oy < oh; ++oy)
        for (int ox = 0; ox < ow; ++ox) {
          int sum = 0;
          for (int ky = 0; ky < s.kernel_h; ++ky)
            for (int kx = 0; kx < s.kernel_w; ++kx) {
              const int y = oy * s.stride_h + ky * s.dilate_h, x = ox * s.stride_w + kx * s.dilate_w;
              const int* a = &image[((size_t(n) * hp + y) * wp + x) * c + (o / og) * cg];
              const int* w = &filters[(size_t(o) * s.taps() + ky * s.kernel_w + kx) * cg];
              for (int ci = 0; ci < cg; ++ci) sum += a[ci] * w[ci];
            }
          out[((size_t(n) * s.out_channels + o) * oh + oy) * ow + ox] = sum;
        }
  return out;
}

std::vector<float> random_values(std::mt19937& rng, size_t n) {
  // Zeros of both signs are frequent: sign(0) = sign(-0) = +1 must hold everywhere.
  std::uniform_int_distribution<int> kind(0, 9);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) {
    const int k = kind(rng);
    x = k == 0 ? 0.0f : k == 1 ? -0.0f : normal(rng);
  }
  return v;
}

int pick(std::mt19937& rng, std::initializer_list<int> values) {
  std::uniform_int_distribution<size_t> index(0, values.size() - 1);
  return values.begin()[index(rng)];
}

int uniform(std::mt19937& rng, int low, int high) { return std::uniform_int_distribution<int>(low, high)(rng); }

PadMode random_pad_mode(std::mt19937& rng) { return PadMode(uniform(rng, 0, 2)); }  // kMinusOne, kZero, kOne

ConvShape random_shape(std::mt19937& rng) {
  ConvShape s;
  for (;;) {
    s.groups = pick(rng, {1, 1, 1, 2, 3, 4, 8});
    s.in_channels = s.groups * uniform(rng, 1, pick(rng, {8, 70, 150}));
    s.out_channels = s.groups * uniform(rng, 1, pick(rng, {6, 20, 40}));
    s.kernel_h = pick(rng, {1, 3, 3, 3, 5, 2, 7});
    s.kernel_w = pick(rng, {0, 0, 0, 1, 3}) ? s.kernel_h : pick(rng, {1, 3});
    s.stride_h = s.stride_w = pick(rng, {1, 1, 2, 3});
    if (uniform(rng, 0, 4) == 0) s.stride_w = pick(rng, {1, 2});
    s.dilate_h = s.dilate_w = pick(rng, {1, 1, 1, 2, 3});
    s.pad_h = uniform(rng, 0, 3);
    s.pad_w = uniform(rng, 0, 1) ? s.pad_h : uniform(rng, 0, 3);
    s.height = uniform(rng, 1, 19);
    s.width = uniform(rng, 1, 23);
    s.batch = uniform(rng, 1, 3);
    s.pad_mode = random_pad_mode(rng);
    if (s.check().empty() && double(s.batch) * s.out_channels * s.out_height() * s.out_width() *
                                     s.group_in_channels() * s.taps() < 4e6)
      return s;
  }
}

std::string describe(const ConvShape& s) {
  char text[256];
  std::snprintf(text, sizeof text,
                "N%d C%d %dx%d -> O%d, kernel %dx%d, stride %d,%d, pad %d,%d, dilate %d,%d, groups %d, pad %s",
                s.batch, s.in_channels, s.height, s.width, s.out_channels, s.kernel_h, s.kernel_w, s.stride_h,
                s.stride_w, s.pad_h, s.pad_w, s.dilate_h, s.dilate_w, s.groups,
                pad_mode_name(s.pad_mode));
  return text;
}

// Runs one random problem of shape `s` through every ISA, unscaled, scaled and with a folded BatchNorm
// (random thresholds and directions +1, -1, 0), against naive_conv and against the scalar kernels' output
// (isas[0] is kScalar).
bool run_shape(const ConvShape& s, std::mt19937& rng, const std::vector<Isa>& isas) {
  const std::vector<float> input = random_values(rng, size_t(s.batch) * s.in_channels * s.height * s.width);
  const std::vector<float> weights =
      random_values(rng, size_t(s.out_channels) * s.group_in_channels() * s.taps());
  std::vector<float> scale(s.out_channels);
  for (float& v : scale) v = std::uniform_real_distribution<float>(0.01f, 2.0f)(rng);
  std::vector<uint64_t> packed(s.packed_weight_words());
  binary_models::pack_weights(s, weights.data(), packed.data());
  std::vector<float> threshold(s.in_channels), direction(s.in_channels);
  for (int c = 0; c < s.in_channels; ++c) {
    threshold[c] = std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng);
    direction[c] = float(uniform(rng, -1, 1));
  }
  const std::vector<int> sums = naive_conv(s, input, weights);
  const std::vector<int> folded_sums = naive_conv(s, input, weights, threshold.data(), direction.data());
  const size_t plane = sums.size() / (size_t(s.batch) * s.out_channels);
  std::vector<uint64_t> workspace(binary_models::workspace_bytes(s) / sizeof(uint64_t) + 1);

  const char* variants[3] = {"unscaled", "scaled", "folded BN"};
  std::vector<float> scalar[3];
  for (Isa isa : isas)
    for (int variant = 0; variant < 3; ++variant) {
      const bool scaled = variant == 1, folded = variant == 2;
      binary_models::ConvOptions options;
      if (folded) {
        options.threshold = threshold.data();
        options.direction = direction.data();
      }
      std::vector<float> out(sums.size(), NAN);
      binary_models::binary_conv2d(s, input.data(), packed.data(), scaled ? scale.data() : nullptr, out.data(),
                                   uniform(rng, 0, 1) ? workspace.data() : nullptr, isa, options);
      if (isa == Isa::kScalar) scalar[variant] = out;
      for (size_t i = 0; i < out.size(); ++i) {
        const float expected =
            float(folded ? folded_sums[i] : sums[i]) * (scaled ? scale[i / plane % s.out_channels] : 1.0f);
        if (out[i] != expected || out[i] != scalar[variant][i]) {
          std::fprintf(stderr, "FAIL [%s, %s]: %s: output %zu is %g, expected %g (naive), %g (scalar)\n",
                       binary_models::isa_name(isa), variants[variant], describe(s).c_str(), i, out[i], expected,
                       scalar[variant][i]);
          return false;
        }
      }
    }
  return true;
}

// A random dense stage (kernels/dense_stage.h) on every ISA against its units run one by one through
// naive_conv: the input copied, each unit binarizing the channels so far with its folded BatchNorm, a 'D'
// unit's scaled outputs appended, an 'I' unit's added to the last `growth` channels.
bool dense_stage_is_right(std::mt19937& rng, const std::vector<Isa>& isas) {
  binary_models::DenseStageShape s;
  s.batch = uniform(rng, 1, 2);
  s.growth = pick(rng, {8, 33, 64});
  s.in_channels = uniform(rng, s.growth, 150);
  s.height = uniform(rng, 2, 9);
  s.width = uniform(rng, 2, 11);
  s.kernel = pick(rng, {1, 3, 3});
  s.dilation = pick(rng, {1, 1, 2});
  s.pad_mode = random_pad_mode(rng);
  for (int u = uniform(rng, 1, 4); u > 0; --u) s.units += "DI"[uniform(rng, 0, 1)];
  if (!s.check().empty()) return true;  // e.g. a dilated kernel larger than the input: nothing to test
  const int64_t plane = int64_t(s.height) * s.width;
  const std::vector<float> input = random_values(rng, size_t(s.batch) * s.in_channels * plane);
  std::vector<uint64_t> packed(s.weight_words());
  std::vector<float> thresholds(s.threshold_count()), directions(s.threshold_count()),
      scales(size_t(s.growth) * s.units.size());
  for (size_t i = 0; i < thresholds.size(); ++i) {
    thresholds[i] = std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng);
    directions[i] = float(uniform(rng, -1, 1));
  }
  for (float& v : scales) v = std::uniform_real_distribution<float>(0.01f, 2.0f)(rng);

  std::vector<float> expected(size_t(s.batch) * s.out_channels() * plane);
  for (int n = 0; n < s.batch; ++n)
    std::copy_n(input.begin() + n * s.in_channels * plane, s.in_channels * plane,
                expected.begin() + n * s.out_channels() * plane);
  int64_t weight_offset = 0, threshold_offset = 0;
  for (int u = 0; u < int(s.units.size()); ++u) {
    const ConvShape unit = s.unit_shape(u);
    const std::vector<float> weights = random_values(rng, size_t(unit.out_channels) * unit.in_channels * unit.taps());
    binary_models::pack_weights(unit, weights.data(), packed.data() + weight_offset);
    std::vector<float> unit_input(size_t(s.batch) * unit.in_channels * plane);
    for (int n = 0; n < s.batch; ++n)
      std::copy_n(expected.begin() + n * s.out_channels() * plane, unit.in_channels * plane,
                  unit_input.begin() + n * unit.in_channels * plane);
    const std::vector<int> sums = naive_conv(unit, unit_input, weights, thresholds.data() + threshold_offset,
                                             directions.data() + threshold_offset);
    const int first = s.units[u] == 'D' ? unit.in_channels : unit.in_channels - s.growth;
    for (int n = 0; n < s.batch; ++n)
      for (int o = 0; o < s.growth; ++o)
        for (int64_t i = 0; i < plane; ++i) {
          const float value = float(sums[(size_t(n) * s.growth + o) * plane + i]) * scales[size_t(u) * s.growth + o];
          float& out = expected[(size_t(n) * s.out_channels() + first + o) * plane + i];
          out = s.units[u] == 'D' ? value : out + value;
        }
    weight_offset += unit.packed_weight_words();
    threshold_offset += unit.in_channels;
  }
  for (Isa isa : isas) {
    std::vector<float> out(expected.size(), NAN);
    binary_models::dense_stage(s, input.data(), packed.data(), thresholds.data(), directions.data(), scales.data(),
                               out.data(), nullptr, isa);
    for (size_t i = 0; i < out.size(); ++i)
      if (!(out[i] == expected[i])) {
        std::fprintf(stderr, "FAIL [%s]: dense stage '%s', %d -> %d channels, growth %d, %dx%d, kernel %d, dilation "
                     "%d: output %zu is %g, expected %g\n", binary_models::isa_name(isa), s.units.c_str(),
                     s.in_channels, s.out_channels(), s.growth, s.height, s.width, s.kernel, s.dilation, i, out[i],
                     expected[i]);
        return false;
      }
  }
  return true;
}

bool check(bool ok, const char* what) {
  if (!ok) std::fprintf(stderr, "FAIL: %s\n", what);
  return ok;
}

// Dispatch reads CPUID and XCR0 on x86-64: AVX-512 needs its four feature bits and the OS's zmm state, AVX2
// the ymm state; AT_HWCAP on aarch64: NEON needs asimd, neon-dot also asimddp; no ISA runs on the other
// architecture; auto is always allowed; a name round-trips; an ISA the machine lacks cannot be made active.
bool dispatch_is_right() {
  using binary_models::CpuBits;
  using binary_models::isa_allowed;
  CpuBits zen4;
  zen4.arch = CpuBits::Arch::kX86_64;
  zen4.leaf1_ecx = 1u << 23 | 1u << 27;                                   // POPCNT, OSXSAVE
  zen4.leaf7_ebx = 1u << 5 | 1u << 8 | 1u << 16 | 1u << 30 | 1u << 31;  // AVX2, BMI2, AVX512 F/BW/VL
  zen4.leaf7_ecx = 1u << 14;                                              // AVX512_VPOPCNTDQ
  zen4.xcr0 = 0xe7;
  CpuBits no_zmm_state = zen4, no_vpopcntdq = zen4, no_xsave = zen4, nothing;
  nothing.arch = CpuBits::Arch::kX86_64;
  no_zmm_state.xcr0 = 0x7;
  no_vpopcntdq.leaf7_ecx = 0;
  no_xsave.leaf1_ecx = 1u << 23;
  no_xsave.xcr0 = 0;
  bool ok = check(isa_allowed(Isa::kAvx512, zen4) && isa_allowed(Isa::kAvx2, zen4), "all bits allow avx512, avx2");
  ok &= check(!isa_allowed(Isa::kAvx512, no_zmm_state) && isa_allowed(Isa::kAvx2, no_zmm_state),
              "an OS without zmm state allows avx2, not avx512");
  ok &= check(!isa_allowed(Isa::kAvx512, no_vpopcntdq), "avx512 needs VPOPCNTDQ");
  ok &= check(!isa_allowed(Isa::kAvx2, no_xsave) && !isa_allowed(Isa::kAvx512, no_xsave), "no OSXSAVE: no AVX");
  ok &= check(isa_allowed(Isa::kScalar, nothing) && isa_allowed(Isa::kAvx512Emulated, nothing) &&
                  !isa_allowed(Isa::kAvx2, nothing),
              "a bare x86-64 runs scalar and avx512-emulated only");
  ok &= check(!isa_allowed(Isa::kNeon, zen4) && !isa_allowed(Isa::kNeonDot, zen4), "x86-64 runs no NEON");
  CpuBits a72, n1 = a72, other = a72;  // Cortex-A72: fp asimd ...; Neoverse N1: ... asimddp
  a72.arch = n1.arch = CpuBits::Arch::kAarch64;
  a72.hwcap = 1u << 0 | 1u << 1 | 1u << 3;
  n1.hwcap = a72.hwcap | 1u << 20;
  ok &= check(isa_allowed(Isa::kNeon, a72) && !isa_allowed(Isa::kNeonDot, a72), "Cortex-A72 runs neon, not neon-dot");
  ok &= check(isa_allowed(Isa::kNeon, n1) && isa_allowed(Isa::kNeonDot, n1), "Neoverse N1 runs neon and neon-dot");
  ok &= check(!isa_allowed(Isa::kAvx2, n1) && !isa_allowed(Isa::kAvx512Emulated, n1) && isa_allowed(Isa::kScalar, n1),
              "aarch64 runs no x86 kernels, and scalar");
  other.hwcap = n1.hwcap;
  ok &= check(!isa_allowed(Isa::kNeon, other), "NEON needs aarch64, whatever the bits");
  for (Isa isa : {Isa::kAuto, Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Emulated, Isa::kNeon,
                  Isa::kNeonDot}) {
    Isa parsed = Isa::kAuto;
    ok &= check(binary_models::isa_from_name(binary_models::isa_name(isa), &parsed) && parsed == isa,
                "isa names round-trip");
  }
  Isa parsed;
  ok &= check(!binary_models::isa_from_name("avx1024", &parsed), "unknown names are refused");
  const Isa active = binary_models::active_isa();
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Emulated, Isa::kNeon, Isa::kNeonDot})
    if (!binary_models::isa_supported(isa))
      ok &= check(!binary_models::set_active_isa(isa) && binary_models::active_isa() == active,
                  "an unsupported ISA cannot be made active");
  return ok;
}

// norm_pool treats NaN, -inf and signed zeros as MXNet's (oneDNN's) Pooling and ReLU: NaN never wins a
// window, a window without a number gives -FLT_MAX, of 0.0 and -0.0 the first in raster order; ReLU gives 0
// for NaN and -0.0. The BatchNorm part is the identity here (mean 0, scale 1, shift -0.0 keeps -0.0).
bool norm_pool_treats_non_finite_as_mxnet() {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const float input[8] = {nan, -inf, -1.0f, -0.0f,   // two 2x2 windows side by side
                          -inf, nan, 0.0f, -1.0f};
  const float mean = 0.0f, scale = 1.0f, shift = -0.0f;
  binary_models::NormPoolShape s;
  s.channels = 1;
  s.height = 2;
  s.width = 4;
  s.kernel_h = s.kernel_w = s.stride_h = s.stride_w = 2;
  float pooled[2], relu_pooled[2], relu[8];
  binary_models::norm_pool(s, input, &mean, &scale, &shift, pooled);
  s.relu = true;
  binary_models::norm_pool(s, input, &mean, &scale, &shift, relu_pooled);
  s.kernel_h = s.kernel_w = s.stride_h = s.stride_w = 1;
  binary_models::norm_pool(s, input, &mean, &scale, &shift, relu);
  bool ok = check(pooled[0] == -std::numeric_limits<float>::max(), "a window of NaN and -inf pools to -FLT_MAX");
  ok &= check(pooled[1] == 0.0f && std::signbit(pooled[1]), "-0.0 before 0.0 in raster order pools to -0.0");
  ok &= check(relu_pooled[0] == 0.0f && relu_pooled[1] == 0.0f && !std::signbit(relu_pooled[1]),
              "ReLU after pooling gives +0");
  for (float v : relu) ok &= check(v == 0.0f && !std::signbit(v), "ReLU of NaN, -inf, -1, -0.0 and 0 is +0");
  return ok;
}

// norm_pool on random shapes (kernels 1..4, strides 1..3, padding, ReLU or not, a channel shuffle, widths
// around the vector length) against a window-by-window reference in raster order, bit for bit, on every
// ISA (the AVX2 build and the portable one); inputs with zeros of both signs, NaN and infinities.
bool norm_pool_matches_reference(std::mt19937& rng, const std::vector<Isa>& isas) {
  std::uniform_int_distribution<int> pick(0, 1 << 30);
  const float specials[] = {0.0f, -0.0f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(), 1.0f};
  std::normal_distribution<float> normal;
  const Isa active = binary_models::active_isa();
  bool ok = true;
  for (int trial = 0; trial < 60 && ok; ++trial) {
    binary_models::NormPoolShape s;
    s.batch = 1 + pick(rng) % 2;
    s.shuffle_groups = 1 + pick(rng) % 3;
    s.channels = s.shuffle_groups * (1 + pick(rng) % 3);
    s.kernel_h = 1 + pick(rng) % 4;
    s.kernel_w = trial % 3 ? s.kernel_h : 1 + pick(rng) % 4;
    s.stride_h = 1 + pick(rng) % 3;
    s.stride_w = trial % 3 ? s.stride_h : 1 + pick(rng) % 3;
    if (trial % 4 == 0) s.kernel_h = s.kernel_w = s.stride_h = s.stride_w = 2;  // the transitions
    s.pad_h = pick(rng) % (s.kernel_h / 2 + 1);
    s.pad_w = pick(rng) % (s.kernel_w / 2 + 1);
    s.height = s.kernel_h + pick(rng) % 20;
    s.width = s.kernel_w + pick(rng) % 40;
    s.relu = pick(rng) % 2;
    const size_t size = size_t(s.batch) * s.channels * s.height * s.width;
    std::vector<float> input(size), mean(s.channels), scale(s.channels), shift(s.channels);
    for (float& v : input) v = pick(rng) % 8 ? normal(rng) : specials[pick(rng) % 6];
    for (int c = 0; c < s.channels; ++c) {
      mean[c] = normal(rng);
      scale[c] = c % 5 == 4 ? 0.0f : normal(rng);
      shift[c] = c % 3 == 2 ? -0.0f : normal(rng);
    }
    const int oh = s.out_height(), ow = s.out_width();
    std::vector<float> expected(size_t(s.batch) * s.channels * oh * ow);
    for (int n = 0; n < s.batch; ++n)
      for (int c = 0; c < s.channels; ++c)
        for (int oy = 0; oy < oh; ++oy)
          for (int ox = 0; ox < ow; ++ox) {
            float best = -std::numeric_limits<float>::max();
            for (int y = oy * s.stride_h - s.pad_h; y < oy * s.stride_h - s.pad_h + s.kernel_h; ++y)
              for (int x = ox * s.stride_w - s.pad_w; x < ox * s.stride_w - s.pad_w + s.kernel_w; ++x) {
                if (y < 0 || y >= s.height || x < 0 || x >= s.width) continue;
                const float v = input[((size_t(n) * s.channels + c) * s.height + y) * s.width + x];
                volatile float scaled = (v - mean[c]) * scale[c];  // rounded before the shift (no FMA)
                float value = scaled + shift[c];
                if (s.relu) value = value > 0.0f ? value : 0.0f;
                if (value > best || !s.pooled()) best = value;  // (unpooled: NaN stays)
              }
            expected[((size_t(n) * s.channels + s.out_channel(c)) * oh + oy) * ow + ox] = best;
          }
    for (Isa isa : isas) {
      binary_models::set_active_isa(isa);
      std::vector<float> got(expected.size());
      binary_models::norm_pool(s, input.data(), mean.data(), scale.data(), shift.data(), got.data());
      for (size_t i = 0; i < got.size() && ok; ++i)
        if (std::memcmp(&got[i], &expected[i], sizeof(float)) != 0) {
          std::fprintf(stderr, "FAIL: norm_pool (%s) %dx%dx%dx%d kernel %dx%d stride %dx%d pad %dx%d relu %d shuffle %d: "
                       "output %zu is %g, expected %g\n", binary_models::isa_name(isa), s.batch, s.channels, s.height,
                       s.width, s.kernel_h, s.kernel_w, s.stride_h, s.stride_w, s.pad_h, s.pad_w, int(s.relu),
                       s.shuffle_groups, i, got[i], expected[i]);
          ok = false;
        }
    }
  }
  binary_models::set_active_isa(active);
  return ok;
}

// float_conv (the float convolution of float_conv2d and the runtime) on random shapes (groups, kernels 1..5,
// strides, dilation, padding, bias, batch) against a double-precision direct convolution, on every float
// micro-kernel (the binary kernels' ISA caps it): within 1e-5 of the sum of the terms' magnitudes.
bool float_conv_matches_reference(std::mt19937& rng, const std::vector<Isa>& isas, int count) {
  const Isa active = binary_models::active_isa();
  bool ok = true;
  for (int i = 0; i < count && ok; ++i) {
    binary_models::FloatConvShape s;
    s.groups = pick(rng, {1, 2, 3, 4, 8});
    s.channels = s.groups * uniform(rng, 1, 9);
    s.filters = s.groups * uniform(rng, 1, 12);
    s.kernel_h = pick(rng, {1, 3, 5}), s.kernel_w = pick(rng, {1, 3});
    s.stride_h = uniform(rng, 1, 3), s.stride_w = uniform(rng, 1, 2);
    s.dilate_h = uniform(rng, 1, 2), s.dilate_w = 1;
    s.pad_h = uniform(rng, 0, 2), s.pad_w = uniform(rng, 0, 2);
    s.batch = uniform(rng, 1, 2), s.height = uniform(rng, 5, 19), s.width = uniform(rng, 5, 40);
    if (!s.check().empty()) continue;
    const int64_t oh = s.out_height(), ow = s.out_width(), cg = s.channels / s.groups, fg = s.filters / s.groups;
    const std::vector<float> input = random_values(rng, size_t(s.batch * s.channels * s.height * s.width));
    const std::vector<float> weight = random_values(rng, size_t(s.filters * cg * s.kernel_h * s.kernel_w));
    const std::vector<float> bias = random_values(rng, size_t(s.filters));
    std::vector<double> expected(size_t(s.batch * s.filters * oh * ow)), bound(expected.size());
    for (int64_t n = 0; n < s.batch; ++n)
      for (int64_t f = 0; f < s.filters; ++f)
        for (int64_t y = 0; y < oh; ++y)
          for (int64_t x = 0; x < ow; ++x) {
            double sum = bias[f], magnitude = std::abs(bias[f]);
            for (int64_t c = 0; c < cg; ++c)
              for (int ky = 0; ky < s.kernel_h; ++ky)
                for (int kx = 0; kx < s.kernel_w; ++kx) {
                  const int64_t iy = y * s.stride_h + ky * s.dilate_h - s.pad_h, ix = x * s.stride_w + kx * s.dilate_w - s.pad_w;
                  if (iy < 0 || iy >= s.height || ix < 0 || ix >= s.width) continue;
                  const double term = double(input[((n * s.channels + f / fg * cg + c) * s.height + iy) * s.width + ix]) *
                                      weight[((f * cg + c) * s.kernel_h + ky) * s.kernel_w + kx];
                  sum += term, magnitude += std::abs(term);
                }
            const size_t at = size_t(((n * s.filters + f) * oh + y) * ow + x);
            expected[at] = sum, bound[at] = 1e-5 * magnitude + 1e-30;
          }
    std::vector<unsigned char> workspace(s.workspace_bytes() + 64);
    void* aligned = workspace.data() + (64 - reinterpret_cast<uintptr_t>(workspace.data()) % 64) % 64;
    for (Isa isa : isas) {
      binary_models::set_active_isa(isa);
      std::vector<float> got(expected.size());
      binary_models::float_conv(s, input.data(), weight.data(), bias.data(), got.data(), aligned);
      for (size_t k = 0; k < got.size() && ok; ++k)
        if (!(std::abs(got[k] - expected[k]) <= bound[k])) {
          std::fprintf(stderr, "FAIL: float_conv (%s) %ldx%ldx%ldx%ld -> %ld groups %d kernel %dx%d stride %dx%d "
                       "dilate %dx%d pad %dx%d: output %zu is %g, expected %g\n", binary_models::isa_name(isa),
                       long(s.batch), long(s.channels), long(s.height), long(s.width), long(s.filters), s.groups,
                       s.kernel_h, s.kernel_w, s.stride_h, s.stride_w, s.dilate_h, s.dilate_w, s.pad_h, s.pad_w, k,
                       got[k], expected[k]);
          ok = false;
        }
    }
  }
  binary_models::set_active_isa(active);
  return ok;
}

// conv_data_gradient and conv_weight_gradient (binary_conv2d_train's backward) on random stride-1 shapes
// (kernels 1..5, padding up to the kernel less one, pad values -1, 0, +1, filters past a column tile's rows; the
// weight gradient one image per pass or all at once) against double-precision sums of their definition, on every
// float micro-kernel: within 1e-5 of the sum of the terms' magnitudes.
bool conv_gradients_match_reference(std::mt19937& rng, const std::vector<Isa>& isas, int count) {
  const Isa active = binary_models::active_isa();
  bool ok = true;
  for (int i = 0; i < count && ok; ++i) {
    binary_models::FloatConvShape s;
    s.channels = uniform(rng, 1, 20), s.filters = uniform(rng, 1, 70);
    s.kernel_h = pick(rng, {1, 3, 5}), s.kernel_w = pick(rng, {1, 2, 3});
    s.pad_h = uniform(rng, 0, s.kernel_h - 1), s.pad_w = uniform(rng, 0, s.kernel_w - 1);
    s.batch = uniform(rng, 1, 3), s.height = uniform(rng, 5, 14), s.width = uniform(rng, 5, 30);
    const float pad_value = float(pick(rng, {-1, 0, 1}));
    const int64_t pass_floats = pick(rng, {1, int(binary_models::kGradientPassFloats)});  // 1: an image a pass
    if (!binary_models::check_gradient_shape(s).empty()) continue;
    const int64_t oh = s.out_height(), ow = s.out_width(), taps = s.kernel_h * s.kernel_w;
    const std::vector<float> input = random_values(rng, size_t(s.batch * s.channels * s.height * s.width));
    const std::vector<float> weight = random_values(rng, size_t(s.filters * s.channels * taps));
    const std::vector<float> d_output = random_values(rng, size_t(s.batch * s.filters * oh * ow));
    std::vector<double> d_input(input.size()), input_bound(input.size()), d_weight(weight.size()),
        weight_bound(weight.size());
    for (int64_t n = 0; n < s.batch; ++n)
      for (int64_t f = 0; f < s.filters; ++f)
        for (int64_t y = 0; y < oh; ++y)
          for (int64_t x = 0; x < ow; ++x)
            for (int64_t c = 0; c < s.channels; ++c)
              for (int ky = 0; ky < s.kernel_h; ++ky)
                for (int kx = 0; kx < s.kernel_w; ++kx) {
                  const int64_t iy = y + ky - s.pad_h, ix = x + kx - s.pad_w;
                  const bool inside = iy >= 0 && iy < s.height && ix >= 0 && ix < s.width;
                  const size_t in_at = size_t(((n * s.channels + c) * s.height + iy) * s.width + ix);
                  const size_t w_at = size_t((f * s.channels + c) * taps + ky * s.kernel_w + kx);
                  const double g = d_output[size_t(((n * s.filters + f) * oh + y) * ow + x)];
                  const double w_term = g * (inside ? input[in_at] : pad_value);
                  d_weight[w_at] += w_term, weight_bound[w_at] += std::abs(w_term);
                  if (inside) d_input[in_at] += g * weight[w_at], input_bound[in_at] += std::abs(g * weight[w_at]);
                }
    size_t bytes = 0;  // the weight gradient's layout depends on the micro-kernel
    for (Isa isa : isas) {
      binary_models::set_active_isa(isa);
      bytes = std::max({bytes, binary_models::conv_data_gradient_bytes(s),
                        binary_models::conv_weight_gradient_bytes(s, pass_floats)});
    }
    std::vector<unsigned char> workspace(bytes + 64);
    void* aligned = workspace.data() + (64 - reinterpret_cast<uintptr_t>(workspace.data()) % 64) % 64;
    for (Isa isa : isas) {
      binary_models::set_active_isa(isa);
      std::vector<float> got_input(input.size()), got_weight(weight.size());
      binary_models::conv_data_gradient(s, d_output.data(), weight.data(), got_input.data(), aligned);
      binary_models::conv_weight_gradient(s, input.data(), pad_value, d_output.data(), got_weight.data(), aligned,
                                          pass_floats);
      for (auto [got, expected, bound, what] : {std::make_tuple(&got_input, &d_input, &input_bound, "data"),
                                                std::make_tuple(&got_weight, &d_weight, &weight_bound, "weight")})
        for (size_t k = 0; k < got->size() && ok; ++k)
          if (!(std::abs((*got)[k] - (*expected)[k]) <= 1e-5 * (*bound)[k] + 1e-30)) {
            std::fprintf(stderr, "FAIL: conv %s gradient (%s, gemm %s) %ldx%ldx%ldx%ld -> %ld kernel %dx%d pad %dx%d "
                         "pad value %g: element %zu is %g, expected %g\n", what, binary_models::isa_name(isa),
                         binary_models::gemm_isa(), long(s.batch), long(s.channels), long(s.height), long(s.width),
                         long(s.filters), s.kernel_h, s.kernel_w, s.pad_h, s.pad_w, pad_value, k, (*got)[k],
                         (*expected)[k]);
            ok = false;
          }
    }
  }
  binary_models::set_active_isa(active);
  return ok;
}

// batch_norm_train and batch_norm_backward (plain_batch_norm, training) on random shapes against double
// precision: the statistics, the output and the three gradients, within 1e-4 of their scale.
bool batch_norm_matches_reference(std::mt19937& rng, int count) {
  bool ok = true;
  for (int i = 0; i < count && ok; ++i) {
    binary_models::NormShape s;
    s.batch = uniform(rng, 1, 4), s.channels = uniform(rng, 1, 9), s.pixels = uniform(rng, 1, 300);
    const size_t size = size_t(s.batch * s.channels * s.pixels);
    const std::vector<float> x = random_values(rng, size), d_out = random_values(rng, size);
    const std::vector<float> gamma = random_values(rng, size_t(s.channels)), beta = random_values(rng, size_t(s.channels));
    std::vector<float> out(size), d_x(size), mean(size_t(s.channels)), var(mean.size()), invstd(mean.size()),
        d_gamma(mean.size()), d_beta(mean.size());
    const float eps = 1e-3f;
    binary_models::batch_norm_train(s, x.data(), gamma.data(), beta.data(), eps, out.data(), mean.data(), var.data(),
                                    invstd.data());
    binary_models::batch_norm_backward(s, d_out.data(), x.data(), gamma.data(), mean.data(), invstd.data(), true,
                                       d_x.data(), d_gamma.data(), d_beta.data());
    const double count_c = double(s.batch * s.pixels);
    auto near = [&](double got, double expected, double scale, const char* what) {
      if (std::abs(got - expected) <= 1e-4 * scale + 1e-6) return true;
      std::fprintf(stderr, "FAIL: batch_norm %s: %g, expected %g (batch %ld, channels %ld, pixels %ld)\n", what, got,
                   expected, long(s.batch), long(s.channels), long(s.pixels));
      return false;
    };
    for (int64_t c = 0; c < s.channels && ok; ++c) {
      double sum = 0, squares = 0, g_sum = 0, g_dot = 0;
      auto at = [&](int64_t n, int64_t q) { return size_t((n * s.channels + c) * s.pixels + q); };
      for (int64_t n = 0; n < s.batch; ++n)
        for (int64_t q = 0; q < s.pixels; ++q) sum += x[at(n, q)];
      const double m = sum / count_c;
      for (int64_t n = 0; n < s.batch; ++n)
        for (int64_t q = 0; q < s.pixels; ++q) squares += (x[at(n, q)] - m) * (x[at(n, q)] - m);
      const double v = squares / count_c, inv = 1 / std::sqrt(v + eps);
      for (int64_t n = 0; n < s.batch; ++n)
        for (int64_t q = 0; q < s.pixels; ++q) g_sum += d_out[at(n, q)], g_dot += d_out[at(n, q)] * (x[at(n, q)] - m) * inv;
      ok = near(mean[c], m, 1, "mean") && near(var[c], v, v, "variance") && near(d_beta[c], g_sum, count_c, "d_beta") &&
           near(d_gamma[c], g_dot, count_c, "d_gamma");
      for (int64_t n = 0; n < s.batch && ok; ++n)
        for (int64_t q = 0; q < s.pixels && ok; ++q) {
          const double x_hat = (x[at(n, q)] - m) * inv;
          ok = near(out[at(n, q)], x_hat * gamma[c] + beta[c], 1 + std::abs(x_hat * gamma[c]), "output") &&
               near(d_x[at(n, q)], gamma[c] * inv * (d_out[at(n, q)] - g_sum / count_c - x_hat * g_dot / count_c),
                    std::abs(gamma[c]) * inv * 4, "d_x");
        }
    }
  }
  return ok;
}

bool check_refuses(ConvShape s, const char* what) {
  if (!s.check().empty()) return true;
  std::fprintf(stderr, "FAIL: ConvShape::check() accepted %s\n", what);
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  const int shapes = argc > 1 ? std::atoi(argv[1]) : 300;
  std::mt19937 rng(argc > 2 ? std::atoi(argv[2]) : 2024);
  std::vector<Isa> isas;  // kScalar first: the others are compared with it
  std::string ran, skipped;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Emulated, Isa::kNeon, Isa::kNeonDot}) {
    std::string& list = binary_models::isa_supported(isa) ? ran : skipped;
    list += std::string(list.empty() ? "" : ", ") + binary_models::isa_name(isa);
    if (binary_models::isa_supported(isa)) isas.push_back(isa);
  }

  bool ok = dispatch_is_right() && norm_pool_treats_non_finite_as_mxnet();
  ConvShape base;
  base.in_channels = base.out_channels = base.height = base.width = 8;
  base.kernel_h = base.kernel_w = 3;
  ConvShape bad = base;
  bad.kernel_h = binary_models::kMaxKernel + 2;
  ok &= check_refuses(bad, "a too large kernel");
  bad = base;
  bad.stride_w = 0;
  ok &= check_refuses(bad, "stride 0");
  bad = base;
  bad.groups = 3;
  ok &= check_refuses(bad, "channels that are not a multiple of the groups");
  bad = base;
  bad.height = 2;
  ok &= check_refuses(bad, "a kernel larger than the input");
  binary_models::DenseStageShape stage;
  stage.in_channels = stage.height = stage.width = 8;
  stage.units = "D";
  ok &= check(stage.check().empty(), "a 3x3 dense stage is supported");
  stage.kernel = 2;
  ok &= check(!stage.check().empty(), "a dense stage's unit keeps the size: an even kernel is refused");

  // The shapes of the models (14x14x256 -> 64 etc.) and a dense layer, then random ones.
  std::vector<ConvShape> cases;
  for (int channels : {64, 160, 256, 320, 576}) {
    ConvShape s = base;
    s.in_channels = channels;
    s.out_channels = 64;
    s.height = s.width = 9;
    s.pad_h = s.pad_w = 1;
    cases.push_back(s);
  }
  cases.push_back(binary_models::dense_shape(3, 1000, 37));
  for (int i = 0; i < shapes; ++i) cases.push_back(random_shape(rng));

  ok = ok && norm_pool_matches_reference(rng, isas);
  const int float_convs = std::max(10, shapes / 5);
  ok = ok && float_conv_matches_reference(rng, isas, float_convs);
  ok = ok && conv_gradients_match_reference(rng, isas, float_convs);
  ok = ok && batch_norm_matches_reference(rng, float_convs);
  for (const ConvShape& s : cases) ok = ok && run_shape(s, rng, isas);
  const int stages = std::max(4, shapes / 10);
  for (int i = 0; i < stages; ++i) ok = ok && dense_stage_is_right(rng, isas);
  std::printf("%s: %zu shapes x {%s} x {unscaled, scaled, folded BN}, %d dense stages, norm_pool, %d float convs "
              "and their gradients, batch norms\n",
              ok ? "ok" : "FAILED", cases.size(), ran.c_str(), stages, float_convs);
  if (!skipped.empty()) std::printf("skipped (not supported by this CPU or OS): %s\n", skipped.c_str());
  return ok ? 0 : 1;
}
