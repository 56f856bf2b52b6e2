"""ImageNet-style classification training (the logic of ``bm train`` and ``train_imagenet.py``).

GluonCV's ``scripts/classification/imagenet/train_imagenet.py`` with the same flags and log lines, plus what
binary networks need (quantization flags, RAdam, Tang et al.'s bipolar regularizer), atomic checkpoints with
exact resume, a progress bar, a training-curve PNG and ``summary.json``, and MXNet's distributed kvstore
(started by ``bm launch``). :func:`train` takes the parsed flags of
:func:`binary_models.commands.train_imagenet.parse_args`; docs/training.md has the papers' recipes.
"""
import math
import os
import re
import time

import mxnet as mx
from mxnet import autograd, gluon

from .. import model_zoo, storage
from ..data import datasets
from ..errors import UsageError
from ..train.regularization import binary_weights, clip_binary_weights
from . import distributed, resume, schedules
from . import optimizers  # also registers 'radam'
from .losses import TrainingObjective
from .metrics import FlipRatio
from ..nn.constraints import apply_constraints
from .loop import RunFiles, TrainingRun, seed_everything, setup_logger

KVSTORES = ("device", "local", "dist_sync", "dist_device_sync", "dist_async", "horovod")


def layer_options(opt):
    """The binary-layer flags that were given, as get_model keyword arguments."""
    flags = dict(bits=opt.bits, bits_a=opt.bits_a, grad_cancel=opt.clip_threshold,
                 activation=opt.activation_method, binarizations=opt.binarizations, scaling=opt.scaling,
                 stem=opt.stem)
    return {k: v for k, v in flags.items() if v is not None}


def gluoncv_model_list():
    from gluoncv.model_zoo import get_model_list
    return get_model_list()


def build_model(name, classes, options, ctx, pretrained=False, last_gamma=False):
    """``get_model(name)`` with the binary-layer ``options`` (for this package's models) or GluonCV's model."""
    kwargs = dict(classes=classes)
    if name.lower() in model_zoo.get_model_list():
        kwargs.update(options)
    elif options and name.lower() in gluoncv_model_list():
        raise UsageError("%s are options of binary_models models; %r is a GluonCV model"
                         % (", ".join("--" + k.replace("_", "-") for k in options), name))
    if last_gamma:
        kwargs["last_gamma"] = True
    try:
        return model_zoo.get_model(name, pretrained=pretrained, ctx=ctx, **kwargs)
    except (ValueError, TypeError, FileNotFoundError) as err:
        raise UsageError(str(err))


def load_data(opt, shard, log_file=None):
    common = dict(num_workers=opt.num_workers, shard=shard, seed=opt.seed)
    batch_size = opt.batch_size * max(1, opt.num_gpus)
    if opt.dataset == "digits":
        return datasets.digits_data(batch_size, opt.input_size, **common)
    if opt.use_rec:
        return datasets.record_data(opt.rec_train, opt.rec_train_idx, opt.rec_val, opt.rec_val_idx, batch_size,
                                    opt.classes, opt.input_size, opt.crop_ratio, **common)
    return datasets.image_folder_data(opt.data_dir, batch_size, opt.input_size, opt.crop_ratio, log_file=log_file,
                                      **common)


def build_teacher(opt, classes, ctx):
    """The distillation teacher: ``--teacher-params``, or the model store's pretrained file."""
    options = {"stem": opt.stem} if opt.stem and opt.teacher.lower() in model_zoo.get_model_list() else {}
    teacher = build_model(opt.teacher, classes, options, ctx, pretrained=not opt.teacher_params)
    if opt.teacher_params:
        storage.load_parameters(teacher, opt.teacher_params, "teacher_params", ctx)
    teacher.collect_params().setattr("grad_req", "null")
    if opt.mode == "hybrid":
        teacher.hybridize(static_alloc=True)
    return teacher


def evaluate(net, val_data, batch_fn, ctx, dtype, stop_point=lambda: None):
    """Top-1 and top-5 accuracy on the validation data (``stop_point()`` before each batch)."""
    top1, top5 = mx.metric.Accuracy(), mx.metric.TopKAccuracy(5)
    if hasattr(val_data, "reset"):
        val_data.reset()
    for batch in val_data:
        stop_point()
        data, label = batch_fn(batch, ctx)
        pad = getattr(batch, "pad", 0) or 0
        outputs = [net(x.astype(dtype, copy=False)) for x in data]
        if pad:  # ImageRecordIter fills its last batch by wrapping around
            outputs[-1], label[-1] = outputs[-1][:outputs[-1].shape[0] - pad], label[-1][:label[-1].shape[0] - pad]
        top1.update(label, outputs)
        if outputs[0].shape[1] >= 5:
            top5.update(label, outputs)
    return top1.get()[1], (top5.get()[1] if top5.num_inst else float("nan"))


