"""Train an SSD detector with a binary backbone on Pascal VOC, COCO or any VOC-format folder.

GluonCV's ``scripts/detection/ssd/train_ssd.py`` with its flags and log lines, GluonCV's SSD, transforms,
loss and metrics, plus: the networks of :mod:`binary_models.models.ssd` (BinaryDenseNet section 5.3), Adam
by default for binary backbones, a start from a classification checkpoint (``--backbone-params``),
annotation files checked up front, per-class AP after each validation, a progress bar, a loss/mAP curve,
atomic checkpoints with trainer states, and ``error: ...`` with exit status 2 for bad input.

The paper's experiment (SSD512, BinaryDenseNet37 base, VOC07+12 trainval, VOC07 test)::

    bm train-ssd --network binary_densenet37 --data-shape 512 --dataset voc \\
        --backbone-params imagenet-binary_densenet37-best.params --gpus 0,1,2,3
"""
import os
import time
import warnings

import mxnet as mx
from mxnet import autograd, gluon

from .. import model_zoo, storage
from ..data import voc
from ..data.datasets import ShardSampler
from ..errors import UsageError
from ..models import ssd
from . import optimizers, schedules  # optimizers also registers 'radam'
from .regularization import binary_weights
from ..storage import unlock_run
from . import resume
from .loop import RunFiles, TrainingRun, seed_everything, setup_logger

KVSTORES = ("device", "local")
DEFAULT_ROOTS = {"voc": "~/.mxnet/datasets/voc", "coco": "~/.mxnet/datasets/coco"}
# GluonCV's splits: VOC07+12 trainval / VOC07 test; COCO 2017 train / val.
VOC_TRAIN_SPLITS = ((2007, "trainval"), (2012, "trainval"))
VOC_VAL_SPLITS = ((2007, "test"),)
# A VOC-format folder: the first split file found of each list.
FOLDER_TRAIN_SPLITS = ("trainval", "train")
FOLDER_VAL_SPLITS = ("test", "val")
NMS_THRESH, NMS_TOPK = 0.45, 400  # GluonCV's validation settings
# SSD reads the backbone's stride-32 map and four smaller ones: the smallest input that leaves them a pixel.


def parse_channels(text):
    """``'128,128,64,64'`` -> the channels of SSD's extra layers; raises ``ValueError`` describing the rule."""
    try:
        channels = [int(c) for c in text.split(",")]
    except ValueError:
        channels = []
    if len(channels) != len(ssd.ASPECT_RATIOS) - 2 or min(channels) < 1:
        raise ValueError("needs %d positive channel counts, e.g. 128,128,64,64; got %r"
                         % (len(ssd.ASPECT_RATIOS) - 2, text))
    return channels


def network_options(opt):
    """The network flags that were given, as keyword arguments of the SSD factory."""
    options = dict(growth=opt.growth, init_channels=opt.init_channels, stem=opt.stem,
                   extra_filters=parse_channels(opt.extra_filters) if opt.extra_filters else None,
                   binary_extras=opt.binary_extras or None)
    return {k: v for k, v in options.items() if v is not None}


# ---- data ---------------------------------------------------------------------------------------------
def find_split(root, candidates, role):
    for split in candidates:
        if os.path.isfile(voc.split_file(root, split)):
            return split
    raise UsageError("no %s split in %s: expected one of %s (for Pascal VOC's VOCdevkit folder use --dataset voc "
                     "--dataset-root)" % (role, root, ", ".join(voc.split_file(root, s) for s in candidates)))


def voc_format_folder(root):
    """Train and validation sets of a VOC-format folder; the classes are the object names found."""
    if not os.path.isdir(root):
        raise UsageError("dataset %s: no such folder (use 'voc', 'coco' or a VOC-format folder)" % root, "dataset")
    train_split = find_split(root, FOLDER_TRAIN_SPLITS, "training")
    val_split = find_split(root, FOLDER_VAL_SPLITS, "validation")
    classes = sorted(voc.check_voc_split(root, train_split) | voc.check_voc_split(root, val_split))
    return (voc.voc_detection(root, [("", train_split)], classes),
            voc.voc_detection(root, [("", val_split)], classes), classes)


