// Run-time dispatch internals: which ISAs the CPU and OS allow, and the kernels of each. The public
// functions (isa_supported, active_isa, ...) are declared in binary_conv.h.
#pragma once

#include <cstdint>

#include "binary_conv.h"
#include "microkernels.h"

namespace binary_models {

// The CPUID and XCR0 bits dispatch looks at (leaf 1 ECX, leaf 7 subleaf 0 EBX and ECX; XCR0 is 0 when
// the OS has not enabled XSAVE).
struct CpuBits {
  uint32_t leaf1_ecx = 0, leaf7_ebx = 0, leaf7_ecx = 0;
  uint64_t xcr0 = 0;
};

CpuBits read_cpu_bits();
// Whether a CPU and OS with these bits can run `isa`'s kernels (kAuto, kScalar, kAvx512Emulated: always).
bool isa_allowed(Isa isa, const CpuBits& bits);
// The kernels of `isa` when supported, else of active_isa().
const KernelSet& kernels_for(Isa isa);

}  // namespace binary_models