def make_trainer(net, opt, kv, hvd, num_batches):
    bop = opt.optimizer == "bop"
    name = opt.bop_default if bop else opt.optimizer
    params = schedules.optimizer_params(opt, name, opt.num_epochs, num_batches)
    if opt.dtype != "float32":
        params["multi_precision"] = True
    optimizer = opt.optimizer
    if bop:
        if not binary_weights(net):
            raise UsageError("optimizer bop: model %s has no binary weights" % opt.model, "optimizer")
        if opt.bop_gamma <= 0:
            raise UsageError("bop_gamma must be above 0, got %g" % opt.bop_gamma, "bop_gamma")
        optimizer = optimizers.bop_for_binary_weights(mx.optimizer.create(name, **params), opt.bop_threshold,
                                                      opt.bop_gamma)
        params = None
    if opt.no_wd:
        for name, param in net.collect_params(".*beta|.*gamma|.*bias").items():
            param.wd_mult = 0.0
    if hvd is not None:
        hvd.broadcast_parameters(net.collect_params(), root_rank=0)
        return hvd.DistributedTrainer(net.collect_params(), optimizer, params)
    update_on_kvstore = None
    if kv is not None and "dist" in kv.type:
        # Update on the workers: they then apply the bipolar weight clip to the same weights; async
        # training updates on the servers, where no clip is possible.
        if "async" in kv.type:
            if opt.bipolar_reg:
                raise UsageError("bipolar_reg clips weights after each update on the workers; "
                                 "dist_async updates on the servers: use dist_sync", "bipolar_reg")
            if bop:
                raise UsageError("optimizer bop picks the binary weights on the workers; dist_async updates "
                                 "on the servers: use dist_sync", "optimizer")
        else:
            update_on_kvstore = False
    return gluon.Trainer(net.collect_params(), optimizer, params, kvstore=kv,
                         update_on_kvstore=update_on_kvstore)


def _metric_sums(metric):
    return [metric.sum_metric, metric.num_inst, metric.global_sum_metric, metric.global_num_inst]


def train_epoch(net, trainer, data, objective, opt, ctx, epoch, bar, logger, num_batches, num_workers, run, flips):
    """One epoch over ``data.train`` (from ``run.first_batch(epoch)``, continuing a checkpoint's sums): returns
    ``(metric name, score, mean loss, sums)``, ``sums`` what :meth:`run.stop_point` saves; ``flips`` (a
    :class:`~binary_models.train.metrics.FlipRatio`) counts the binary weights' sign changes of every step.
    Weight constraints are applied after each step. A NaN or infinite loss stops the run
    (``run.check_loss``): the weights it updated are never saved."""
    batch_size = opt.batch_size * len(ctx)
    train_metric = mx.metric.RMSE() if opt.mixup else mx.metric.Accuracy()
    saved = run.epoch_state(epoch)
    if saved:
        (train_metric.sum_metric, train_metric.num_inst, train_metric.global_sum_metric,
         train_metric.global_num_inst) = saved["metric"]
    loss_sum, loss_count = saved.get("loss_sum", 0.0), saved.get("loss_count", 0)
    flips.total, flips.steps = saved.get("flips", (0.0, 0))
    sums = lambda: dict(metric=_metric_sums(train_metric), loss_sum=loss_sum, loss_count=loss_count,
                        flips=(flips.total, flips.steps))
    first = run.first_batch(epoch)
    bar.update(first)
    batches = iter(data.train)
    btic = time.time()
    for i in range(first, num_batches):
        run.stop_point(epoch, i, net, trainer, sums())
        run.seed_batch(epoch, i)  # before the batch is read: its augmentation draws from the seeded generators
        batch = next(batches, None)
        if batch is None:
            break
        inputs, labels = data.batch_fn(batch, ctx)
        lam = objective.mixup_lambda(epoch)
        prepared = [objective.inputs_and_targets(x.astype(opt.dtype, copy=False), y, lam)
                    for x, y in zip(inputs, labels)]
        soft = [objective.teacher_targets(x) for x, _ in prepared]
        with autograd.record():
            results = [objective(net, x, t, s) for (x, t), s in zip(prepared, soft)]
        autograd.backward([losses for losses, _ in results])
        flips.watch()
        run.workers.step(trainer, net, batch_size * num_workers)
        apply_constraints(net)
        batch_loss = sum(float(losses.sum().asscalar()) for losses, _ in results)
        run.check_loss(batch_loss / batch_size, epoch, i)
        if opt.bipolar_reg:
            clip_binary_weights(net)
        flips.update()
        outputs = [out for _, out in results]
        train_metric.update([t for _, t in prepared] if opt.mixup else labels, outputs)
        loss_sum += batch_loss
        loss_count += batch_size
        bar.update(1)
        bar.set_postfix(loss="%.4f" % (loss_sum / loss_count), lr="%.2g" % trainer.learning_rate)
        if opt.log_interval and (i + 1) % opt.log_interval == 0:
            name, score = train_metric.get()
            logger.info("Epoch[%d] Batch [%d]\tSpeed: %f samples/sec\t%s=%f\tloss=%f\tlr=%f%s" % (
                epoch, i, batch_size * opt.log_interval / (time.time() - btic), name, score,
                loss_sum / loss_count, trainer.learning_rate, _flip_text(flips)))
            btic = time.time()
    run.stop_point(epoch, num_batches, net, trainer, sums())
    name, score = train_metric.get()
    return name, score, loss_sum / max(loss_count, 1), sums()


