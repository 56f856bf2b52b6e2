"""bm-run (the runtime without MXNet) against bm-predict (MXNet's C API) and GluonCV's float resnet18_v1, at 1
and 2 threads: ms per image at batch 1, the ratios bm-run / bm-predict, each / resnet18_v1 and each thread count /
1 thread, the peak resident memory of each process, and the size of each program plus the libraries it links
outside the system.

    python benchmarks/bench_runtime.py --models meliusnet22 binary_densenet28 --size 224 --repeat 20 --rounds 5

Models have random weights (speed does not depend on them); each measurement is its own process. On a shared
machine the rounds interleave: each round runs every program at every thread count once, in turn, so that
load from elsewhere falls on all of them alike; a figure is the median over rounds of each process's median of
--repeat passes, and the ratios compare figures of the same run. The load average seen is printed with them.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

from harness import REPO, load_average, markdown_table, machine, parse_arguments

BM_RUN = os.path.join(REPO, "deploy", "build", "bm-run")
LIBRARY = os.path.join(REPO, "deploy", "build", "libbm_runtime.so")
BM_PREDICT = os.path.join(REPO, "deploy", "build", "bm-predict")


def peak_mb(command, env):
    """(peak resident MB, CPU seconds) of ``command`` (wait4's rusage of that process and its children)."""
    pid = os.fork()
    if pid == 0:
        os.execvpe(command[0], command, env)
    _, status, usage = os.wait4(pid, 0)
    if status:
        raise SystemExit("%s failed (status %d)" % (" ".join(command), status))
    return usage.ru_maxrss / 1024.0, usage.ru_utime + usage.ru_stime


def footprint_mb(program):
    """The program plus the libraries it links from outside /lib and /usr/lib, in MB."""
    total = os.path.getsize(program)
    out = subprocess.run(["ldd", program], stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
    for path in re.findall(r"=> (\S+)", out):
        if not path.startswith(("/lib/", "/lib64/", "/usr/lib/")):
            total += os.path.getsize(os.path.realpath(path))
    return total / 1e6


def prepare(models, size, folder):
    """Packed models and an image, made in a child process (MXNet stays out of this one)."""
    script = """
import sys, cv2, numpy as np, mxnet as mx
import binary_models as bm
from binary_models.inference.convert import convert, save_packed
size, folder = int(sys.argv[1]), sys.argv[2]
for name in sys.argv[3:]:
    net = bm.get_model(name)
    net.initialize(mx.init.Xavier(magnitude=2))
    net(mx.nd.zeros((1, 3, size, size)))
    save_packed(convert(net), folder + "/" + name, input_shape=(1, 3, size, size))
pixels = np.random.RandomState(0).randint(0, 256, (size * 8 // 7 + 1, size * 8 // 7 + 1, 3)).astype(np.uint8)
cv2.imwrite(folder + "/image.png", cv2.GaussianBlur(pixels, (7, 7), 3))
"""
    subprocess.run([sys.executable, "-c", script, str(size), folder] + models, check=True, stdout=subprocess.DEVNULL)


def gluoncv_ms(name, size, threads, repeat):
    """(median ms, peak MB) of GluonCV's float model, hybridized, batch 1, in its own process."""
    script = """
import sys, time, json, numpy as np, mxnet as mx
from gluoncv import model_zoo
net = model_zoo.get_model(sys.argv[1]); net.initialize(); net.hybridize(static_alloc=True, static_shape=True)
x = mx.nd.zeros((1, 3, int(sys.argv[2]), int(sys.argv[2])))
for _ in range(3): net(x).wait_to_read()
t = []
for _ in range(int(sys.argv[3])):
    s = time.perf_counter(); net(x).wait_to_read(); t.append((time.perf_counter() - s) * 1e3)
open(sys.argv[4], "w").write(json.dumps(float(np.median(t))))
"""
    with tempfile.NamedTemporaryFile(suffix=".json") as result:
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MXNET_CPU_WORKER_NTHREADS="1")
        mb, _ = peak_mb([sys.executable, "-c", script, name, str(size), str(repeat), result.name], env)
        return json.load(open(result.name)), mb, None


def program_ms(program, prefix, image, threads, repeat):
    """(median ms, peak MB, CPU ms) of one forward pass of bm-run or bm-predict: their own median of --repeat,
    and at one thread the CPU time a pass takes (the process's CPU time for --repeat passes less that for one,
    over repeat - 1: what a shared machine's other work does not inflate, unlike the wall clock)."""
    def once(passes):
        with tempfile.NamedTemporaryFile(suffix=".json") as result:
            env = dict(os.environ, OMP_NUM_THREADS=str(threads))
            command = "%s --json --repeat %d %s %s > %s" % (program, passes, prefix, image, result.name)
            mb, cpu = peak_mb(["/bin/sh", "-c", command], env)
            return json.load(open(result.name))[0]["latency_ms"]["forward"], mb, cpu

    ms, mb, cpu = once(repeat)
    cpu_ms = (cpu - once(1)[2]) / (repeat - 1) * 1e3 if threads == 1 and repeat > 1 else None
    return ms, mb, cpu_ms


def paired_scaling(prefix, size, threads, pairs):
    """The median over ``pairs`` of (ms at ``threads`` threads / ms at 1 thread) of the C API (libbm_runtime.so
    through ctypes) in one process, the two runs of a pair back to back: on a machine whose speed drifts (a
    virtual machine, turbo that depends on what else runs) both sides of a ratio see the same state, which
    separate processes do not. The process waits as bm-run does (GOMP_SPINCOUNT=1000 unless the caller chose)."""
    script = """
import ctypes, sys, time
import numpy as np
library, prefix, size, threads, pairs = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
bm = ctypes.CDLL(library)
model = ctypes.c_void_p()
assert bm.bm_model_load(prefix, ctypes.byref(model)) == 0
image = np.random.RandomState(0).standard_normal((1, 3, size, size)).astype(np.float32)
shape = (ctypes.c_int64 * 4)(1, 3, size, size)
def ms(count):
    bm.bm_model_set_threads(model, count)
    start = time.perf_counter()
    assert bm.bm_model_run(model, image.ctypes.data_as(ctypes.c_void_p), shape) == 0
    return (time.perf_counter() - start) * 1e3
for count in (1, threads, 1, threads):
    ms(count)
print(float(np.median([ms(threads) / ms(1) for _ in range(pairs)])))
"""
    env = dict(os.environ)
    if "OMP_WAIT_POLICY" not in env and "GOMP_SPINCOUNT" not in env:
        env["GOMP_SPINCOUNT"] = "1000"
    out = subprocess.run([sys.executable, "-c", script, LIBRARY, prefix, str(size), str(threads), str(pairs)],
                         env=env, stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
    return float(out)


def main():
    args = parse_arguments(__doc__, repeat=20, models=dict(nargs="+", default=["meliusnet22", "binary_densenet28"]),
                           size=dict(type=int, default=224))
    folder = tempfile.mkdtemp(prefix="bench-runtime-")
    prepare(args.models, args.size, folder)
    image = os.path.join(folder, "image.png")
    runs = {}  # (model, kind, threads) -> a function measuring (ms, peak MB) once
    for threads in args.threads:
        for name in args.models:
            for kind, program in (("bm-run", BM_RUN), ("bm-predict", BM_PREDICT)):
                runs[(name, kind, threads)] = (lambda p=program, n=name, t=threads:
                                               program_ms(p, os.path.join(folder, n), image, t, args.repeat))
        runs[("resnet18_v1", "GluonCV float", threads)] = (lambda t=threads:
                                                           gluoncv_ms("resnet18_v1", args.size, t, args.repeat))
    samples, loads = {key: [] for key in runs}, []
    for _ in range(args.rounds):
        for key, measure in runs.items():
            loads.append(load_average())
            samples[key].append(measure())
    ms = {key: float(np.median([s[0] for s in v])) for key, v in samples.items()}
    cpu_ms = {key: float(np.median([s[2] for s in v])) for key, v in samples.items() if v[0][2] is not None}
    results, rows = [], []
    for (model, kind, threads), value in ms.items():
        base = ms[(model, kind, min(args.threads))]
        versus_predict = ms.get((model, "bm-predict", threads)) if kind == "bm-run" else None
        versus_float = ms[("resnet18_v1", "GluonCV float", threads)]
        peak = min(s[1] for s in samples[(model, kind, threads)])
        cpu = cpu_ms.get((model, kind, threads))
        cpu_predict = cpu_ms.get((model, "bm-predict", threads)) if kind == "bm-run" else None
        results.append(dict(model=model, kind=kind, threads=threads, ms=value, peak_mb=peak, cpu_ms=cpu,
                            vs_bm_predict=value / versus_predict if versus_predict else None,
                            vs_resnet18_v1=value / versus_float, vs_fewest_threads=value / base))
        rows.append([model, kind, threads, "%.2f" % value, "%.2fx" % (value / base),
                     "%.2fx" % (value / versus_predict) if versus_predict else "", "%.2fx" % (value / versus_float),
                     "%.2f" % cpu if cpu else "", "%.2fx" % (cpu / cpu_predict) if cpu and cpu_predict else "",
                     "%.0f" % peak])
    seen = [load for load in loads if load is not None]
    print("Batch 1, %dx%d, median ms per image over %d interleaved rounds (each the median of %d passes) on %s; "
          "load average %s\n" % (args.size, args.size, args.rounds, args.repeat, machine(),
                                  "%.1f-%.1f" % (min(seen), max(seen)) if seen else "unknown"))
    print(markdown_table(["model", "program", "threads", "ms", "vs %d thread" % min(args.threads), "vs bm-predict",
                          "vs resnet18_v1", "CPU ms (1 thread)", "CPU vs bm-predict", "peak resident MB"], rows))
    print("\nFootprint (program + libraries outside /lib and /usr/lib): bm-run %.1f MB, bm-predict %.1f MB"
          % (footprint_mb(BM_RUN), footprint_mb(BM_PREDICT)))
    scaling = {}
    if max(args.threads) > 1:
        for name in args.models:
            scaling[name] = paired_scaling(os.path.join(folder, name), args.size, max(args.threads),
                                           args.repeat * args.rounds)
        print("\nThreads in pairs (the runtime's C API, %d then 1 thread back to back in one process, median of %d "
              "pairs): %s" % (max(args.threads), args.repeat * args.rounds, ", ".join(
                  "%s %.2fx" % item for item in scaling.items())))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(machine=machine(), load_average=seen, results=results, paired_scaling=scaling), f, indent=1)


if __name__ == "__main__":
    main()
