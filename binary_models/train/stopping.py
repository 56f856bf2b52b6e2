"""Stopping on a signal, for every command: SIGINT (Ctrl-C), SIGTERM (Slurm, Kubernetes, ``docker stop``),
SIGHUP and SIGUSR1 (Slurm's early warning, ``#SBATCH --signal=USR1@90``) raise
:class:`~binary_models.errors.Stopped` where the process is, so that the write in progress completes or is
rolled back (as on Ctrl-C), and the command line (:func:`binary_models.commands.cli.run_script`) prints one
line and exits with 128 + the signal's number.

Training defers them (:func:`deferred`): the signal is only recorded (:func:`requested`), the training loop
saves the point reached at its next batch and raises :class:`Stopped` itself. The grace period bounds that:
at ``grace - 2`` seconds (at least half of it) :class:`Stopped` is raised wherever the process is (an
unfinished checkpoint write is rolled back), and at ``grace`` seconds a process stuck in native code (a
kvstore whose peers are gone) exits at once. A second Ctrl-C stops at once too; a second SIGTERM (Slurm
signals every process of a job) changes nothing."""
import contextlib
import logging
import os
import signal
import sys
import threading

from ..errors import Stopped

# The stop signals, most urgent first: SIGUSR1 asks for a requeue, which a worker of a distributed run that
# got another signal must honour too (distributed.agree_to_stop).
STOP_SIGNALS = (signal.SIGUSR1, signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
REQUEUE_STATUS = 128 + signal.SIGUSR1  # 138: the exit status of a run stopped by SIGUSR1 (docs/training-long-runs.md)
DEFAULT_GRACE_S = 20.0  # below Slurm's and Kubernetes' 30 s between SIGTERM and SIGKILL


class _State:
    pid = None            # the process that installed the handlers (forked children act as without them)
    previous = {}         # signal -> handler before install()
    grace = None          # while deferring: seconds from the first signal to the end of the process
    signum = None         # the first stop signal received while deferring
    cancel = None         # threading.Event that ends the grace watchdog


def signal_name(signum):
    return signal.Signals(signum).name


def install():
    """Turn the stop signals into :class:`Stopped` in this process (main thread only; elsewhere nothing
    happens). Returns True when installed; :func:`uninstall` restores the previous handlers."""
    if threading.current_thread() is not threading.main_thread() or _State.pid == os.getpid():
        return False
    _State.pid = os.getpid()
    _State.previous = {s: signal.signal(s, _handler) for s in STOP_SIGNALS}
    return True


def uninstall():
    _end_grace()
    for s, handler in _State.previous.items():
        signal.signal(s, handler)
    _State.pid, _State.previous, _State.grace, _State.signum = None, {}, None, None


def _handler(signum, frame):
    if os.getpid() != _State.pid:  # a forked child (a data-loading worker): the signal's default action
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    if signum == signal.SIGALRM:  # the grace watchdog: the process must end now
        if _State.signum is not None:
            raise Stopped(_State.signum, grace_expired=True)
        return
    if _State.grace is None or _State.grace <= 0 or (signum == signal.SIGINT and _State.signum == signal.SIGINT):
        raise Stopped(signum)
    if _State.signum is None:
        _State.signum = signum
        _start_grace(signum, _State.grace)
        logging.getLogger("binary_models").warning(
            "%s: saving the point reached and stopping, within %g s (--stop-grace)%s" % (
                signal_name(signum), _State.grace, "; Ctrl-C again stops at once" if signum == signal.SIGINT else ""))


def _start_grace(signum, grace):
    """The watchdog of a deferred stop: SIGALRM to the main thread at ``grace - 2`` s (at least ``grace / 2``),
    then, if the process still runs at ``grace`` s, its end with 128 + ``signum``."""
    cancel = _State.cancel = threading.Event()
    main = threading.main_thread().ident

    def watch():
        soft = max(grace - 2.0, grace / 2)
        if cancel.wait(soft):
            return
        signal.pthread_kill(main, signal.SIGALRM)
        if cancel.wait(grace - soft):
            return
        from ..storage.locks import release_run_locks
        release_run_locks()
        print("stopped by %s: --stop-grace %g s ran out in native code; the last complete checkpoint is kept "
              "(continue with --resume auto)" % (signal_name(signum), grace), file=sys.stderr, flush=True)
        os._exit(128 + signum)

    threading.Thread(target=watch, name="stop-grace", daemon=True).start()


def _end_grace():
    if _State.cancel is not None:
        _State.cancel.set()
        _State.cancel = None


def requested():
    """The stop signal received while deferring (None: none)."""
    return _State.signum


@contextlib.contextmanager
def deferred(grace=DEFAULT_GRACE_S):
    """Within: a stop signal is recorded for :func:`requested` instead of raised, and the process ends
    within ``grace`` seconds of it (module docstring); ``grace`` 0: signals stop at once. Outside the
    handlers of :func:`install` (a library caller, a thread), nothing changes."""
    if _State.pid != os.getpid():
        yield
        return
    _State.grace, _State.signum = grace, None
    alarm = signal.signal(signal.SIGALRM, _handler)  # the watchdog's: only while deferring
    try:
        yield
    finally:
        _end_grace()
        signal.signal(signal.SIGALRM, alarm)
        _State.grace, _State.signum = None, None
