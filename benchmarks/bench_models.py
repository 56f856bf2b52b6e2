"""Whole models, in one process per thread count: GluonCV's float models (oneDNN) next to this package's
converted binary models (native dense stages, folded BatchNorms, fused pooling), 224x224, hybridized with
``static_alloc``; batch 1 (latency) and batch 8 (images/s).

    python benchmarks/bench_models.py [--models meliusnet22 ...] [--baselines resnet18_v1 ...]
                                      [--threads 1 2] [--batch 1 8] [--repeat 10] [--rounds 1]
                                      [--emulated] [--profile] [--ssd] [--json FILE]

``--emulated`` adds each binary model's float-emulated form (the trained graph: float convolutions of signs).
``--profile`` prints, per model, the time per forward pass of each MXNet operator class (MXNet's profiler,
bulk execution off), so anyone can see where the time goes. ``--ssd`` adds the detection table: a converted
``ssd_512_binary_densenet37_voc`` against GluonCV's float ``ssd_512_mobilenet1.0_voc`` at 512x512.

Goal (issue 17): at one thread, batch 1, converted meliusnet22 and binary_densenet28 at least as fast as
GluonCV's float resnet18_v1 (the aim is 2x). Times are the best of ``--repeat`` runs (median in parentheses).
"""
import json
import os

from harness import parse_arguments, per_thread_count, report

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


def operator_times(net, x, passes=5):
    """Milliseconds per forward pass of each operator class, from MXNet's profiler."""
    import tempfile
    import mxnet as mx
    mx.profiler.set_config(profile_symbolic=True, profile_imperative=True, aggregate_stats=True,
                           filename=os.path.join(tempfile.gettempdir(), "bench_models_profile.json"))
    mx.profiler.set_state("run")
    for _ in range(passes):
        net(x)
        mx.nd.waitall()
    mx.profiler.set_state("stop")
    stats = json.loads(mx.profiler.dumps(reset=True, format="json"))["Time"].get("operator", {})
    skip = ("WaitForVar", "DeleteVariable")
    return {op: s["Total"] / passes for op, s in stats.items() if op not in skip}


def worker(args):
    if args.profile:
        os.environ["MXNET_EXEC_BULK_EXEC_INFERENCE"] = "0"  # every operator timed on its own
    import mxnet as mx
    from harness import time_ms
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
            best, median = time_ms(lambda: net(x), mx.nd.waitall, args.repeat)
            row = dict(model=name, kind=kind, batch=batch, size=size, ms=[best, median])
            if args.profile and batch == 1:
                row["operators_ms"] = operator_times(net, x)
            print(json.dumps(row), flush=True)


def main():
    args = parse_arguments(__doc__, repeat=10,
                           models=dict(nargs="+", default=list(MODELS), help="binary models, converted"),
                           baselines=dict(nargs="*", default=list(BASELINES), help="GluonCV float models"),
                           batch=dict(type=int, nargs="+", default=[1, 8], help="batch sizes (default 1 8)"),
                           emulated=dict(action="store_true", help="also time the float-emulated binary models"),
                           profile=dict(action="store_true", help="print the time per operator class"),
                           ssd=dict(action="store_true", help="also the SSD512 table"))
    if args.worker:
        return worker(args)
    flags = ["--repeat", str(args.repeat), "--models"] + args.models + ["--baselines"] + args.baselines
    flags += ["--batch"] + [str(b) for b in args.batch]
    flags += [flag for flag, on in (("--emulated", args.emulated), ("--profile", args.profile), ("--ssd", args.ssd)) if on]
    results = per_thread_count(os.path.abspath(__file__), args.threads, flags, args.rounds)
    reference = {(r["threads"], r["batch"]): r["ms"][0] for r in results if r["model"] == REFERENCE}
    rows, ssd_rows = [], []
    for r in results:
        if r["model"].startswith("ssd"):
            ssd_rows.append((r["model"], r["kind"], r["threads"], "%.1f (%.1f)" % tuple(r["ms"])))
            continue
        ratio = reference.get((r["threads"], r["batch"]))
        rows.append((r["model"], r["kind"], r["threads"], r["batch"], "%.1f (%.1f)" % tuple(r["ms"]),
                     "%.0f" % (1e3 * r["batch"] / r["ms"][0]), "%.2fx" % (ratio / r["ms"][0]) if ratio else "-"))
    report("Whole models, 224x224", ("Model", "Kind", "Threads", "Batch", "ms per batch", "images/s",
                                      "speed vs %s" % REFERENCE), rows, results, args.json)
    if ssd_rows:
        print("\nSSD512, batch 1 (forward pass with decoding and NMS)\n")
        from harness import markdown_table
        print(markdown_table(("Model", "Kind", "Threads", "ms"), ssd_rows))
    for r in results:
        if "operators_ms" in r:
            ops = sorted(r["operators_ms"].items(), key=lambda kv: -kv[1])
            print("\n%s (%s), %d thread(s), batch 1: ms per forward pass by operator: %s" % (
                r["model"], r["kind"], r["threads"], ", ".join("%s %.2f" % kv for kv in ops)))


if __name__ == "__main__":
    main()
