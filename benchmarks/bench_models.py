"""Whole models (inference, or a training step) against GluonCV's float ones, per ISA and thread count.

In one process per ISA and thread count: GluonCV's float models (oneDNN) next to this package's converted
binary models (native dense stages, folded BatchNorms, fused pooling), 224x224, hybridized with
``static_alloc``; batch 1 (latency) and batch 8 (images/s).

    python benchmarks/bench_models.py [--models meliusnet22 ...] [--baselines resnet18_v1 ...]
                                      [--isa avx2 avx512] [--threads 1 2] [--batch 1 8] [--repeat 10]
                                      [--rounds 1] [--emulated] [--profile] [--ssd] [--train] [--json FILE]

``--isa`` holds both this package's kernels (BINARY_MODELS_ISA) and oneDNN (ONEDNN_MAX_CPU_ISA, set before
MXNet loads, in each worker process) to each ISA named, one table section per ISA; without it each uses its
best. ``--emulated`` adds each binary model's float-emulated form (the trained graph: float convolutions of
signs). ``--profile`` prints, per model, the time per forward pass of each MXNet operator class (MXNet's
profiler, bulk execution off), so anyone can see where the time goes. ``--ssd`` adds the detection table: a
converted ``ssd_512_binary_densenet37_voc`` against GluonCV's float ``ssd_512_mobilenet1.0_voc`` at 512x512.
``--train`` times one training step instead (forward, backward and an SGD update of the binary models at
batch 8, default models meliusnet22, binary_densenet28 and resnet_e18 against resnet18_v1), each in three
kinds: binary convolutions on the xnor kernel with the native backward and the native fused sign (what the
training commands run on the CPU), float convolutions of signs with the fused sign (``--no-xnor-conv``), and
with MXNet's sign operators too (``--no-xnor-conv --no-fused-sign``); with ``--profile`` it prints where a
step's time goes per operator (forward and backward).

Every row has the wall time and the process's CPU time; on a machine shared with other jobs the CPU time of
a one-thread run is the steadier measure (the load average seen while measuring is printed).
Goals (issue 23): converted meliusnet22 and binary_densenet28 at least 2x resnet18_v1 at one thread, batch
1, on AVX2 and on AVX-512 (2.4x there), meliusnet59 at least 1x; a training step of meliusnet22 and
binary_densenet28 at most 3x resnet18_v1's. Times are the best of ``--repeat`` runs (median in parentheses).
"""
import json
import os

from harness import parse_arguments, per_thread_count, report

TRAIN_MODELS = ("meliusnet22", "binary_densenet28", "resnet_e18")
TRAIN_BATCH = 8

MODELS = ("meliusnet22", "meliusnet42", "meliusnet59", "binary_densenet28", "binary_densenet37", "resnet_e18")
BASELINES = ("resnet18_v1", "resnet34_v1", "mobilenet1.0")
REFERENCE = "resnet18_v1"  # the ratio column: its time over the row's
SSDS = (("ssd_512_mobilenet1.0_voc", "float (GluonCV)"), ("ssd_512_binary_densenet37_voc", "converted"))


def build(name, kind):
    """The model to time, initialized with random weights (speed does not depend on them)."""
    import mxnet as mx
    import binary_models
    from binary_models.inference.convert import convert
    if kind == "float (GluonCV)":
        from gluoncv.model_zoo import get_model
        net = get_model(name, pretrained=False, **({"pretrained_base": False} if name.startswith("ssd") else {}))
        net.initialize()
        return net
    kwargs = {"pretrained_base": False} if name.startswith("ssd") else {}
    net = binary_models.get_model(name, **kwargs)
    net.initialize(mx.init.Uniform() if name.startswith("ssd") else mx.init.Xavier())
    net(mx.nd.zeros((1, 3, 224, 224)) if not name.startswith("ssd") else mx.nd.zeros((1, 3, 512, 512)))
    return net if kind == "float-emulated" else convert(net)