def pascal_voc(root):
    """VOC07+12 trainval and VOC07 test, as in GluonCV's script and BinaryDenseNet section 5.3."""
    classes = ssd.voc_classes()
    for year, split in VOC_TRAIN_SPLITS + VOC_VAL_SPLITS:
        folder = os.path.join(root, "VOC%d" % year)
        if not os.path.isfile(voc.split_file(folder, split)):
            raise UsageError("Pascal VOC not found: %s is missing. Download VOC2007 and VOC2012 (GluonCV's "
                             "scripts/datasets/pascal_voc.py) or pass --dataset-root" % voc.split_file(folder, split))
        voc.check_voc_split(folder, split, classes)
    return (voc.voc_detection(root, VOC_TRAIN_SPLITS, classes),
            voc.voc_detection(root, VOC_VAL_SPLITS, classes), list(classes))


def coco(root):
    import importlib.util
    if importlib.util.find_spec("pycocotools") is None:
        raise UsageError("dataset coco needs pycocotools, which is not installed (pip install pycocotools); "
                         "GluonCV would try to install it at run time", "dataset")
    for split in ("instances_train2017", "instances_val2017"):
        path = os.path.join(root, "annotations", split + ".json")
        if not os.path.isfile(path):
            raise UsageError("COCO not found: %s is missing (GluonCV's scripts/datasets/mscoco.py, or "
                             "--dataset-root)" % path)
    from gluoncv.data import COCODetection
    train = COCODetection(root=root, splits="instances_train2017")
    return train, COCODetection(root=root, splits="instances_val2017", skip_empty=False), list(train.classes)


def get_dataset(opt):
    """``(kind, train_dataset, val_dataset, classes)``; kind is the network-name suffix (voc, coco, custom)."""
    kind = opt.dataset.lower()
    if kind in DEFAULT_ROOTS:
        root = os.path.expanduser(opt.dataset_root or DEFAULT_ROOTS[kind])
        return (kind,) + (pascal_voc(root) if kind == "voc" else coco(root))
    if opt.dataset_root:
        raise UsageError("dataset_root is for voc and coco; a VOC-format folder is given as --dataset PATH",
                         "dataset_root")
    return ("custom",) + voc_format_folder(os.path.expanduser(opt.dataset))


def val_metric(kind, val_dataset, classes, opt, prefix):
    from gluoncv.utils.metrics.voc_detection import VOC07MApMetric
    if kind == "coco":
        from gluoncv.utils.metrics.coco_detection import COCODetectionMetric
        return COCODetectionMetric(val_dataset, prefix + "_eval", cleanup=True,
                                   data_shape=(opt.data_shape, opt.data_shape))
    return VOC07MApMetric(iou_thresh=0.5, class_names=classes)


def ssd_anchors(net, data_shape):
    """The anchors of ``net`` for ``data_shape`` inputs, (1, N, 4) (GluonCV's SSD returns them only in
    training mode); BatchNorm's running statistics are restored, so the zero image leaves no trace."""
    probe = mx.nd.zeros((1, 3, data_shape, data_shape), ctx=net.collect_params().list_ctx()[0])
    net(probe)  # finishes deferred initialisation, in inference mode
    running = [(p, [d.copy() for d in p.list_data()]) for p in net.collect_params().values() if p.grad_req == "null"]
    with autograd.train_mode():
        _, _, anchors = net(probe)
    for param, data in running:
        for target, saved in zip(param.list_data(), data):
            saved.copyto(target)
    return anchors.as_in_context(mx.cpu())


