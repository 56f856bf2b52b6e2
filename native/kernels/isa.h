// Run-time dispatch: the kernels' instruction sets, which ones this CPU and OS allow, and the kernels of
// each (isa.cc). The library compiles on any architecture; the kernels of another architecture's ISAs are
// absent from it and never supported.
#pragma once

#include <cstdint>
#include <string>

namespace binary_models {

// The kernels' instruction sets. x86-64: kAvx2, kAvx512, and kAvx512Emulated, the AVX-512 kernels' source
// compiled for any x86-64 (plain vector code, a portable popcount), which tests their logic where AVX-512
// is missing. aarch64: kNeon (Advanced SIMD, every ARMv8-A) and kNeonDot (the same with the ARMv8.2 dot
// product, UDOT, for the sums). kScalar: portable C++, everywhere.
enum class Isa { kAuto, kScalar, kAvx2, kAvx512, kAvx512Emulated, kNeon, kNeonDot };

// An ISA is supported when this library has its kernels, the CPU its instructions and the OS saves its
// registers; kScalar always is.
bool isa_supported(Isa isa);
Isa best_isa();    // the fastest supported: kAvx512, else kAvx2 (x86-64); kNeonDot, else kNeon (aarch64); kScalar
Isa active_isa();  // what kAuto runs: best_isa(), or what BINARY_MODELS_ISA names (read on first use)
bool set_active_isa(Isa isa);  // false, changing nothing, when `isa` is not supported
// "scalar", "avx2", "avx512", "avx512-emulated", "neon", "neon-dot" ("auto").
const char* isa_name(Isa isa);
bool isa_from_name(const std::string& name, Isa* isa);

// What dispatch reads from the machine. x86-64: CPUID leaf 1 ECX, leaf 7 subleaf 0 EBX and ECX, and XCR0
// (0 when the OS has not enabled XSAVE). aarch64: the kernel's hardware capabilities, getauxval(AT_HWCAP)
// (Linux lists the same as "Features" in /proc/cpuinfo).
struct CpuBits {
  enum class Arch { kOther, kX86_64, kAarch64 };
  Arch arch = Arch::kOther;
  uint32_t leaf1_ecx = 0, leaf7_ebx = 0, leaf7_ecx = 0;
  uint64_t xcr0 = 0;
  uint64_t hwcap = 0;
};

CpuBits read_cpu_bits();  // of this machine (arch: the one this library is compiled for)
// Whether a machine with these bits can run `isa`'s kernels (kAuto, kScalar: always).
bool isa_allowed(Isa isa, const CpuBits& bits);

struct KernelSet;  // microkernels.h
// The kernels of `isa` when supported, else of active_isa().
const KernelSet& kernels_for(Isa isa);

}  // namespace binary_models
