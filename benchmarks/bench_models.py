"""Whole models at 224x224, batch 1: the float-emulated model (hybridized: every binary layer is a float
Convolution of signs) against its converted form (binary layers on the native xnor/popcount operator;
BatchNorm, full-precision convolutions and the rest unchanged).

    python benchmarks/bench_models.py [--models meliusnet22 binary_densenet28] [--threads 1 2]
                                      [--repeat 10] [--json FILE]

Goal (issue 6): the converted model at least 2x faster. Times are the best of ``--repeat`` forward passes
(median in parentheses).
"""
import json
import os

from harness import parse_arguments, per_thread_count, report, time_ms

MODELS = ("meliusnet22", "binary_densenet28")


def worker(models, repeat):
    import mxnet as mx
    import binary_models
    from binary_models.convert import convert
    x = mx.nd.random.normal(shape=(1, 3, 224, 224))
    for name in models:
        net = binary_models.get_model(name)
        net.initialize(mx.init.Xavier())
        net(x)  # completes the deferred initialisation
        packed = convert(net)
        timings = {}
        for kind, model in (("float_ms", net), ("packed_ms", packed)):
            model.hybridize(static_alloc=True, static_shape=True)
            timings[kind] = time_ms(lambda: model(x), mx.nd.waitall, repeat)
        print(json.dumps(dict(model=name, **timings)))


def main():
    args = parse_arguments(__doc__, repeat=10, models=dict(nargs="+", default=list(MODELS), help="model names"))
    if args.worker:
        return worker(args.models, args.repeat)
    results = per_thread_count(os.path.abspath(__file__), args.threads,
                               ["--repeat", str(args.repeat), "--models"] + args.models, args.rounds)
    rows = [(r["model"], r["threads"], "%.1f (%.1f)" % tuple(r["float_ms"]), "%.1f (%.1f)" % tuple(r["packed_ms"]),
             "%.1fx" % (r["float_ms"][0] / r["packed_ms"][0])) for r in results]
    report("Whole models, 224x224, batch 1", ("Model", "Threads", "float-emulated ms", "converted ms", "speedup"),
           rows, results, args.json)


if __name__ == "__main__":
    main()