def get_dataloaders(net, train_dataset, val_dataset, opt, batch_size):
    """GluonCV's loaders: the training transform computes SSD's targets from the net's anchors."""
    from gluoncv.data.batchify import Pad, Stack, Tuple
    from gluoncv.data.transforms.presets.ssd import SSDDefaultTrainTransform, SSDDefaultValTransform
    size = opt.data_shape
    if len(train_dataset) < batch_size:
        raise UsageError("batch_size %d is larger than the %d training images" % (batch_size, len(train_dataset)),
                         "batch_size")
    sampler = ShardSampler(len(train_dataset), seed=opt.seed)
    train = gluon.data.DataLoader(
        train_dataset.transform(SSDDefaultTrainTransform(size, size, ssd_anchors(net, size))),
        batch_size, sampler=sampler, batchify_fn=Tuple(Stack(), Stack(), Stack()), last_batch="rollover",
        num_workers=opt.num_workers)
    val = gluon.data.DataLoader(
        val_dataset.transform(SSDDefaultValTransform(size, size)), batch_size, shuffle=False,
        batchify_fn=Tuple(Stack(), Pad(pad_val=-1)), last_batch="keep", num_workers=opt.num_workers)
    return train, val, sampler


# ---- network ------------------------------------------------------------------------------------------
def build_network(name, kind, classes, opt, ctx):
    """The SSD, initialised: Xavier for every parameter not loaded from ``--backbone-params``/``--resume``."""
    options = network_options(opt)
    kwargs = dict(options, pretrained_base=False, **({"classes": classes} if kind == "custom" else {}))
    try:
        net = model_zoo.get_model(name, **kwargs)
    except (ValueError, TypeError) as err:
        raise UsageError(str(err))
    if opt.backbone_params:
        if not os.path.isfile(opt.backbone_params):
            raise UsageError("backbone_params not found: %s" % opt.backbone_params, "backbone_params")
        try:
            net.features.load_backbone(opt.backbone_params)
        except (ValueError, mx.MXNetError) as err:
            raise UsageError(str(err).splitlines()[0])
    if opt.resume:
        storage.load_parameters(net, opt.resume, "resume")
    with warnings.catch_warnings():  # loaded parameters are "already initialized": they are kept
        warnings.filterwarnings("ignore", message=".*already initialized")
        optimizers.initialize(net, ctx)
    net.collect_params().reset_ctx(ctx)
    return net


def make_trainer(net, opt, num_batches):
    optimizer = opt.optimizer or ("adam" if binary_weights(net) else "sgd")
    params = schedules.optimizer_params(opt, optimizer, opt.epochs, num_batches)
    trainer = gluon.Trainer(net.collect_params(), optimizer, params, kvstore=opt.kvstore)
    states = os.path.splitext(opt.resume)[0] + ".states" if opt.resume else ""
    if states and os.path.isfile(states):
        storage.load_states(trainer, states, "--resume's states", params=opt.resume)
    elif opt.start_epoch:
        # No optimizer state to resume: restart it, but continue the schedule where it was.
        trainer.optimizer.begin_num_update = trainer.optimizer.num_update = opt.start_epoch * num_batches
    return trainer, optimizer


# ---- training and validation --------------------------------------------------------------------------
def validate(net, val_data, ctx, metric):
    """Detect on the validation set and return the metric's ``(names, values)`` (per class, then mAP)."""
    metric.reset()
    net.set_nms(nms_thresh=NMS_THRESH, nms_topk=NMS_TOPK)
    net.hybridize(static_alloc=True)  # a fresh graph: the training one returns no detections
    for batch in val_data:
        data = gluon.utils.split_and_load(batch[0], ctx_list=ctx, batch_axis=0, even_split=False)
        label = gluon.utils.split_and_load(batch[1], ctx_list=ctx, batch_axis=0, even_split=False)
        det_bboxes, det_ids, det_scores, gt_bboxes, gt_ids, gt_difficults = [], [], [], [], [], []
        for x, y in zip(data, label):
            ids, scores, bboxes = net(x)
            det_ids.append(ids)
            det_scores.append(scores)
            det_bboxes.append(bboxes.clip(0, batch[0].shape[2]))
            gt_ids.append(y.slice_axis(axis=-1, begin=4, end=5))
            gt_bboxes.append(y.slice_axis(axis=-1, begin=0, end=4))
            gt_difficults.append(y.slice_axis(axis=-1, begin=5, end=6) if y.shape[-1] > 5 else None)
        metric.update(det_bboxes, det_ids, det_scores, gt_bboxes, gt_ids, gt_difficults)
    return metric.get()


