"""``make demo``: the project's main job end to end, on the embedded digits (nothing is downloaded).

1. build ``meliusnet22`` (thumbnail stem) and print its statistics table; print ``meliusnet59``'s totals at
   224x224 next to MeliusNet Table 1;
2. train it with ``bm train --dataset digits`` (progress bar, training-curve PNG);
3. convert it to the packed 1-bit form, save it, reload it in a fresh process with the native library and
   check that its predictions on the whole validation set equal the float-emulated model's;
4. print a summary: accuracy, file size and latency per image, float-emulated vs packed;
5. write a PNG of validation digits with their predicted labels.

Everything goes into one folder (``demo_output/``). ``bm demo --help`` lists the knobs. It runs from the
installed package alone: no checkout is needed.
"""
import json
import os
import subprocess
import sys
import time

import numpy as np
import mxnet as mx

MODEL = "meliusnet22"
# The training run of the demo: MeliusNet's recipe (Adam, cosine schedule) shortened to one epoch, at the
# digits' own 8x8 resolution (32x32, train_imagenet's default for digits, costs 16x more: see docs/training.md).
DEMO_TRAINING = dict(epochs=1, input_size=8, batch_size=32, lr=0.002)


def section(title):
    print("\n== %s ==" % title, flush=True)


def show_statistics(input_size):
    from ..models.meliusnet import MELIUSNET_TABLE1
    from ..stats import model_statistics
    from ..model_zoo import get_model
    section("1. %s (thumbnail stem) at %dx%d" % (MODEL, input_size, input_size))
    print(model_statistics(get_model(MODEL, stem="thumbnail", classes=10), input_size, name=MODEL).table())
    totals, paper = model_statistics("meliusnet59").totals, MELIUSNET_TABLE1["meliusnet59"]
    print("\nmeliusnet59 at 224x224 (grouped stem) against MeliusNet Table 1:")
    print("  %-12s %12s %12s %10s %10s" % ("", "BOPs (1e9)", "FLOPs (1e8)", "OPs (1e8)", "size (MB)"))
    for label, row in (("this package", totals), ("paper", paper)):
        print("  %-12s %12.2f %12.2f %10.2f %10.1f" % (label, row["bops"] / 1e9, row["flops"] / 1e8,
                                                       row["ops"] / 1e8, row["size_mb"]))


def train(out_dir, epochs, input_size, batch_size, lr):
    section("2. training %s on the digits with bm train" % MODEL)
    command = [sys.executable, "-m", "binary_models", "train", "--dataset", "digits", "--model", MODEL,
               "--input-size", str(input_size), "--num-epochs", str(epochs), "--batch-size", str(batch_size),
               "--lr", str(lr), "--lr-mode", "cosine", "--optimizer", "adam", "--log-interval", "0",
               "--save-dir", out_dir]
    print("$ bm " + " ".join(command[3:]), flush=True)
    subprocess.run(command, check=True)
    with open(os.path.join(out_dir, "summary.json")) as f:
        return json.load(f)


def float_model(params, input_size):
    from ..model_zoo import get_model
    net = get_model(MODEL, stem="thumbnail", classes=10)
    net.load_parameters(params, ctx=mx.cpu())
    net.hybridize(static_alloc=True)
    return net


def predict(net, images, batch_size=120):
    return np.concatenate([net(mx.nd.array(images[i:i + batch_size])).asnumpy()
                           for i in range(0, len(images), batch_size)])


def latency_ms(net, image, repeat=30):
    """Median wall time of one single-image forward pass (after a warm-up)."""
    x = mx.nd.array(image[None])
    net(x).wait_to_read()
    times = []
    for _ in range(repeat):
        tic = time.perf_counter()
        net(x).wait_to_read()
        times.append(time.perf_counter() - tic)
    return 1000 * float(np.median(times))


def predict_packed(prefix, input_size, out_file):
    """Run in a fresh process: load the packed model (and the native library), predict the whole
    validation set, time one image, and save logits and latency to ``out_file`` (.npz)."""
    from ..inference.convert import load_packed
    from ..data.digits import digits_arrays
    _, _, x_val, _ = digits_arrays(input_size)
    net = load_packed(prefix)
    logits = predict(net, x_val)
    np.savez(out_file, logits=logits, latency_ms=latency_ms(net, x_val[0]))


def convert_and_verify(params, out_dir, input_size):
    from ..inference.convert import convert, save_packed
    from ..data.digits import digits_arrays
    section("3. packing %s to 1 bit per binary weight and checking it in a fresh process" % MODEL)
    _, _, x_val, y_val = digits_arrays(input_size)
    net = float_model(params, input_size)
    prefix = os.path.join(out_dir, "packed", MODEL)
    symbol_file, packed_params = save_packed(convert(net), prefix, (1, 3, input_size, input_size))
    print("wrote %s and %s" % (symbol_file, packed_params))
    result_file = os.path.join(out_dir, "packed", "predictions.npz")
    code = ("from binary_models.demo import predict_packed; predict_packed(%r, %d, %r)"
            % (prefix, input_size, result_file))
    subprocess.run([sys.executable, "-c", code], check=True)
    packed = np.load(result_file)
    emulated = predict(net, x_val)
    same = np.array_equal(packed["logits"].argmax(1), emulated.argmax(1))
    max_diff = float(np.abs(packed["logits"] - emulated).max())
    print("predictions on all %d validation digits: %s (largest logit difference %.2g)"
          % (len(x_val), "identical" if same else "DIFFERENT", max_diff))
    return dict(x_val=x_val, y_val=y_val, emulated=emulated, packed=packed["logits"], identical=same,
                max_logit_difference=max_diff, float_latency_ms=latency_ms(net, x_val[0]),
                packed_latency_ms=float(packed["latency_ms"]), float_bytes=os.path.getsize(params),
                packed_bytes=os.path.getsize(packed_params) + os.path.getsize(symbol_file))