def operator_times(run, passes=5):
    """Milliseconds per call of ``run`` spent in each operator (MXNet's profiler; backward operators are
    named ``_backward_...``)."""
    import tempfile
    import mxnet as mx
    mx.profiler.set_config(profile_symbolic=True, profile_imperative=True, aggregate_stats=True,
                           filename=os.path.join(tempfile.gettempdir(), "bench_models_profile.json"))
    mx.profiler.set_state("run")
    for _ in range(passes):
        run()
        mx.nd.waitall()
    mx.profiler.set_state("stop")
    stats = json.loads(mx.profiler.dumps(reset=True, format="json"))["Time"].get("operator", {})
    skip = ("WaitForVar", "DeleteVariable")
    return {op: s["Total"] / passes for op, s in stats.items() if op not in skip}


# -> (use_fused_sign, use_xnor_training_conv and use_plain_batch_norm)
TRAINED_KINDS = {"xnor conv, fused sign": (True, True), "float-emulated, fused sign": (True, False),
                 "float-emulated, MXNet ops": (False, False)}


def training_step(name, kind):
    """One SGD step of the model at TRAIN_BATCH, as a function: GluonCV's float model, or this package's
    binary model as it is trained: its binary convolutions on the xnor kernel with the native float backward
    (binary_conv2d_train) or as float convolutions of signs, its sign + straight-through gradient as the
    native fused operator or as MXNet's operators (the training commands on the CPU run the first kind), its
    ImprovementBlocks summing over the whole map (as the training commands on the CPU)."""
    import mxnet as mx
    from mxnet import autograd, gluon
    if kind == "float (GluonCV)":
        from gluoncv.model_zoo import get_model
        net = get_model(name, pretrained=False)
        net.initialize(mx.init.Xavier())
    else:
        import binary_models
        from binary_models.models.meliusnet import use_whole_map_sum
        from binary_models.nn.layers import use_xnor_training_conv
        from binary_models.nn.normalization import use_plain_batch_norm
        from binary_models.nn.quantization import use_fused_sign
        fused_sign, xnor_conv = TRAINED_KINDS[kind]
        use_fused_sign(fused_sign)  # all read when the graph is built, at the first call below
        use_xnor_training_conv(xnor_conv)
        use_plain_batch_norm(xnor_conv)  # as the training commands on the CPU, with the xnor convolutions
        use_whole_map_sum(True)  # as the training commands on the CPU
        net = binary_models.get_model(name)
        net.initialize(mx.init.Xavier())
    net.hybridize(static_alloc=True)  # as the training commands: static_shape slows BatchNorm's backward on CPU
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 1e-4, "momentum": 0.9})
    loss_function = gluon.loss.SoftmaxCrossEntropyLoss()
    x = mx.nd.random.normal(shape=(TRAIN_BATCH, 3, 224, 224))
    y = mx.nd.array([i % 1000 for i in range(TRAIN_BATCH)])

    def step():
        with autograd.record():
            loss = loss_function(net(x), y)
        loss.backward()
        trainer.step(TRAIN_BATCH)
    return step


def worker(args):
    if args.profile:
        os.environ["MXNET_EXEC_BULK_EXEC_INFERENCE"] = "0"  # every operator timed on its own
        os.environ["MXNET_EXEC_BULK_EXEC_TRAIN"] = "0"
    import mxnet as mx
    from binary_models.inference import native
    from harness import timings
    native.load()
    isa = native.isa()
    if args.train:
        jobs = [(n, "float (GluonCV)") for n in args.baselines] + [(n, k) for n in args.models for k in TRAINED_KINDS]
        for name, kind in jobs:
            step = training_step(name, kind)
            row = dict(model=name, kind=kind, batch=TRAIN_BATCH, size=224, native_isa=isa,
                       **timings(step, mx.nd.waitall, args.repeat, warmup=2))
            if args.profile:
                row["operators_ms"] = operator_times(step, passes=2)
            print(json.dumps(row), flush=True)
        return
    jobs = [(name, "float (GluonCV)", 224) for name in args.baselines]
    for name in args.models:
        jobs += [(name, "float-emulated", 224)] if args.emulated else []
        jobs.append((name, "converted", 224))
    if args.ssd:
        jobs += [(name, kind, 512) for name, kind in SSDS]
    for name, kind, size in jobs:
        net = build(name, kind)
        net.hybridize(static_alloc=True, static_shape=True)
        for batch in ([1] if name.startswith("ssd") else args.batch):
            x = mx.nd.random.normal(shape=(batch, 3, size, size))
            row = dict(model=name, kind=kind, batch=batch, size=size, native_isa=isa,
                       **timings(lambda: net(x), mx.nd.waitall, args.repeat))
            if args.profile and batch == 1:
                row["operators_ms"] = operator_times(lambda: net(x))
            print(json.dumps(row), flush=True)


