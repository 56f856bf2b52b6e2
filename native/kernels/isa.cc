// Run-time dispatch. x86-64: CPUID says what the CPU has, XCR0 (xgetbv) whether the OS saves the ymm/zmm
// state on context switches; without both, AVX2 / AVX-512 code would fault. aarch64: the hardware
// capabilities the kernel reports (AT_HWCAP), which is what the OS lets user space run. BINARY_MODELS_ISA
// picks another supported ISA; a name that is unknown or not supported here is reported on stderr, and
// the best runs.
#include "isa.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "microkernels.h"

#if defined(__x86_64__)
#include <cpuid.h>
#elif defined(__aarch64__)
#include <sys/auxv.h>
#endif

namespace binary_models {
namespace {

constexpr uint32_t kPopcnt = 1u << 23, kOsxsave = 1u << 27;                      // leaf 1 ECX
constexpr uint32_t kAvx2 = 1u << 5, kBmi2 = 1u << 8, kAvx512F = 1u << 16,        // leaf 7 EBX
    kAvx512Bw = 1u << 30, kAvx512Vl = 1u << 31;
constexpr uint32_t kAvx512Vpopcntdq = 1u << 14;                                   // leaf 7 ECX
constexpr uint64_t kYmmState = 0x6, kZmmState = 0xe6;  // XCR0: SSE + AVX; and opmask, ZMM_Hi256, Hi16_ZMM
constexpr uint64_t kHwcapAsimd = 1u << 1, kHwcapAsimdDp = 1u << 20;  // Linux's asm/hwcap.h (arm64)

bool has(uint64_t bits, uint64_t wanted) { return (bits & wanted) == wanted; }

// Indexed by Isa: its name, and what it needs (for the message when it is missing).
const char* const kNames[] = {"auto", "scalar", "avx2", "avx512", "avx512-emulated", "neon", "neon-dot"};
const char* const kNeeds[] = {"", "", "AVX2 + POPCNT with the OS's ymm state",
                              "AVX-512 F/BW/VL + VPOPCNTDQ with the OS's zmm state", "an x86-64 CPU",
                              "an aarch64 CPU with Advanced SIMD", "an aarch64 CPU with the dot product (asimddp)"};
constexpr int kIsas = int(sizeof kNames / sizeof *kNames);

Isa requested_or_best() {
  const Isa best = best_isa();
  const char* requested = std::getenv("BINARY_MODELS_ISA");
  if (!requested || !*requested) return best;
  Isa isa;
  if (!isa_from_name(requested, &isa)) {
    std::string known;
    for (const char* name : kNames) known += std::string(known.empty() ? "" : ", ") + name;
    std::fprintf(stderr, "binary_models: BINARY_MODELS_ISA=%s is unknown (known: %s); running %s\n", requested,
                 known.c_str(), isa_name(best));
    return best;
  }
  if (isa == Isa::kAuto) return best;
  if (!isa_supported(isa)) {
    std::fprintf(stderr, "binary_models: BINARY_MODELS_ISA=%s asks for %s, which this CPU or OS lacks; running %s\n",
                 requested, kNeeds[int(isa)], isa_name(best));
    return best;
  }
  return isa;
}

std::atomic<Isa>& active() {
  static std::atomic<Isa> isa{requested_or_best()};
  return isa;
}

}  // namespace

CpuBits read_cpu_bits() {
  CpuBits bits;
#if defined(__x86_64__)
  bits.arch = CpuBits::Arch::kX86_64;
  unsigned a, b, c, d;
  if (__get_cpuid(1, &a, &b, &c, &d)) bits.leaf1_ecx = c;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    bits.leaf7_ebx = b;
    bits.leaf7_ecx = c;
  }
  if (has(bits.leaf1_ecx, kOsxsave)) {  // else xgetbv itself is an illegal instruction
    uint32_t low, high;
    __asm__ volatile("xgetbv" : "=a"(low), "=d"(high) : "c"(0));
    bits.xcr0 = uint64_t(high) << 32 | low;
  }
#elif defined(__aarch64__)
  bits.arch = CpuBits::Arch::kAarch64;
  bits.hwcap = getauxval(AT_HWCAP);
#endif
  return bits;
}

bool isa_allowed(Isa isa, const CpuBits& bits) {
  const bool x86 = bits.arch == CpuBits::Arch::kX86_64, arm = bits.arch == CpuBits::Arch::kAarch64;
  const bool avx2 = x86 && has(bits.leaf1_ecx, kPopcnt | kOsxsave) && has(bits.leaf7_ebx, kAvx2) &&
                    (bits.xcr0 & kYmmState) == kYmmState;
  switch (isa) {
    case Isa::kAuto:  // the best of the others
    case Isa::kScalar:
      return true;
    case Isa::kAvx512Emulated:
      return x86;
    case Isa::kAvx2:
      return avx2;
    case Isa::kAvx512:
      return avx2 && has(bits.leaf7_ebx, kBmi2 | kAvx512F | kAvx512Bw | kAvx512Vl) &&
             has(bits.leaf7_ecx, kAvx512Vpopcntdq) && (bits.xcr0 & kZmmState) == kZmmState;
    case Isa::kNeon:
      return arm && has(bits.hwcap, kHwcapAsimd);
    case Isa::kNeonDot:
      return arm && has(bits.hwcap, kHwcapAsimd | kHwcapAsimdDp);
    default:
      return false;
  }
}

bool isa_supported(Isa isa) {
  static const CpuBits bits = read_cpu_bits();
  return isa_allowed(isa, bits);
}

Isa best_isa() {
  static const Isa best = [] {
    for (Isa isa : {Isa::kAvx512, Isa::kAvx2, Isa::kNeonDot, Isa::kNeon})  // fastest first
      if (isa_supported(isa)) return isa;
    return Isa::kScalar;
  }();
  return best;
}

Isa active_isa() { return active().load(std::memory_order_relaxed); }

bool set_active_isa(Isa isa) {
  if (isa == Isa::kAuto) isa = best_isa();
  if (!isa_supported(isa)) return false;
  active().store(isa, std::memory_order_relaxed);
  return true;
}

const char* isa_name(Isa isa) { return kNames[int(isa)]; }

bool isa_from_name(const std::string& name, Isa* isa) {
  for (int i = 0; i < kIsas; ++i)
    if (name == kNames[i]) {
      *isa = Isa(i);
      return true;
    }
  return false;
}

const KernelSet& kernels_for(Isa isa) {
  if (isa == Isa::kAuto || !isa_supported(isa)) isa = active_isa();
  switch (isa) {
#if defined(__x86_64__)
    case Isa::kAvx512:
      return avx512_kernels();
    case Isa::kAvx2:
      return avx2_kernels();
    case Isa::kAvx512Emulated:
      return avx512_emulated_kernels();
#elif defined(__aarch64__)
    case Isa::kNeon:
      return neon_kernels();
    case Isa::kNeonDot:
      return neon_dot_kernels();
#endif
    default:
      return scalar_kernels();
  }
}

}  // namespace binary_models
