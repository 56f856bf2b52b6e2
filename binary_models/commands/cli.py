"""What every command line of the package shares: bad input becomes one ``error: ...`` line on stderr and
exit status 2, never a traceback.

:class:`ArgumentParser` is argparse's parser with that rule for its own errors (an unknown flag, a value of
the wrong type), and the argument types below check numbers up front, naming the flag and what is allowed
(``error: argument --batch-size: must be an integer >= 1, got -4``)."""
import argparse
import contextlib
import logging
import math
import os
import signal
import sys
import traceback
import warnings

from ..errors import BinaryModelsError, UsageError, error_line  # noqa: F401  (the commands' error contract)
from ..inference import native
from ..models import meliusnet
from ..nn import layers, normalization, quantization
from ..storage.locks import release_run_locks
from ..train import distributed, schedules, stopping


def fail(message):
    """Print ``error: message`` on stderr and exit with status 2."""
    print("error: %s" % message, file=sys.stderr)
    sys.exit(2)


# The flags of library arguments whose names differ (``run_path`` is ``--run`` on every command line).
FLAGS = {"run_path": "--run"}


def run_script(main, argv=None, flags=None):
    """Run ``main(argv)``; a :class:`~binary_models.errors.BinaryModelsError` prints ``error: ...`` (its
    argument named by its flag: ``flags[argument]``, :data:`FLAGS`, else ``--argument-with-dashes``) and exits
    with status 2. SIGINT, SIGTERM, SIGHUP and SIGUSR1 stop it (:mod:`binary_models.train.stopping`): one
    line saying what was kept, exit status 128 + the signal's number."""
    installed = stopping.install()
    try:
        return main(argv)
    except BinaryModelsError as err:
        fail(err.for_flags(dict(FLAGS, **(flags or {}))))
    except KeyboardInterrupt as err:
        signum = getattr(err, "signum", signal.SIGINT)
        print("stopped by %s: %s" % (stopping.signal_name(signum), getattr(err, "kept", None) or
                                      "every file is written whole or not at all; none was left half-written"),
              file=sys.stderr, flush=True)
        sys.exit(128 + signum)
    except BrokenPipeError:  # the reader went away (bm stats --all | head): stop quietly, as a shell tool does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        sys.exit(128 + signal.SIGPIPE)
    finally:
        if installed:  # the command ends: so do its runs, also after an error (their locks go)
            stopping.uninstall()
            release_run_locks()


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser whose errors are one ``error: ...`` line (not the whole usage) and exit status 2."""

    def error(self, message):
        fail("%s (see %s --help)" % (message, self.prog))


def number(kind=int, minimum=None, maximum=None, above=None):
    """An argparse type: ``kind`` (int or float, finite) with ``minimum <= value <= maximum`` and
    ``value > above`` where given; otherwise argparse reports the flag and this rule."""
    bounds = [b for b in ("> %g" % above if above is not None else None,
                          ">= %g" % minimum if minimum is not None else None,
                          "<= %g" % maximum if maximum is not None else None) if b]
    rule = "%s%s" % ("an integer" if kind is int else "a number", (" " + " and ".join(bounds)) if bounds else "")

    def convert(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError("must be %s, got %r" % (rule, text))
        if (kind is float and not math.isfinite(value)) or (above is not None and not value > above) \
                or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError("must be %s, got %s" % (rule, text))
        return value

    convert.__name__ = rule  # argparse names the type in some messages
    return convert


positive_int = number(int, minimum=1)
non_negative_int = number(int, minimum=0)
positive_float = number(float, above=0)
non_negative_float = number(float, minimum=0)


def gpu_list(text):
    """An argparse type: comma-separated GPU numbers (``0,1``; empty: none, the CPU) as a list of ints."""
    try:
        gpus = [int(g) for g in text.split(",") if g.strip()]
    except ValueError:
        gpus = [-1]
    if any(g < 0 for g in gpus) or len(set(gpus)) != len(gpus):
        raise argparse.ArgumentTypeError("must be distinct GPU numbers separated by commas, e.g. 0,1 (empty: the "
                                         "CPU), got %r" % text)
    return gpus


def check_gpus(flag, gpus):
    """Raise :class:`UsageError` naming ``flag`` when GPU numbers ``gpus`` are not all on this machine."""
    import mxnet as mx
    available = mx.context.num_gpus()
    if gpus and max(gpus) >= available:
        raise UsageError("%s %s: %s" % (flag, ",".join(map(str, gpus)), "no GPU is available (this MXNet sees none)"
                                        if not available else "this machine has GPUs 0-%d" % (available - 1)))


# The ``--seed`` flag's type: what NumPy's generator accepts.
seed_type = number(int, minimum=0, maximum=2 ** 32 - 1)


def epoch_list(text):
    """argparse type of ``--lr-decay-epoch``: :func:`parse_epochs`, each epoch at least 1."""
    try:
        epochs = schedules.parse_epochs(text)
    except UsageError as err:
        raise argparse.ArgumentTypeError(str(err))
    if any(e < 1 for e in epochs):
        raise argparse.ArgumentTypeError("epochs must be at least 1, got %r" % (text,))
    return text


def check_schedule(opt, num_epochs, epochs_flag, start_epoch, start_flag):
    """The rules between the schedule's flags and the run's length (``epochs_flag``): the epoch it starts at
    (``start_flag``: resumed runs) and the warm-up end before the last epoch."""
    if start_epoch >= num_epochs:
        raise UsageError("%s %d must be below %s %d (it is the next epoch to train)"
                         % (start_flag, start_epoch, epochs_flag, num_epochs))
    if opt.warmup_epochs and opt.warmup_epochs >= num_epochs:
        raise UsageError("--warmup-epochs %d must be below %s %d" % (opt.warmup_epochs, epochs_flag, num_epochs))


def add_schedule_arguments(group, lr, lr_mode, lr_decay_epoch):
    """The learning-rate flags both training scripts share (GluonCV's names), with per-script defaults."""
    group.add_argument("--lr", type=positive_float, default=lr, help="base learning rate")
    group.add_argument("--lr-mode", default=lr_mode, choices=schedules.LR_MODES)
    group.add_argument("--lr-decay", type=positive_float, default=0.1, help="factor of each step decay")
    group.add_argument("--lr-decay-period", type=non_negative_int, default=0,
                       help="decay every N epochs (0: use --lr-decay-epoch)")
    group.add_argument("--lr-decay-epoch", type=epoch_list, default=lr_decay_epoch, help="epochs of the step decays")
    group.add_argument("--warmup-lr", type=non_negative_float, default=0.0,
                       help="learning rate at the start of the warm-up")
    group.add_argument("--warmup-epochs", type=non_negative_int, default=0, help="epochs of linear warm-up")
    group.add_argument("--momentum", type=number(float, minimum=0, maximum=1), default=0.9,
                       help="momentum of sgd and nag")


def add_native_training_arguments(group):
    """``--no-fused-sign`` and ``--no-xnor-conv``, which both training scripts have."""
    group.add_argument("--no-fused-sign", action="store_true",
                       help="compute sign + straight-through gradient with a dozen MXNet operators instead of the "
                            "native library's fused ste_sign operator (same values and gradients, slower)")
    group.add_argument("--no-xnor-conv", action="store_true",
                       help="compute the binary convolutions as float convolutions of signs (oneDNN) instead of "
                            "the native library's binary_conv2d_train (xnor forward, the same values; float "
                            "backward, within rounding; faster)")


@contextlib.contextmanager
def native_training_on_cpu(opt, on_gpus):
    """While a training command runs on the CPU (``on_gpus`` false): sign + straight-through gradient is the
    native library's fused ``ste_sign`` operator unless ``--no-fused-sign``, and the binary convolutions are
    its ``binary_conv2d_train`` (xnor forward) with the models' BatchNorms as its ``plain_batch_norm`` (which
    the NCHW layout of the native operators needs) unless ``--no-xnor-conv``; where the library does not load,
    one line says so and MXNet's operators compute them. On the CPU, ImprovementBlocks also sum over the whole
    map (:func:`~binary_models.models.meliusnet.use_whole_map_sum`: oneDNN's layouts)."""
    fused_sign, xnor_conv = (not (opt.no_fused_sign or on_gpus), not (opt.no_xnor_conv or on_gpus))
    if fused_sign or xnor_conv:
        try:
            native.load()
        except BinaryModelsError as err:
            warnings.warn("sign + straight-through gradient and the binary convolutions run as MXNet operators "
                          "(slower): %s" % error_line(err))
            fused_sign = xnor_conv = False
    previous = (quantization.use_fused_sign(fused_sign), layers.use_xnor_training_conv(xnor_conv),
                normalization.use_plain_batch_norm(xnor_conv))
    previous_sum = meliusnet.use_whole_map_sum(not on_gpus)
    try:
        yield
    finally:
        quantization.use_fused_sign(previous[0])
        layers.use_xnor_training_conv(previous[1])
        normalization.use_plain_batch_norm(previous[2])
        meliusnet.use_whole_map_sum(previous_sum)


def run_worker(main, argv=None):
    """:func:`run_script` for a script that may run as a worker of a distributed job (``DMLC_ROLE=worker``):
    there, an error ends the process at once with its status (2 for a :class:`UsageError`, 1 and the
    traceback for an exception, 128 + the signal for a stop signal), and :mod:`binary_models.commands.launch` stops the rest of the job.

    Freeing a distributed kvstore finalises it, which waits at a barrier for every other worker: until they
    finish, or forever if they wait for this one's gradients. So :func:`create_kvstore` keeps it alive (an
    exception unwinding the script's frames would free it) until the script has succeeded, and an error
    skips the interpreter's clean-up with ``os._exit``."""
    if os.environ.get("DMLC_ROLE") != "worker":
        return run_script(main, argv)
    try:
        status = run_script(main, argv)
    except SystemExit as exit:
        if not exit.code:
            del distributed._JOINED[:]  # success (or --help): the final barrier is where the workers meet
            raise
        if isinstance(exit.code, str):
            print(exit.code, file=sys.stderr)
        status = exit.code if isinstance(exit.code, int) else 1
    except BaseException:
        traceback.print_exc()
        status = 1
    else:
        del distributed._JOINED[:]
        return status
    release_run_locks()  # os._exit skips the atexit functions
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
