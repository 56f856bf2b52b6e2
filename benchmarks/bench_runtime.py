"""bm-run (the runtime without MXNet) against bm-predict (MXNet's C API) and GluonCV's float resnet18_v1, at 1
and 2 threads: ms per image at batch 1 (the median of --repeat passes, as the programs report it), the peak
resident memory of each process, and the size of each program plus the libraries it links outside the system.

    python benchmarks/bench_runtime.py --models meliusnet22 binary_densenet28 --size 224 --repeat 20 --rounds 2

Models have random weights (speed does not depend on them); each measurement is its own process.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

from harness import REPO, markdown_table, machine, parse_arguments

BM_RUN = os.path.join(REPO, "deploy", "build", "bm-run")
BM_PREDICT = os.path.join(REPO, "deploy", "build", "bm-predict")


def peak_mb(command, env):
    """The peak resident MB of ``command`` (wait4's rusage of that one process)."""
    pid = os.fork()
    if pid == 0:
        os.execvpe(command[0], command, env)
    _, status, usage = os.wait4(pid, 0)
    if status:
        raise SystemExit("%s failed (status %d)" % (" ".join(command), status))
    return usage.ru_maxrss / 1024.0


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
        mb = peak_mb([sys.executable, "-c", script, name, str(size), str(repeat), result.name], env)
        return json.load(open(result.name)), mb


def program_ms(program, prefix, image, threads, repeat):
    """(median ms, peak MB) of one forward pass of bm-run or bm-predict (their own median of --repeat)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as result:
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        command = "%s --json --repeat %d %s %s > %s" % (program, repeat, prefix, image, result.name)
        mb = peak_mb(["/bin/sh", "-c", command], env)
        return json.load(open(result.name))[0]["latency_ms"]["forward"], mb


def main():
    args = parse_arguments(__doc__, repeat=20, models=dict(nargs="+", default=["meliusnet22", "binary_densenet28"]),
                           size=dict(type=int, default=224))
    folder = tempfile.mkdtemp(prefix="bench-runtime-")
    prepare(args.models, args.size, folder)
    image = os.path.join(folder, "image.png")
    rows, results = [], []
    for threads in args.threads:
        for name in args.models:
            prefix = os.path.join(folder, name)
            for kind, program in (("bm-run", BM_RUN), ("bm-predict", BM_PREDICT)):
                samples = [program_ms(program, prefix, image, threads, args.repeat) for _ in range(args.rounds)]
                results.append(dict(model=name, kind=kind, threads=threads, ms=min(s[0] for s in samples),
                                    peak_mb=min(s[1] for s in samples)))
        samples = [gluoncv_ms("resnet18_v1", args.size, threads, args.repeat) for _ in range(args.rounds)]
        results.append(dict(model="resnet18_v1", kind="GluonCV float", threads=threads, ms=min(s[0] for s in samples),
                            peak_mb=min(s[1] for s in samples)))
    one = {(r["model"], r["kind"]): r["ms"] for r in results if r["threads"] == 1}
    for r in results:
        base = one.get((r["model"], r["kind"]))
        rows.append([r["model"], r["kind"], r["threads"], "%.2f" % r["ms"], "%.2fx" % (r["ms"] / base) if base else "",
                     "%.0f" % r["peak_mb"]])
    print("Batch 1, %dx%d, median ms per image (best of %d rounds) on %s\n" % (args.size, args.size, args.rounds,
                                                                                machine()))
    print(markdown_table(["model", "program", "threads", "ms", "vs 1 thread", "peak resident MB"], rows))
    print("\nFootprint (program + libraries outside /lib and /usr/lib): bm-run %.1f MB, bm-predict %.1f MB"
          % (footprint_mb(BM_RUN), footprint_mb(BM_PREDICT)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(machine=machine(), results=results), f, indent=1)


if __name__ == "__main__":
    main()
