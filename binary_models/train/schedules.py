"""Learning-rate schedules and optimizer parameters of both training scripts (GluonCV's flags and
``LRSequential``)."""
from ..errors import UsageError

LR_MODES = ("step", "cosine", "poly", "linear")


def parse_epochs(text):
    """``'30,60,90'`` -> ``[30, 60, 90]`` (GluonCV's ``--lr-decay-epoch``); empty -> ``[]``."""
    try:
        return [int(e) for e in str(text).split(",") if e.strip()]
    except ValueError:
        raise UsageError("epochs must be comma-separated integers, got %r" % (text,))


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
