"""What the training scripts share (``train_imagenet.py``, ``detection/train_ssd.py``): thread set-up,
logging, learning-rate schedules, atomic checkpoints, training-curve plots, and clean exits on bad input.
"""
import contextlib
import json
import logging
import os
import sys
import tempfile


class UsageError(Exception):
    """Bad input from the command line (missing data, unknown model, mismatched resume file): the
    scripts print the message and exit with status 2 instead of a traceback."""


def use_all_cores():
    """Give MXNet's OpenMP pool every core unless the user chose (``OMP_NUM_THREADS``): MXNet's pip wheel
    defaults to the number of *physical* cores, 1 on a 2-vCPU machine, which halves its speed there. Only
    effective before ``mxnet`` is first imported; ``import binary_models`` calls it."""
    if "mxnet" not in sys.modules:
        os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))


def run_script(main, argv=None):
    """Run ``main(argv)``; a :class:`UsageError` prints ``error: ...`` and exits with status 2."""
    try:
        return main(argv)
    except UsageError as err:
        print("error: %s" % err, file=sys.stderr)
        sys.exit(2)


def setup_logger(logging_file=None, enabled=True, name="binary_models"):
    """GluonCV-style logging: INFO lines to the console and, when given, to ``logging_file``.
    ``enabled=False`` (non-zero ranks of a distributed run) silences the logger."""
    logger = logging.getLogger(name)
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.INFO if enabled else logging.CRITICAL + 1)
    formatter = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S")
    handlers = [logging.StreamHandler(sys.stdout)]
    if logging_file and enabled:
        directory = os.path.dirname(os.path.abspath(logging_file))
        os.makedirs(directory, exist_ok=True)
        handlers.append(logging.FileHandler(logging_file))
    for handler in handlers:
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    return logger


def parse_epochs(text):
    """``'30,60,90'`` -> ``[30, 60, 90]`` (GluonCV's ``--lr-decay-epoch``); empty -> ``[]``."""
    try:
        return [int(e) for e in str(text).split(",") if e.strip()]
    except ValueError:
        raise UsageError("epochs must be comma-separated integers, got %r" % (text,))


LR_MODES = ("step", "cosine", "poly", "linear")


def lr_schedule(mode, base_lr, num_epochs, iters_per_epoch, warmup_epochs=0, warmup_lr=0.0,
                decay=0.1, decay_epochs=(), power=2.0):
    """GluonCV's schedule: a linear warm-up from ``warmup_lr`` over ``warmup_epochs``, then ``mode``
    (step: x``decay`` at ``decay_epochs``; cosine: lr (1 + cos(pi t)) / 2 (MeliusNet section 4.1); poly) down
    to 0 at ``num_epochs``. Driven by the optimizer's update count, so resumed trainer states continue it."""
    from gluoncv.utils import LRScheduler, LRSequential
    if mode not in LR_MODES:
        raise UsageError("unknown --lr-mode %r; allowed: %s" % (mode, ", ".join(LR_MODES)))
    # LRScheduler's step epochs count from the start of its own phase, i.e. after the warm-up.
    steps = [e - warmup_epochs for e in decay_epochs if e >= warmup_epochs]
    schedule = LRSequential([
        LRScheduler("linear", base_lr=warmup_lr, target_lr=base_lr, nepochs=warmup_epochs,
                    iters_per_epoch=iters_per_epoch),
        LRScheduler(mode, base_lr=base_lr, target_lr=0, nepochs=max(num_epochs - warmup_epochs, 1),
                    iters_per_epoch=iters_per_epoch, step_epoch=steps, step_factor=decay, power=power),
    ])
    schedule.base_lr = base_lr  # what MXNet's optimizer compares its learning_rate with
    return schedule


def add_schedule_arguments(group, lr, lr_mode, lr_decay_epoch):
    """The learning-rate flags both training scripts share (GluonCV's names), with per-script defaults."""
    group.add_argument("--lr", type=float, default=lr, help="base learning rate")
    group.add_argument("--lr-mode", default=lr_mode, choices=LR_MODES)
    group.add_argument("--lr-decay", type=float, default=0.1, help="factor of each step decay")
    group.add_argument("--lr-decay-period", type=int, default=0, help="decay every N epochs (0: use --lr-decay-epoch)")
    group.add_argument("--lr-decay-epoch", default=lr_decay_epoch, help="epochs of the step decays")
    group.add_argument("--warmup-lr", type=float, default=0.0, help="learning rate at the start of the warm-up")
    group.add_argument("--warmup-epochs", type=int, default=0, help="epochs of linear warm-up")
    group.add_argument("--momentum", type=float, default=0.9, help="momentum of sgd and nag")


