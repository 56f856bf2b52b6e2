"""What the benchmarks share: timing, one worker process per thread count, and result tables.

MXNet's oneDNN and the native library use the same OpenMP runtime (libgomp), which reads
``OMP_NUM_THREADS`` when a process starts; so each thread count is measured in its own process.
"""
import argparse
import ctypes
import json
import os
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def cpu_model():
    """The CPU model name, family and model (as ``lscpu`` prints them) from /proc/cpuinfo."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if not line.strip():
                    break  # the first processor is enough
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    if "model name" not in fields:
        return "unknown CPU"
    return "%s (family %s model %s)" % (fields["model name"], fields.get("cpu family", "?"), fields.get("model", "?"))


def native_isa():
    """The instruction set the native kernels run here (BINARY_MODELS_ISA honoured), asked of the built library
    through ctypes, without importing MXNet; None when the library is not built."""
    path = os.environ.get("BINARY_MODELS_NATIVE_LIB") or os.path.join(REPO, "native", "build",
                                                                         "libbinary_models_native.so")
    try:
        function = ctypes.CDLL(path).binary_models_isa
    except (OSError, AttributeError):
        return None
    function.restype = ctypes.c_char_p
    return function().decode()


def machine():
    """The CPU model, the number of logical CPUs and the native kernels' instruction set."""
    isa = native_isa()
    return "%s, %d logical CPUs%s" % (cpu_model(), os.cpu_count(), ", native kernels: %s" % isa if isa else "")


def timings(run, wait, repeat, warmup=3):
    """``run()`` followed by ``wait()``, ``repeat`` times after ``warmup`` calls: {"ms": (best, median) wall
    milliseconds, "cpu_ms": (best, median) of the process's CPU time}. On a shared machine the CPU time of a
    one-thread run leaves out the time other processes hold the core, which the wall clock counts."""
    for _ in range(warmup):
        run()
        wait()
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        wait()
        wall.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.process_time() - start_cpu) * 1e3)
    return {"ms": [float(np.min(wall)), float(np.median(wall))], "cpu_ms": [float(np.min(cpu)), float(np.median(cpu))]}


def time_ms(run, wait, repeat):
    """(best, median) wall milliseconds of ``run()`` followed by ``wait()``, over ``repeat`` samples after
    three warm-up calls."""
    return tuple(timings(run, wait, repeat)["ms"])


def parse_arguments(doc, repeat, **options):
    """The options of every benchmark (--threads, --repeat, --json, and --worker for its worker processes),
    plus ``options``: name -> keyword arguments of ``add_argument``."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default 1 2)")
    parser.add_argument("--repeat", type=int, default=repeat, help="timed samples (default %d)" % repeat)
    parser.add_argument("--rounds", type=int, default=1, help="measure every thread count this many times, in "
                        "turn, and keep the best (default 1; more on a shared machine)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for name, kwargs in options.items():
        parser.add_argument("--" + name, **kwargs)
    return parser.parse_args()


# What --isa holds oneDNN to, per kernel ISA of this project (oneDNN's names; MXNet 1.9.1 bundles oneDNN 2.x,
# which reads ONEDNN_MAX_CPU_ISA, and DNNL_MAX_CPU_ISA in older builds, once, when libmxnet.so loads).
ONEDNN_ISA = {"scalar": "SSE41", "avx512-emulated": "SSE41", "avx2": "AVX2", "avx512": "AVX512_CORE",
              "neon": "ALL", "neon-dot": "ALL"}


def isa_environment(isa):
    """The environment that holds a worker process to ``isa``: this project's kernels (BINARY_MODELS_ISA)
    and oneDNN (ONEDNN_MAX_CPU_ISA); {} for None (each picks its best)."""
    if isa is None:
        return {}
    return {"BINARY_MODELS_ISA": isa, "ONEDNN_MAX_CPU_ISA": ONEDNN_ISA[isa], "DNNL_MAX_CPU_ISA": ONEDNN_ISA[isa]}


def load_average():
    """The 1-minute load average (what else ran while measuring), or None where the OS does not say."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def per_thread_count(script, threads, worker_args, rounds=1, isas=(None,)):
    """Run ``script --worker ...worker_args`` once per ISA (``isa_environment``) and thread count with
    OMP_NUM_THREADS set, ``rounds`` times in turn; returns the rows the workers printed as JSON, with their
    thread count, ISA (None: the default) and the highest load average seen. Every timing is a (best,
    median) pair: over rounds, the best of the bests and the median of the medians are kept."""
    measured, load = {}, {}
    for _ in range(rounds):
        for isa in isas:
            for count in threads:
                env = dict(os.environ, OMP_NUM_THREADS=str(count), MXNET_CPU_WORKER_NTHREADS="1", **isa_environment(isa))
                before = load_average()
                out = subprocess.run([sys.executable, script, "--worker"] + worker_args, env=env, check=True,
                                     stdout=subprocess.PIPE, universal_newlines=True).stdout
                seen = [v for v in (before, load_average(), load.get((isa, count))) if v is not None]
                load[(isa, count)] = max(seen) if seen else None
                for index, line in enumerate(l for l in out.splitlines() if l.startswith("{")):
                    measured.setdefault((isas.index(isa), count, index), []).append(json.loads(line))
    rows = []
    for (isa_index, count, _), samples in sorted(measured.items()):
        isa = isas[isa_index]
        row = dict(samples[0], threads=count, isa=isa, load=load[(isa, count)])
        for key, value in row.items():
            if isinstance(value, list):
                row[key] = [min(s[key][0] for s in samples), float(np.median([s[key][1] for s in samples]))]
        rows.append(row)
    return rows


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def report(title, header, rows, results, json_file):
    """Print the table (and the machine), and write ``results`` to ``json_file`` when given."""
    print("%s on %s\n" % (title, machine()))
    print(markdown_table(header, rows))
    if json_file:
        with open(json_file, "w") as f:
            json.dump(dict(machine=machine(), results=results), f, indent=1)
