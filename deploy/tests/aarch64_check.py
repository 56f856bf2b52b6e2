"""The runtime cross-compiled for aarch64 against the x86-64 build, both through run_raw (make -C deploy
runtime-aarch64-test runs this): small zoo models converted with random weights; every binary operator node
alone, fed the same input, equal to the bit; each model's probabilities within 1e-4. The aarch64 build runs
under qemu on CPUs without and with the dot product (its NEON kernels); it has no image decoding and its own
SHA-256 (the models' pair records are checked with it), so it needs no arm64 library but libstdc++ and libgomp.

    python deploy/tests/aarch64_check.py --x86 deploy/build/run_raw --aarch64 "qemu-aarch64 -cpu {cpu} ..."
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile

import numpy as np
import mxnet as mx

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests"))
from test_runtime import BINARY_OPS, one_node_graph, packed_zoo_model, softmax  # noqa: E402
from binary_models.inference import native  # noqa: E402


def cases(name, folder, rng):
    """(prefix, input, exact) for the model and for each of its binary operator nodes alone."""
    prefix, size = packed_zoo_model(name, folder)
    yield prefix, rng.normal(0, 1, (2, 3, size, size)).astype(np.float32), False
    with open(prefix + "-symbol.json") as f:
        symbol = json.load(f)
    params = {k.split(":", 1)[1]: v for k, v in mx.nd.load(prefix + "-0000.params").items()}
    internals = mx.sym.load(prefix + "-symbol.json").get_internals()
    shapes = dict(zip(internals.list_outputs(), internals.infer_shape(data=(2, 3, size, size))[1]))
    for index, node in enumerate(symbol["nodes"]):
        if node["op"] in BINARY_OPS:
            source = symbol["nodes"][node["inputs"][0][0]]
            shape = shapes[source["name"] + "_output" if source["op"] != "null" else "data"]
            node_folder = os.path.join(folder, "%s-%d" % (name, index))
            os.makedirs(node_folder)
            yield one_node_graph(symbol, index, node_folder, params), rng.normal(0, 1, shape).astype(np.float32), True


def run(command, items, folder, tag):
    """Runs run_raw (``command``, a list) on every (prefix, input) of items; returns its outputs and first line."""
    with open(os.path.join(folder, tag + ".list"), "w") as f:
        for i, (prefix, x, _) in enumerate(items):
            f.write("%s %s %d %d %d %d %s\n" % (prefix, os.path.join(folder, "in%d" % i), *x.shape,
                                                os.path.join(folder, "%s-out%d" % (tag, i))))
    out = subprocess.run(command + [f.name], stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
    return [np.fromfile(os.path.join(folder, "%s-out%d" % (tag, i)), dtype=np.float32) for i in range(len(items))], \
        out.strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--x86", required=True, help="run_raw built for this machine")
    parser.add_argument("--aarch64", required=True, help="the aarch64 run_raw's command, {cpu} for qemu's -cpu")
    parser.add_argument("--cpus", nargs="+", default=["cortex-a53", "cortex-a72", "max"])
    parser.add_argument("--models", nargs="+", default=["meliusnet22", "resnet_e18"])
    args = parser.parse_args()
    native.load()
    folder = tempfile.mkdtemp(prefix="aarch64-check-")
    rng = np.random.RandomState(0)
    items = [item for name in args.models for item in cases(name, folder, rng)]
    for i, (_, x, _) in enumerate(items):
        x.tofile(os.path.join(folder, "in%d" % i))
    expected, _ = run([args.x86], items, folder, "x86")
    failures = 0
    for cpu in args.cpus:
        got, isa = run(shlex.split(args.aarch64.format(cpu=cpu)), items, folder, cpu)
        for (prefix, x, exact), want, have in zip(items, expected, got):
            if exact:
                differ = int(np.count_nonzero(want.view(np.uint32) != have.view(np.uint32)))
            else:
                classes = want.size // x.shape[0]
                gap = np.abs(softmax(want.reshape(-1, classes)) - softmax(have.reshape(-1, classes))).max()
                differ = int(gap > 1e-4)
            if differ or want.shape != have.shape:
                failures += 1
                print("%s: %s differs from x86-64 (%d values)" % (cpu, os.path.basename(prefix), differ))
        print("qemu-aarch64 -cpu %s (%s): %d models and %d binary operators alone, %s" % (
            cpu, isa, sum(not item[2] for item in items), sum(item[2] for item in items),
            "failed" if failures else "as on x86-64 (binary bit for bit, probabilities within 1e-4)"))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