def optimizer_params(opt, optimizer, num_epochs, iters_per_epoch):
    """Trainer arguments from the flags of :func:`add_schedule_arguments` and ``--wd``: learning rate,
    weight decay, the :func:`lr_schedule`, and momentum for sgd/nag."""
    decay_epochs = (list(range(opt.lr_decay_period, num_epochs, opt.lr_decay_period)) if opt.lr_decay_period > 0
                    else parse_epochs(opt.lr_decay_epoch))
    schedule = lr_schedule(opt.lr_mode, opt.lr, num_epochs, iters_per_epoch, opt.warmup_epochs, opt.warmup_lr,
                           opt.lr_decay, decay_epochs)
    params = {"learning_rate": opt.lr, "wd": opt.wd, "lr_scheduler": schedule}
    if optimizer in ("sgd", "nag"):
        params["momentum"] = opt.momentum
    return params


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path`` (an atomic
    replace), on failure removed. A reader never sees a partially written file."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path, data):
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True, default=str)
            f.write("\n")


def save_checkpoint(prefix, net, trainer=None):
    """Write ``prefix.params`` (and ``prefix.states`` for a trainer) atomically. The states are written
    first, so a ``.params`` file always has its matching ``.states`` beside it."""
    if trainer is not None:
        with atomic_path(prefix + ".states") as tmp:
            trainer.save_states(tmp)
    with atomic_path(prefix + ".params") as tmp:
        net.save_parameters(tmp)
    return prefix + ".params"


def plot_curves(path, history, title=""):
    """Rewrite the training-curve PNG: one panel per metric group of ``history`` (a dict name -> list of
    per-epoch values; names containing 'loss' share the left panel, the rest the right one)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    losses = {k: v for k, v in history.items() if "loss" in k and v}
    scores = {k: v for k, v in history.items() if "loss" not in k and v}
    panels = [(p, label) for p, label in ((losses, "loss"), (scores, "score")) if p]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(5.5 * max(len(panels), 1), 4), squeeze=False)
    for ax, (series, label) in zip(axes[0], panels):
        for name, values in sorted(series.items()):
            ax.plot(range(1, len(values) + 1), values, marker="o", label=name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    save_png(fig, path)


def save_png(fig, path, **savefig_options):
    """Write a matplotlib figure to ``path`` as PNG, atomically, and close it."""
    import matplotlib.pyplot as plt
    savefig_options.setdefault("dpi", 100)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", **savefig_options)
    plt.close(fig)


def seed_everything(seed):
    """Seed Python's, NumPy's and MXNet's generators (at the start of every epoch, with ``seed + epoch``,
    so that a resumed run replays the same data order and augmentation)."""
    import random
    import numpy as np
    import mxnet as mx
    random.seed(seed)
    np.random.seed(seed)
    mx.random.seed(seed)


def load_parameters(net, path, what, ctx=None):
    """``net.load_parameters(path)``, or a :class:`UsageError` naming the flag ``what`` when the file is
    missing or does not fit the network."""
    import mxnet as mx
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        raise UsageError("%s not found: %s" % (what, path))
    try:
        net.load_parameters(path, ctx=ctx or mx.cpu())
    except (mx.MXNetError, AssertionError, AttributeError, ValueError) as err:
        raise UsageError("%s %s does not match the model: %s" % (what, path, str(err).splitlines()[0]))


def load_history(path, start_epoch, keys):
    """Per-epoch history for the curves: the first ``start_epoch`` entries of ``path`` when resuming,
    else empty lists for ``keys``."""
    history = {key: [] for key in keys}
    if start_epoch and os.path.isfile(path):
        with open(path) as f:
            history.update({k: v[:start_epoch] for k, v in json.load(f).items()})
    return history


def create_kvstore(name):
    """``(kvstore, rank, num_workers, horovod module or None)`` for ``--kvstore name``: MXNet's kvstore
    (``dist_*`` needs the ``DMLC_*`` environment of :mod:`binary_models.launch`), or Horovod."""
    import mxnet as mx
    if name == "horovod":
        try:
            import horovod.mxnet as hvd
        except ImportError:
            raise UsageError("--kvstore horovod needs Horovod built with MXNet support (pip install horovod)")
        hvd.init()
        return None, hvd.rank(), hvd.size(), hvd
    if name.startswith("dist") and "DMLC_ROLE" not in os.environ:
        raise UsageError("--kvstore %s needs the DMLC_* environment: start the script with "
                         "python -m binary_models.launch -n WORKERS -s SERVERS -- python SCRIPT ..." % name)
    kv = mx.kv.create(name)
    return kv, kv.rank, kv.num_workers, None


AUX_KEY_OFFSET = 1 << 24  # kvstore keys of BatchNorm statistics, clear of the Trainer's parameter indices


def average_aux_states(net, kv, num_workers, initialized):
    """Average BatchNorm's running statistics over the workers of a distributed kvstore (which sums what
    the workers push), so that every worker ends an epoch with the same model."""
    import mxnet as mx
    aux = [p for p in net.collect_params().values() if p.grad_req == "null"]
    for i, param in enumerate(aux):
        key, data = AUX_KEY_OFFSET + i, param.data()
        if not initialized:
            kv.init(key, mx.nd.zeros_like(data))
        kv.push(key, data)
        kv.pull(key, out=data)
        data /= num_workers
