// Run-time dispatch: the kernels' instruction sets, which ones this CPU and OS allow, and the kernels of
// each (isa.cc).
#pragma once

#include <cstdint>
#include <string>

namespace binary_models {

// The kernels' instruction sets. kAvx512Emulated is the AVX-512 kernels' source compiled for any x86-64
// (plain vector code, a portable popcount): it tests their logic where AVX-512 is missing.
enum class Isa { kAuto, kScalar, kAvx2, kAvx512, kAvx512Emulated };

// An ISA is supported when the CPU has its instructions (CPUID) and the OS saves its registers (XCR0);
// kScalar and kAvx512Emulated always are.
bool isa_supported(Isa isa);
Isa best_isa();    // kAvx512, else kAvx2, else kScalar: the best supported
Isa active_isa();  // what kAuto runs: best_isa(), or what BINARY_MODELS_ISA names (read on first use)
bool set_active_isa(Isa isa);  // false, changing nothing, when `isa` is not supported
const char* isa_name(Isa isa);  // "scalar", "avx2", "avx512", "avx512-emulated" ("auto")
bool isa_from_name(const std::string& name, Isa* isa);

// The CPUID and XCR0 bits dispatch looks at (leaf 1 ECX, leaf 7 subleaf 0 EBX and ECX; XCR0 is 0 when
// the OS has not enabled XSAVE).
struct CpuBits {
  uint32_t leaf1_ecx = 0, leaf7_ebx = 0, leaf7_ecx = 0;
  uint64_t xcr0 = 0;
};

CpuBits read_cpu_bits();
// Whether a CPU and OS with these bits can run `isa`'s kernels (kAuto, kScalar, kAvx512Emulated: always).
bool isa_allowed(Isa isa, const CpuBits& bits);

struct KernelSet;  // microkernels.h
// The kernels of `isa` when supported, else of active_isa().
const KernelSet& kernels_for(Isa isa);

}  // namespace binary_models