def train_epoch(net, train_data, trainer, loss_fn, ctx, opt, epoch, bar, logger, num_batches, run):
    """One epoch of GluonCV's SSD training; returns the mean (CrossEntropy, SmoothL1) losses. A NaN or
    infinite loss stops the run (``run.check_loss``): the weights it updated are never saved."""
    ce_metric, smoothl1_metric = mx.metric.Loss("CrossEntropy"), mx.metric.Loss("SmoothL1")
    net.hybridize(static_alloc=True)  # a fresh graph: the validation one returns detections
    btic = time.time()
    for i, batch in enumerate(train_data):
        if i >= num_batches:
            break
        batch_size = batch[0].shape[0]
        data, cls_targets, box_targets = (gluon.utils.split_and_load(b, ctx_list=ctx, batch_axis=0) for b in batch)
        with autograd.record():
            cls_preds, box_preds = zip(*[net(x)[:2] for x in data])
            sum_loss, cls_loss, box_loss = loss_fn(cls_preds, box_preds, cls_targets, box_targets)
            autograd.backward(sum_loss)
        trainer.step(1)  # SSDMultiBoxLoss already normalises by the number of positive anchors
        ce_metric.update(0, [l * batch_size for l in cls_loss])
        smoothl1_metric.update(0, [l * batch_size for l in box_loss])
        (_, ce), (_, smoothl1) = ce_metric.get(), smoothl1_metric.get()
        run.check_loss(ce + smoothl1, epoch, i)  # running means: a non-finite batch makes them non-finite
        bar.update(1)
        bar.set_postfix(CrossEntropy="%.3f" % ce, SmoothL1="%.3f" % smoothl1, lr="%.2g" % trainer.learning_rate)
        if opt.log_interval and (i + 1) % opt.log_interval == 0:
            logger.info("[Epoch %d][Batch %d], Speed: %.3f samples/sec, CrossEntropy=%.3f, SmoothL1=%.3f, lr=%g"
                        % (epoch, i, batch_size * opt.log_interval / (time.time() - btic), ce, smoothl1,
                           trainer.learning_rate))
            btic = time.time()
    return ce_metric.get()[1], smoothl1_metric.get()[1]


def train_epochs(run, net, train_data, val_data, sampler, trainer, loss_fn, metric, ctx, opt, logger, num_batches,
                 prefix):
    """The epochs of :func:`train` still to train (``run.epochs()``)."""
    for epoch in run.epochs():
        sampler.set_epoch(epoch)
        tic = time.time()
        with run.progress(epoch, num_batches) as bar:
            ce, smoothl1 = train_epoch(net, train_data, trainer, loss_fn, ctx, opt, epoch, bar, logger, num_batches,
                                       run)
        logger.info("[Epoch %d] Training cost: %.3f, CrossEntropy=%.3f, SmoothL1=%.3f"
                    % (epoch, time.time() - tic, ce, smoothl1))
        current_map, per_class = None, None
        if (epoch + 1) % opt.val_interval == 0 or epoch + 1 == opt.epochs:
            names, values = validate(net, val_data, ctx, metric)
            logger.info("[Epoch %d] Validation: \n%s" % (epoch, "\n".join("%s=%s" % nv for nv in zip(names, values))))
            current_map = float(values[-1])
            per_class = dict(zip(names[:-1], (float(v) for v in values[:-1])))
        improved = run.end_epoch(epoch, {"train_crossentropy_loss": ce, "train_smoothl1_loss": smoothl1,
                                         "val_map": current_map, "val_ap": per_class}, net, trainer)
        if improved:
            with open(prefix + "_best_map.log", "a") as f:
                f.write("%04d:\t%.4f\n" % (epoch, current_map))