def plot_predictions(path, images, labels, predicted, count=32):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ..plots import save_png
    columns = 8
    fig, axes = plt.subplots(count // columns, columns, figsize=(columns * 1.3, count // columns * 1.5))
    for ax, image, label, guess in zip(axes.ravel(), images, labels, predicted):
        ax.imshow(image[0], cmap="gray_r")
        ax.set_title("%d" % guess, color="green" if guess == label else "red", fontsize=12)
        ax.axis("off")
    fig.suptitle("%s, packed 1-bit model: predicted labels (red: wrong)" % MODEL)
    fig.tight_layout()
    save_png(fig, path, dpi=90)


def summarize(out_dir, check, training):
    section("4. summary")
    accuracy = lambda logits: float((logits.argmax(1) == check["y_val"]).mean())
    rows = [("validation top-1", "%.2f%%" % (100 * accuracy(check["emulated"])),
             "%.2f%%" % (100 * accuracy(check["packed"]))),
            ("model file", "%.2f MB" % (check["float_bytes"] / 2 ** 20), "%.3f MB" % (check["packed_bytes"] / 2 ** 20)),
            ("latency per image", "%.2f ms" % check["float_latency_ms"], "%.2f ms" % check["packed_latency_ms"])]
    print("%-20s %18s %18s" % ("", "float-emulated", "packed (native)"))
    for row in rows:
        print("%-20s %18s %18s" % row)
    print("predictions identical on all %d validation digits: %s" % (len(check["y_val"]), check["identical"]))
    print("training: %d epochs in %.0f s, best top-1 %.2f%%" % (training["epochs"], training["wall_time_s"],
                                                               100 * training["best_top1"]))
    outputs = {"training curve": "train/training_curve.png", "training log": "train/train_imagenet.log",
               "trained parameters": "train/imagenet-%s-best.params" % MODEL, "packed model": "packed/",
               "predictions": "predictions.png", "this summary": "summary.json"}
    print("\noutputs in %s:" % os.path.abspath(out_dir))
    for what, path in outputs.items():
        print("  %-20s %s" % (what, path))
    from ..storage import write_json
    write_json(os.path.join(out_dir, "summary.json"), dict(
        model=MODEL, float_top1=accuracy(check["emulated"]), packed_top1=accuracy(check["packed"]),
        identical_predictions=check["identical"], max_logit_difference=check["max_logit_difference"],
        float_bytes=check["float_bytes"], packed_bytes=check["packed_bytes"],
        float_latency_ms=check["float_latency_ms"], packed_latency_ms=check["packed_latency_ms"],
        training=dict(epochs=training["epochs"], wall_time_s=training["wall_time_s"],
                      best_top1=training["best_top1"])))


def main(argv=None):
    from . import cli
    from ..model_zoo import get_model
    from ..model_zoo import check_input_size
    parser = cli.ArgumentParser(prog="bm demo", description=__doc__.split("\n")[0])
    parser.add_argument("--output", default="demo_output", help="folder for everything the demo writes")
    parser.add_argument("--epochs", type=cli.positive_int, default=DEMO_TRAINING["epochs"])
    parser.add_argument("--input-size", type=cli.positive_int, default=DEMO_TRAINING["input_size"])
    parser.add_argument("--batch-size", type=cli.positive_int, default=DEMO_TRAINING["batch_size"])
    parser.add_argument("--lr", type=cli.positive_float, default=DEMO_TRAINING["lr"])
    args = parser.parse_args(argv)
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise cli.UsageError("--output %s is a file, not a folder" % args.output)
    check_input_size(get_model(MODEL, stem="thumbnail", classes=10), args.input_size, name=MODEL)
    started = time.time()
    os.makedirs(args.output, exist_ok=True)
    show_statistics(args.input_size)
    train_dir = os.path.join(args.output, "train")
    training = train(train_dir, args.epochs, args.input_size, args.batch_size, args.lr)
    params = os.path.join(train_dir, "imagenet-%s-best.params" % MODEL)
    check = convert_and_verify(params, args.output, args.input_size)
    plot_predictions(os.path.join(args.output, "predictions.png"), check["x_val"], check["y_val"],
                     check["packed"].argmax(1))
    summarize(args.output, check, training)
    print("demo finished in %.0f s" % (time.time() - started))
    return 0 if check["identical"] else 1


if __name__ == "__main__":
    from .cli import run_script
    sys.exit(run_script(main))
