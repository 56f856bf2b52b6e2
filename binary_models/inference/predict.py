"""Classify images with a trained or a packed model: the classification twin of ``detection/detect.py``::

    bm predict --params runs/imagenet-meliusnet22-best.params cat.jpg dog.jpg
    bm predict --packed packed/meliusnet22 --json cat.jpg
    bm predict --model meliusnet22 --params trained.params --classes-file names.txt x.jpg

The model name, its options, input size and classes come from the run file beside ``--params``
(``train_imagenet.py``'s ``imagenet-MODEL-run.json``) or beside ``--packed`` (``PREFIX-run.json``, written by
``bm convert``); ``--run`` names another, and flags override it. Each image is
preprocessed as in validation (:mod:`binary_models.transforms`: resize + centre crop + ImageNet
normalisation, or for models trained on the embedded digits grayscale + resize + the digits' normalisation),
and the top classes are printed with their softmax probabilities, names (ImageNet's from GluonCV for 1,000
classes, the digits', ``--classes-file``, else indices) and the latency per image. ``--json`` prints the same
as JSON (the schema of ``deploy/``'s C++ program); ``--output-dir`` writes a PNG of each image with its labels.
Bad input exits with status 2 and one ``error: ...`` line.
"""
import os
import time

import numpy as np
import mxnet as mx

from .. import model_zoo, storage
from ..data import transforms
from ..errors import UsageError, error_line


def load_model(opt):
    """``(net, record, name)``: the hybridized model of ``--params`` or ``--packed`` with its run file's record
    (``{}`` when there is none) and its name."""
    if opt.params:
        record, name, kwargs, size = storage.trained_model(opt.params, opt.run, opt.model, opt.input_size,
                                                         stem=opt.stem, classes=opt.classes)
        try:
            net = model_zoo.get_model(name, **kwargs)
        except (ValueError, TypeError) as err:
            raise UsageError(str(err))
        storage.load_parameters(net, opt.params, "params")
        net.hybridize(static_alloc=True)
        return net, dict(record, input_size=size), name
    return load_packed_model(opt)


def load_packed_model(opt):
    from .convert import load_packed
    from .native import NativeLibraryError
    run_path = opt.run or storage.run_file(opt.packed)
    if opt.run and not os.path.isfile(opt.run):
        raise UsageError("run not found: %s" % opt.run, "run")
    record = storage.read_run_file(run_path) if os.path.isfile(run_path) else {}
    if opt.model and record.get("model") not in (None, opt.model):
        raise UsageError("model %s, but the packed model %s is %s (run file %s)"
                         % (opt.model, opt.packed, record["model"], run_path), "model")
    try:
        net = load_packed(opt.packed)
    except (FileNotFoundError, NativeLibraryError) as err:
        raise UsageError("packed: %s" % err, "packed")
    except mx.MXNetError as err:
        raise UsageError("packed %s is not a readable packed model: %s" % (opt.packed, error_line(err)), "packed")
    if opt.input_size:
        record = dict(record, input_size=opt.input_size)
    return net, record, record.get("model") or opt.model or os.path.basename(opt.packed)


def read_inputs(paths, preprocessing):
    """``[(decoded HWC image, float32 (3, size, size) input, preprocessing ms)]`` for ``paths``."""
    transform = transforms.validation_transform(preprocessing)
    if paths:  # the operators' first call sets them up: keep it out of the latency
        _read_input(paths[0], preprocessing, transform)
    return [_read_input(path, preprocessing, transform) for path in paths]


def _read_input(path, preprocessing, transform):
    tic = time.perf_counter()
    try:
        image = transforms.read_image(path, preprocessing)
        x = transform(image)
        x.wait_to_read()
    except (mx.MXNetError, OSError) as err:
        raise UsageError("cannot read image %s: %s" % (path, error_line(err)))
    return image, x, (time.perf_counter() - tic) * 1e3


def top_classes(logits, k):
    """``[(class, probability)]`` of the ``k`` most probable classes of one row of logits (softmax in
    double precision; ties: the lower index first)."""
    z = np.asarray(logits, dtype=np.float64)
    p = np.exp(z - z.max())
    p /= p.sum()
    order = np.lexsort((np.arange(len(p)), -p))[:k]
    return [(int(i), float(p[i])) for i in order]


def forward_batches(net, inputs, batch_size, repeat=1):
    """The logits of every input and the forward latency per image (ms), ``batch_size`` inputs at a time. The
    first pass of each batch shape (graph building) is run once untimed; the latency is the median of ``repeat``
    passes (as ``bm-predict --repeat``)."""
    logits, latencies, warmed = [], [], set()
    for start in range(0, len(inputs), batch_size):
        batch = mx.nd.stack(*[x for _, x, _ in inputs[start:start + batch_size]])
        if batch.shape not in warmed:
            net(batch).wait_to_read()
            warmed.add(batch.shape)
        times = []
        for _ in range(repeat):
            tic = time.perf_counter()
            out = net(batch).asnumpy()
            times.append((time.perf_counter() - tic) * 1e3)
        elapsed = sorted(times)[len(times) // 2]
        logits.extend(out)
        latencies.extend([elapsed / len(out)] * len(out))
    return logits, latencies


def draw(path, image_path, image, top, names):
    """``path``: a PNG of ``image`` (read from ``image_path``) beside a bar chart of its ``top`` classes,
    written atomically."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ..plots import save_png
    fig, (ax_image, ax_bars) = plt.subplots(1, 2, figsize=(9, 3.6), gridspec_kw=dict(width_ratios=(1, 1.3)))
    pixels = image.asnumpy()
    if pixels.shape[2] == 1:
        ax_image.imshow(pixels[:, :, 0], cmap="gray", vmin=0, vmax=255)
    else:
        ax_image.imshow(pixels)
    ax_image.set_axis_off()
    ax_image.set_title(os.path.basename(image_path))
    labels_ = [label(c, names) for c, _ in top][::-1]
    ax_bars.barh(range(len(top)), [p for _, p in top][::-1], color="tab:blue")
    ax_bars.set_yticks(range(len(top)))
    ax_bars.set_yticklabels(labels_)
    ax_bars.set_xlim(0, 1)
    ax_bars.set_xlabel("probability")
    for y, (_, p) in enumerate(top[::-1]):
        inside = p > 0.75  # the label inside a long bar, after a short one
        ax_bars.text(p - 0.02 if inside else p + 0.02, y, "%.1f%%" % (100 * p), va="center",
                     ha="right" if inside else "left", color="white" if inside else "black")
    fig.tight_layout()
    save_png(fig, path)


def label(index, names):
    return names[index] if names else str(index)


def output_paths(images, output_dir):
    """``OUTPUT_DIR/STEM_prediction.png`` for each image; a repeated stem gets the image's position added."""
    stems = [os.path.splitext(os.path.basename(p))[0] for p in images]
    return [os.path.join(output_dir, "%s%s_prediction.png" % (stem, "_%d" % i if stems.count(stem) > 1 else ""))
            for i, stem in enumerate(stems)]


def describe(name, opt, record, preprocessing, num_classes):
    source = "packed model %s" % opt.packed if opt.packed else "parameters %s" % opt.params
    how = "grayscale" if preprocessing.grayscale else "crop ratio %g" % preprocessing.crop_ratio
    return "%s (%s): %d classes, input 3x%dx%d, %s preprocessing" % (
        name, source, num_classes, preprocessing.input_size, preprocessing.input_size, how)