def train(opt):
    """Train as the flags ``opt`` say (:func:`binary_models.commands.train_ssd.parse_args`); returns 0."""
    ctx = [mx.gpu(i) for i in opt.gpus] or [mx.cpu()]
    seed_everything(opt.seed)
    kind, train_dataset, val_dataset, classes = get_dataset(opt)
    name = ssd.ssd_name(opt.data_shape, opt.network.lower(), kind)
    prefix = opt.save_prefix + name
    run_files = RunFiles(prefix, "_", history=prefix + "_history.json", curves=prefix + "_curves.png",
                         summary=prefix + "_summary.json", log=prefix + "_train.log")
    run_files.claim()  # before the first log line: a refused second run writes nothing into this run's log
    logger = setup_logger(run_files.log)
    logger.info(opt)
    if opt.resume == "auto":
        point = resume.find_newest(prefix, "_")
        opt.resume, opt.start_epoch = (point.params, point.epoch) if point else ("", 0)
        logger.info("continuing from %s" % point.describe() if point else
                    "--resume auto: no checkpoint to continue from: starting a new run")
        if opt.start_epoch >= opt.epochs:
            logger.info("--resume: the run is complete (--epochs %d): nothing to train" % opt.epochs)
            unlock_run(run_files.lock)
            return 0
    logger.info("network %s, %d classes, %d training and %d validation images"
                % (name, len(classes), len(train_dataset), len(val_dataset)))

    net = build_network(name, kind, classes, opt, ctx)
    batch_size = opt.batch_size
    train_data, val_data, sampler = get_dataloaders(net, train_dataset, val_dataset, opt, batch_size)
    num_batches = min(max(len(train_dataset) // batch_size, 1), opt.max_batches or float("inf"))
    trainer, optimizer = make_trainer(net, opt, num_batches)
    metric = val_metric(kind, val_dataset, classes, opt, prefix)
    from gluoncv.loss import SSDMultiBoxLoss
    loss_fn = SSDMultiBoxLoss()
    logger.info("optimizer %s; binary layers: %d; start training from [Epoch %d]"
                % (optimizer, len(binary_weights(net)), opt.start_epoch))

    model_kwargs = dict(network_options(opt), **({"classes": list(classes)} if kind == "custom" else {}))
    run = TrainingRun(run_files, dict(model=name, model_kwargs=model_kwargs, input_size=opt.data_shape,
                                      classes=list(classes), kind="detection", dataset=opt.dataset),
                      ("train_crossentropy_loss", "train_smoothl1_loss", "val_map", "val_ap"), "val_map",
                      opt.epochs, opt.start_epoch, opt.seed, opt.save_interval,
                      periodic_tag=lambda epoch, metrics: "%04d_%.4f" % (epoch, metrics["val_map"] or 0.0),
                      curves={"train CrossEntropy loss": "train_crossentropy_loss",
                              "train SmoothL1 loss": "train_smoothl1_loss", "val mAP": "val_map"},
                      title="%s on %s" % (name, opt.dataset), progress=not opt.no_progress,
                      stop_grace=0)
    # A stop signal stops at once, keeping the last checkpoint: no mid-epoch one, as the order of the
    # batches (last_batch="rollover", augmentation in worker processes) is no function of the position.
    with run.stoppable():
        train_epochs(run, net, train_data, val_data, sampler, trainer, loss_fn, metric, ctx, opt, logger,
                     num_batches, prefix)

    summary = run.finish({"map": "val_map", "ap": "val_ap"}, network=name, dataset=opt.dataset,
                         classes=list(classes), data_shape=opt.data_shape, model_kwargs=model_kwargs,
                         optimizer=optimizer, args=vars(opt))
    logger.info("best validation mAP %s (epoch %s); wall time %.1f s; outputs %s_*"
                % (summary["best_map"], summary["best_epoch"], summary["wall_time_s"], os.path.abspath(prefix)))
    return 0