def main():
    from binary_models.inference.native import ISAS
    args = parse_arguments(__doc__, repeat=10,
                           models=dict(nargs="+", default=None, help="binary models (default: all; with "
                                       "--train: %s)" % " ".join(TRAIN_MODELS)),
                           baselines=dict(nargs="*", default=None, help="GluonCV float models (default: %s; "
                                          "with --train: %s)" % (" ".join(BASELINES), REFERENCE)),
                           batch=dict(type=int, nargs="+", default=[1, 8], help="batch sizes (default 1 8)"),
                           isa=dict(nargs="+", choices=ISAS, default=None, help="hold the kernels and oneDNN "
                                    "to each of these ISAs in turn (default: the best of each)"),
                           emulated=dict(action="store_true", help="also time the float-emulated binary models"),
                           profile=dict(action="store_true", help="print the time per operator class"),
                           ssd=dict(action="store_true", help="also the SSD512 table"),
                           train=dict(action="store_true", help="time a training step at batch %d instead"
                                      % TRAIN_BATCH))
    if args.models is None:
        args.models = list(TRAIN_MODELS if args.train else MODELS)
    if args.baselines is None:
        args.baselines = [REFERENCE] if args.train else list(BASELINES)
    if args.worker:
        return worker(args)
    flags = ["--repeat", str(args.repeat), "--models"] + args.models + ["--baselines"] + args.baselines
    flags += ["--batch"] + [str(b) for b in args.batch]
    flags += [flag for flag, on in (("--emulated", args.emulated), ("--profile", args.profile), ("--ssd", args.ssd),
                                    ("--train", args.train)) if on]
    results = per_thread_count(os.path.abspath(__file__), args.threads, flags, args.rounds,
                               isas=tuple(args.isa) if args.isa else (None,))
    reference = {(r["isa"], r["threads"], r["batch"]): (r["ms"][0], r["cpu_ms"][0])
                 for r in results if r["model"] == REFERENCE}
    rows, ssd_rows = [], []
    for r in results:
        isa = "%s%s" % (r["native_isa"], "" if r["isa"] in (None, r["native_isa"]) else " (asked %s)" % r["isa"])
        if r["model"].startswith("ssd"):
            ssd_rows.append((r["model"], r["kind"], isa, r["threads"], "%.1f (%.1f)" % tuple(r["ms"])))
            continue
        wall, cpu = reference.get((r["isa"], r["threads"], r["batch"]), (None, None))
        ratio = lambda base, ms: "%.2fx" % ((ms / base) if args.train else (base / ms)) if base else "-"
        rows.append((r["model"], r["kind"], isa, r["threads"], r["batch"], "%.1f (%.1f)" % tuple(r["ms"]),
                     "%.1f" % r["cpu_ms"][0], "%.0f" % (1e3 * r["batch"] / r["ms"][0]),
                     ratio(wall, r["ms"][0]), ratio(cpu, r["cpu_ms"][0]) if r["threads"] == 1 else "-",
                     "%.1f" % r["load"] if r["load"] is not None else "-"))
    compare = "time / %s's" if args.train else "speed vs %s"
    report("One training step (SGD) at batch %d, 224x224" % TRAIN_BATCH if args.train else "Whole models, 224x224",
           ("Model", "Kind", "ISA", "Threads", "Batch", "ms per batch", "CPU ms", "images/s",
            compare % REFERENCE, (compare % REFERENCE) + ", CPU time", "load"), rows, results, args.json)
    if ssd_rows:
        print("\nSSD512, batch 1 (forward pass with decoding and NMS)\n")
        from harness import markdown_table
        print(markdown_table(("Model", "Kind", "ISA", "Threads", "ms"), ssd_rows))
    for r in results:
        if "operators_ms" in r:
            ops = sorted(r["operators_ms"].items(), key=lambda kv: -kv[1])
            print("\n%s (%s), %s, %d thread(s), batch %d: ms per %s by operator: %s" % (
                r["model"], r["kind"], r["native_isa"], r["threads"], r["batch"],
                "training step" if args.train else "forward pass", ", ".join("%s %.2f" % kv for kv in ops)))


if __name__ == "__main__":
    main()
