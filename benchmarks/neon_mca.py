"""The NEON micro-kernel's inner loop, simulated by llvm-mca (no ARM hardware needed): binary MACs per cycle
on the Neoverse N1 (Graviton2, Ampere Altra; the Cortex-A76 class) and Cortex-A72 (Raspberry Pi 4) models.

    python benchmarks/neon_mca.py [--mca llvm-mca-19] [--cxx aarch64-linux-gnu-g++] [--iterations 1000]

It compiles native/kernels/microkernel_neon.cc and microkernel_neon_dot.cc with the cross compiler and the
library's optimization flags, takes the innermost loop of xor_popcount_block (the loop with the cnt
instructions) from the assembly, and runs llvm-mca on it for each CPU model. One iteration handles one
64-bit reduction word of 8 pixels x 4 output channels; each cnt counts 128 bits, so binary MACs per
iteration = 128 x the loop's cnt instructions (found in the code, not assumed), and per cycle = that /
the simulated cycles per iteration. Numbers are SIMULATED by llvm-mca's scheduling models, not measured.

Goal (issue 22): at least 80 binary MACs/cycle on the N1 model. Reference points from issue 22, measured
with the same tool and model: Larq Compute Engine's 4x4 aarch64 bgemm loop 78.7; the eor + cnt + accumulate
bound 85.3 (3 vector instructions per 128 bits on two vector pipes); fp32 NEON FMA peak 8.0 MACs/cycle.
Needs LLVM 19 or newer (its N1 model): /work/shared/arm64/setup_arm64.sh --mca installs llvm-19.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERNELS = os.path.join(ROOT, "native", "kernels")
CXXFLAGS = ["-std=c++17", "-O3", "-fPIC"]  # native/Makefile's optimization flags (OpenMP plays no part here)
VARIANTS = (("neon", "microkernel_neon.cc", False), ("neon-dot", "microkernel_neon_dot.cc", True))
CPUS = (("neoverse-n1", True), ("cortex-a72", False))  # (llvm-mca model, has the dot product)
REFERENCES = (("Larq Compute Engine 4x4 bgemm loop (issue 22, N1 model)", 78.7),
              ("eor + cnt + accumulate bound (3 vector instructions / 128 bits, 2 pipes)", 128 / 1.5))
BRANCH = re.compile(r"^\s*(b\.\w+|bne|beq|blt|bgt|ble|bge|bhi|blo|bls|bhs|cbnz|cbz|tbnz|tbz)\b.*?(\.L\w+)\s*$")


def inner_loop(assembly, function="xor_popcount_block"):
    """The instructions of the innermost loop with the most cnt instructions in ``function``'s assembly: from
    a label to the branch back to it (directives and labels dropped)."""
    start = next(i for i, line in enumerate(assembly) if function in line and line.rstrip().endswith(":"))
    end = next(i for i in range(start, len(assembly)) if assembly[i].lstrip().startswith(".size"))
    body = assembly[start:end]
    best = []

    def rank(loop):  # most cnt, then fewest instructions (an outer loop holds the inner one's cnt too)
        return sum(line.startswith("cnt") for line in loop), -len(loop)

    for i, line in enumerate(body):
        label = re.match(r"^(\.L\w+):", line)
        if not label:
            continue
        for j in range(i + 1, len(body)):
            branch = BRANCH.match(body[j])
            if branch and branch.group(2) == label.group(1):
                loop = [l.strip() for l in body[i + 1:j + 1] if l.strip() and not l.lstrip().startswith(".")
                        and not re.match(r"^\.L\w+:", l)]
                if rank(loop) > rank(best):
                    best = loop
                break
    if not best:
        raise SystemExit("no loop with cnt instructions found in %s" % function)
    return best


def simulate(mca, loop, cpu, iterations):
    """Cycles per iteration of ``loop`` on llvm-mca's model of ``cpu``."""
    with tempfile.NamedTemporaryFile("w", suffix=".s", delete=False) as f:
        f.write("\n".join(loop) + "\n")
    try:
        out = subprocess.run([mca, "-mtriple=aarch64", "-mcpu=" + cpu, "-iterations=%d" % iterations, f.name],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    finally:
        os.unlink(f.name)
    if out.returncode != 0:
        raise SystemExit("%s failed for -mcpu=%s:\n%s" % (mca, cpu, out.stdout[-2000:]))
    cycles = int(re.search(r"Total Cycles:\s+(\d+)", out.stdout).group(1))
    return cycles / iterations


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mca", default="llvm-mca-19", help="llvm-mca of LLVM 19 or newer")
    parser.add_argument("--cxx", default="aarch64-linux-gnu-g++", help="the aarch64 cross compiler")
    parser.add_argument("--iterations", type=int, default=1000)
    args = parser.parse_args()
    for tool, hint in ((args.mca, "setup_arm64.sh --mca installs llvm-19"),
                       (args.cxx, "apt-get install g++-aarch64-linux-gnu")):
        if shutil.which(tool) is None:
            sys.exit("error: %s is not installed (%s)" % (tool, hint))
    version = subprocess.run([args.mca, "--version"], stdout=subprocess.PIPE, universal_newlines=True).stdout
    compiler = subprocess.run([args.cxx, "--version"], stdout=subprocess.PIPE, universal_newlines=True).stdout
    print("SIMULATED by llvm-mca (%s), not measured on ARM hardware; code from %s"
          % (re.search(r"version [\d.]+", version).group(0), compiler.splitlines()[0]))
    print("| kernel | CPU model | instructions / iteration | cnt | cycles / iteration | binary MACs / cycle |")
    print("|---|---|---|---|---|---|")
    for isa, source, needs_dot in VARIANTS:
        with tempfile.TemporaryDirectory() as tmp:
            asm = os.path.join(tmp, "kernel.s")
            subprocess.run([args.cxx] + CXXFLAGS + ["-S", os.path.join(KERNELS, source), "-o", asm], check=True)
            with open(asm) as f:
                loop = inner_loop(f.read().splitlines())
        counted = sum(line.startswith("cnt") for line in loop)
        for cpu, has_dot in CPUS:
            if needs_dot and not has_dot:
                print("| %s | %s | - | - | - | (no dot product) |" % (isa, cpu))
                continue
            cycles = simulate(args.mca, loop, cpu, args.iterations)
            print("| %s | %s | %d | %d | %.2f | %.1f |" % (isa, cpu, len(loop), counted, cycles,
                                                            128 * counted / cycles))
    print("\nreferences: " + "; ".join("%s %.1f" % reference for reference in REFERENCES))


if __name__ == "__main__":
    main()
