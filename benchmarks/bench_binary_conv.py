"""MXNet's float Convolution (oneDNN) against the native binary convolution (binary_conv2d, packing of the
float activations included), 3x3, stride 1, pad 1, batch 1, on layer shapes of MeliusNet/BinaryDenseNet.

    [BINARY_MODELS_ISA=scalar|avx2|avx512] python benchmarks/bench_binary_conv.py [--threads 1 2] [--repeat 30]
                                                                                  [--rounds 1] [--json FILE]

Goals, one thread: on AVX2 (issue 6) >= 4x on the 256- and 128-channel shapes, >= 3x on 56x56x64->64, and
>= 1.8x more speed from the second thread; on AVX-512 VPOPCNTDQ (issue 12) >= 6x on 14x14x256->256 and
28x28x128->128, >= 4x on 56x56x64->64 and 14x14x256->64. Each timing runs ten independent convolutions in
one hybridized graph (so the per-call overhead of MXNet's Python front end, ~0.1 ms here, is not what is
measured). Times are the best of ``--repeat`` samples (median in parentheses): on a shared machine the
best is the least disturbed. The report names the CPU and the native kernels' instruction set (the
workers' rows carry the one they ran, too).
"""
import json
import os

from harness import native_isa, parse_arguments, per_thread_count, report, time_ms

SHAPES = ((14, 256, 64), (14, 256, 256), (28, 128, 128), (56, 64, 64), (7, 512, 64))  # (size, in, out)
COPIES = 10  # independent convolutions per graph call, so MXNet's per-call overhead is spread over ten


def shape_name(size, cin, cout):
    return "%dx%dx%d->%d" % (size, size, cin, cout)


def copies_block(op):
    """A hybridized block applying ``op(F, x, weight)`` to COPIES inputs: one CachedOp call runs them all."""
    from mxnet.gluon import HybridBlock

    class Copies(HybridBlock):
        def hybrid_forward(self, F, weight, *inputs):
            return tuple(op(F, x, weight) for x in inputs)

    block = Copies()
    block.hybridize(static_alloc=True, static_shape=True)
    return block


def worker(repeat):
    import mxnet as mx
    from binary_models.inference import native
    native.load()
    for size, cin, cout in SHAPES:
        inputs = [mx.nd.random.normal(shape=(1, cin, size, size)) for _ in range(COPIES)]
        w = mx.nd.random.normal(shape=(cout, cin, 3, 3))
        packed = mx.nd.binary_pack_weights(w)
        conv = dict(kernel=(3, 3), pad=(1, 1), num_filter=cout)
        float_conv = copies_block(lambda F, x, weight: F.Convolution(x, weight, no_bias=True, **conv))
        binary_conv = copies_block(lambda F, x, weight: F.binary_conv2d(x, weight, in_channels=cin, **conv))
        per_op = lambda ms: [t / COPIES for t in ms]
        float_ms = per_op(time_ms(lambda: float_conv(w, *inputs), mx.nd.waitall, repeat))
        binary_ms = per_op(time_ms(lambda: binary_conv(packed, *inputs), mx.nd.waitall, repeat))
        print(json.dumps(dict(shape=shape_name(size, cin, cout), isa=native.isa(), float_ms=float_ms,
                              binary_ms=binary_ms)))


def main():
    args = parse_arguments(__doc__, repeat=30)
    if args.worker:
        return worker(args.repeat)
    results = per_thread_count(os.path.abspath(__file__), args.threads, ["--repeat", str(args.repeat)],
                               args.rounds)
    ran = sorted({r["isa"] for r in results})
    if ran != [native_isa()]:
        raise SystemExit("error: the workers ran the native kernels on %s, not %s" % (", ".join(ran), native_isa()))
    one_thread = {r["shape"]: r["binary_ms"][0] for r in results if r["threads"] == min(args.threads)}
    rows = [(r["shape"], r["threads"], "%.3f (%.3f)" % tuple(r["float_ms"]), "%.3f (%.3f)" % tuple(r["binary_ms"]),
             "%.1fx" % (r["float_ms"][0] / r["binary_ms"][0]), "%.2fx" % (one_thread[r["shape"]] / r["binary_ms"][0]))
            for r in results]
    report("Binary 3x3 convolution, batch 1", ("Shape", "Threads", "MXNet float ms", "binary ms",
                                                "binary speedup", "binary vs %d thread" % min(args.threads)),
           rows, results, args.json)


if __name__ == "__main__":
    main()
