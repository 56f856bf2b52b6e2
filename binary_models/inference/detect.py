"""Detect objects in images with a trained SSD: draw the boxes into PNG files (GluonCV's ``plot_bbox``) and
print the detections as JSON (class, score, box in pixels of the original image)::

    python detection/detect.py --network ssd_512_binary_densenet37_voc \\
        --params runs/voc/ssd_512_binary_densenet37_voc_best.params street.jpg

``--network`` is the full name train_ssd.py prints; it, the classes, the data shape and the network options
(``--growth`` etc.) come from the run file train_ssd.py wrote next to the parameters (``{prefix}_run.json``,
or ``--run``), so ``--network`` may be left out; ``--classes`` overrides the classes. Runs from before run
files existed use their ``*_summary.json`` (``--summary``).
"""
import json
import os

import numpy as np
import mxnet as mx

from .. import model_zoo, storage
from ..errors import UsageError
from ..models import ssd
from ..plots import save_png

MEAN_RGB = (0.485, 0.456, 0.406)  # SSDDefaultValTransform's normalisation
STD_RGB = (0.229, 0.224, 0.225)


def training_record(opt):
    """What train_ssd.py recorded of the network of ``--params``: its run file (``--run``, or the one beside
    the parameters), else a legacy ``*_summary.json`` (``--summary``, or beside the parameters); or {}."""
    path = opt.run or storage.find_run_file(opt.params)
    if opt.run and not os.path.isfile(opt.run):
        raise UsageError("run not found: %s" % opt.run, "run")
    if path:
        record = storage.read_run_file(path)
        return dict(network=record["model"], model_kwargs=record["model_kwargs"], data_shape=record["input_size"])
    summary = opt.summary
    if summary is None and opt.network:
        directory, base = os.path.split(opt.params)
        position = base.rfind(opt.network)
        candidate = os.path.join(directory, base[:position + len(opt.network)] + "_summary.json")
        summary = candidate if position >= 0 and os.path.isfile(candidate) else None
    elif summary is not None and not os.path.isfile(summary):
        raise UsageError("summary not found: %s" % summary, "summary")
    if not summary:
        return {}
    with open(summary) as f:
        recorded = json.load(f)
    return dict(network=recorded.get("network"), model_kwargs=recorded.get("model_kwargs", {}),
                data_shape=recorded.get("data_shape"))


def build_network(opt, record, ctx):
    """The network of ``--network`` with the options and classes of its training run."""
    kwargs = dict(record.get("model_kwargs", {})) if record.get("network") == opt.network else {}
    if opt.classes:
        kwargs["classes"] = [c.strip() for c in opt.classes.split(",") if c.strip()]
    if opt.network.endswith("_custom") and "classes" not in kwargs:
        raise UsageError("%s needs its classes: --classes a,b,c or --run (train_ssd.py's *_run.json)"
                         % opt.network)
    try:
        net = model_zoo.get_model(opt.network, pretrained_base=False, **kwargs)
    except (ValueError, TypeError) as err:
        raise UsageError(str(err))
    storage.load_parameters(net, opt.params, "params", ctx)
    return net


def data_shape(opt, record):
    if opt.data_shape:
        return opt.data_shape
    if record.get("data_shape") and record.get("network") == opt.network:
        return int(record["data_shape"])
    match = ssd.SSD_NAME.match(opt.network.lower())
    if not match:
        raise UsageError("data_shape is needed: %r does not name its input size" % opt.network, "data_shape")
    return int(match.group(1))


def load_image(path, size, ctx):
    """``(input batch, RGB image)``: the image resized to ``size`` x ``size`` and normalised as in
    validation (SSDDefaultValTransform)."""
    try:
        image = mx.image.imread(path)
    except (mx.MXNetError, OSError) as err:
        raise UsageError("cannot read image %s: %s" % (path, str(err).splitlines()[0]))
    resized = mx.image.imresize(image, size, size, interp=9)
    x = mx.nd.image.normalize(mx.nd.image.to_tensor(resized), mean=MEAN_RGB, std=STD_RGB)
    return x.expand_dims(0).as_in_context(ctx), image.asnumpy()


def detect(net, path, size, thresh, ctx):
    """Detections of one image as ``[{'class', 'score', 'box': [xmin, ymin, xmax, ymax]}]`` in pixels of
    the original image, best first, and that image."""
    x, image = load_image(path, size, ctx)
    ids, scores, boxes = (a[0].asnumpy() for a in net(x))
    height, width = image.shape[:2]
    boxes = np.clip(boxes * np.array([width / size, height / size] * 2), 0, np.array([width, height] * 2))
    keep = (ids[:, 0] >= 0) & (scores[:, 0] >= thresh)
    return [{"class": net.classes[int(i)], "score": round(float(s), 4), "box": [round(float(v), 1) for v in b]}
            for i, s, b in zip(ids[keep, 0], scores[keep, 0], boxes[keep])], image


def draw(path, image, detections, classes):
    """Draw ``detections`` on ``image`` with GluonCV's ``plot_bbox`` and save a PNG (atomically)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from gluoncv.utils import viz
    fig = plt.figure(figsize=(max(4.0, image.shape[1] / 100), max(4.0, image.shape[0] / 100)))
    ax = fig.add_subplot(1, 1, 1)
    boxes = np.array([d["box"] for d in detections]).reshape(-1, 4)
    labels = np.array([classes.index(d["class"]) for d in detections])
    scores = np.array([d["score"] for d in detections])
    viz.plot_bbox(image, boxes, scores, labels, thresh=0, class_names=classes, ax=ax)
    ax.set_axis_off()
    save_png(fig, path, bbox_inches="tight")