def resume_point(opt, run_files, num_batches, workers, logger):
    """The checkpoint ``--resume`` names (``auto``: the newest in ``--save-dir``), or None: a new run, or
    one the explicit ``--resume-*`` flags continue. Every worker of a distributed run must find the same."""
    point = None
    if opt.resume == "auto":
        point = resume.find_newest(run_files.checkpoint_prefix, run_files.separator)
        if point is None:
            logger.info("--resume auto: no checkpoint to continue from in %s: starting a new run"
                        % os.path.abspath(opt.save_dir))
    elif opt.resume:
        point = resume.read_point(re.sub(r"(\.params|\.states|%s)$" % re.escape(resume.PROGRESS_SUFFIX), "",
                                         os.path.expanduser(opt.resume)), "resume")
    workers.check_same_start(*((point.epoch, point.batch) if point else (opt.resume_epoch, 0)))
    if point is not None:
        resume.check_continuable(point, num_batches, workers.num_workers, "--resume")
        opt.resume_epoch, opt.resume_params, opt.resume_states = point.epoch, point.params, point.states
        if point.epoch < opt.num_epochs:
            logger.info("continuing from %s" % point.describe())
    return point


def _flip_text(flips):
    """The log's ``\tflip_ratio=...`` of the steps so far, or '' without binary weights."""
    return "" if flips.get() is None else "\tflip_ratio=%f" % flips.get()


def train(opt):
    """Train as the flags ``opt`` say (:func:`binary_models.commands.train_imagenet.parse_args`); returns 0."""
    kv, rank, num_workers, hvd = distributed.create_kvstore(opt.kvstore)
    workers = distributed.Workers(kv, rank, num_workers)
    distributed_run = num_workers > 1
    is_chief = rank == 0
    ctx = [mx.gpu(i) for i in range(opt.num_gpus)] if opt.num_gpus > 0 else [mx.cpu()]
    seed_everything(opt.seed)
    logging_file = opt.logging_file
    if logging_file and not os.path.dirname(logging_file):
        logging_file = os.path.join(opt.save_dir, logging_file)
    data = load_data(opt, (rank, num_workers), logging_file if is_chief else None)
    opt.classes = data.classes  # what the data has (--classes is for RecordIO data only)
    storage.make_folder(opt.save_dir, "save_dir")  # only once the data is there: a typo leaves no empty run folder
    run_files = RunFiles(os.path.join(opt.save_dir, "imagenet-%s" % opt.model), "-",
                         history=os.path.join(opt.save_dir, "history.json"),
                         curves=os.path.join(opt.save_dir, "training_curve.png"),
                         summary=os.path.join(opt.save_dir, "summary.json"), log=logging_file)
    if is_chief:
        run_files.claim()  # before the first log line: a refused second run writes nothing into this run's log
    logger = setup_logger(logging_file, enabled=is_chief)
    logger.info(opt)
    batch_size = opt.batch_size * len(ctx)
    num_batches = min(data.num_train // batch_size, opt.max_batches or float("inf"))

    point = resume_point(opt, run_files, num_batches, workers, logger)
    if point is not None and point.epoch >= opt.num_epochs:
        logger.info("--resume: the run in %s is complete (%s; --num-epochs %d): nothing to train"
                    % (os.path.abspath(opt.save_dir), point.describe(), opt.num_epochs))
        storage.unlock_run(run_files.lock)
        return 0

    net = build_model(opt.model, data.classes, layer_options(opt), ctx, opt.use_pretrained, opt.last_gamma)
    if opt.resume_params:
        storage.load_parameters(net, opt.resume_params, "resume_params", ctx)
    elif not opt.use_pretrained:
        optimizers.initialize(net, ctx)
    net.cast(opt.dtype)
    if opt.mode == "hybrid":
        net.hybridize(static_alloc=True)  # not static_shape: it makes BatchNorm's backward ~15x slower on CPU
    teacher = build_teacher(opt, data.classes, ctx) if opt.teacher else None
    objective = TrainingObjective(data.classes, 0.1 if opt.label_smoothing else 0.0,
                                  opt.mixup_alpha if opt.mixup else 0.0,
                                  opt.mixup_off_epoch or opt.num_epochs, teacher, opt.temperature,
                                  opt.hard_weight, opt.bipolar_reg, opt.distributional_loss)
    if opt.bipolar_reg and not binary_weights(net):
        raise UsageError("bipolar_reg: model %s has no binary weights" % opt.model, "bipolar_reg")
    if teacher is not None:
        probe = mx.nd.zeros((1, 3, opt.input_size, opt.input_size), ctx=ctx[0])
        if teacher(probe).shape[1] != data.classes:
            raise UsageError("teacher %s predicts %d classes, the data has %d"
                             % (opt.teacher, teacher(probe).shape[1], data.classes), "teacher")

    trainer = make_trainer(net, opt, kv, hvd, num_batches)
    if opt.resume_states:
        storage.load_states(trainer, opt.resume_states, "resume_states", params=opt.resume_params or None)
    if point is not None:  # after load_states, which broadcasts worker 0's parameters to every worker
        resume.load_rank_statistics(net, point, rank)

    model_kwargs = dict(classes=data.classes, **layer_options(opt))
    run = TrainingRun(run_files, dict(model=opt.model, model_kwargs=model_kwargs, input_size=opt.input_size,
                                      classes=data.classes, dataset=opt.dataset, crop_ratio=opt.crop_ratio),
                      ("train_loss", "train_accuracy", "val_top1", "val_top5", "flip_ratio"), "val_top1",
                      opt.num_epochs, opt.resume_epoch, opt.seed, opt.save_frequency,
                      curves={"train loss": "train_loss", "val top-1": "val_top1", "val top-5": "val_top5",
                              "train accuracy": "train_accuracy", "binary weights flipped per step": "flip_ratio"},
                      title="%s on %s" % (opt.model, opt.dataset), is_chief=is_chief, progress=not opt.no_progress,
                      resume=point, workers=workers, stop_grace=opt.stop_grace)
    aux_initialized = False
    flips = FlipRatio(net)
    with run.stoppable():
        for epoch in run.epochs():
            data.start_epoch(epoch, run.first_batch(epoch))
            flips.reset()
            tic = time.time()
            with run.progress(epoch, num_batches) as bar:
                name, score, train_loss, sums = train_epoch(net, trainer, data, objective, opt, ctx, epoch, bar,
                                                            logger, num_batches, num_workers, run, flips)
            if distributed_run and kv is not None and not run.statistics_averaged(epoch):
                distributed.average_aux_states(net, kv, num_workers, aux_initialized)
                aux_initialized = True
            throughput = int(batch_size * num_batches * num_workers / (time.time() - tic))
            top1, top5 = evaluate(net, data.val, data.batch_fn, ctx, opt.dtype,
                                  lambda: run.stop_point(epoch, num_batches, net, trainer, sums, aux_averaged=True))
            logger.info("[Epoch %d] training: %s=%f\tloss=%f\tlr=%f%s" % (epoch, name, score, train_loss,
                                                                           trainer.learning_rate, _flip_text(flips)))
            logger.info("[Epoch %d] speed: %d samples/sec\ttime cost: %f" % (epoch, throughput, time.time() - tic))
            logger.info("[Epoch %d] validation: top1=%f top5=%f err-top1=%f err-top5=%f" % (
                epoch, top1, top5, 1 - top1, 1 - top5))
            run.end_epoch(epoch, {"train_loss": train_loss, "train_accuracy": score if not opt.mixup else math.nan,
                                  "val_top1": top1, "val_top5": top5, "flip_ratio": flips.get()}, net, trainer)

    if distributed_run:
        # Every worker keeps its final weights, so that their agreement can be checked.
        storage.save_checkpoint(run_files.checkpoint("final-rank%d" % rank), net)
    summary = run.finish({"top1": "val_top1", "top5": "val_top5"}, model=opt.model, dataset=opt.dataset,
                         args=vars(opt), num_workers=num_workers, classes=data.classes, model_kwargs=model_kwargs)
    logger.info("best validation: top1=%s top5=%s (epoch %s); wall time %.1f s; outputs in %s"
                % (summary["best_top1"], summary["best_top5"], summary["best_epoch"], summary["wall_time_s"],
                   os.path.abspath(opt.save_dir)))
    return 0

