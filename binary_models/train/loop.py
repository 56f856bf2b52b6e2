"""The training-run driver of ``train_imagenet.py`` and ``detection/train_ssd.py``: seeding, logging,
progress bars, the per-epoch history, best and periodic checkpoints, training curves, the run file and the
summary. The scripts keep what differs: data, network, loss, the batch loop and their log lines::

    run = TrainingRun(files, record, ("train_loss", "val_top1"), best_key="val_top1", num_epochs=10)
    with run.stoppable():                        # stop signals: save the point reached (below)
        for epoch in run.epochs():
            with run.progress(epoch, num_batches) as bar:
                for batch in range(run.first_batch(epoch), num_batches):
                    run.stop_point(epoch, batch, net, trainer, sums)
                    run.seed_batch(epoch, batch)
                    ...                          # train, bar.update(1)
            run.end_epoch(epoch, {"train_loss": loss, "val_top1": top1}, net, trainer)
    run.finish(model=..., classes=...)
"""
import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import sys
import time

from ..errors import FileProblem, Stopped, TrainingDiverged
from ..storage import lock_run, make_folder, run_file, save_checkpoint, unlock_run, write_json, write_run_file
from ..plots import plot_curves
from . import resume, stopping
from .distributed import Workers


BATCH_LOSSES = "train_loss_per_batch"  # history key: [(epoch + fraction done, loss), ...]


class LogFile(logging.FileHandler):
    """The training log file. A write that fails (a full disk, a quota) is one line on stderr instead of
    logging's traceback per message; the file is then closed and the console keeps the log."""

    def handleError(self, record):
        err = sys.exc_info()[1]
        print("warning: cannot write the log file %s: %s; the rest of the log goes to the console only"
              % (self.baseFilename, getattr(err, "strerror", None) or err), file=sys.stderr)
        for logger in logging.Logger.manager.loggerDict.values():
            if isinstance(logger, logging.Logger) and self in logger.handlers:
                logger.removeHandler(self)
        try:
            self.close()
        except OSError:
            pass  # closing flushes what could not be written


def setup_logger(logging_file=None, enabled=True, name="binary_models"):
    """GluonCV-style logging: INFO lines to the console and, when given, to ``logging_file`` (a
    :class:`FileProblem` when it cannot be opened). ``enabled=False`` (non-zero ranks of a distributed run)
    silences the logger."""
    logger = logging.getLogger(name)
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.INFO if enabled else logging.CRITICAL + 1)
    formatter = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S")
    handlers = [logging.StreamHandler(sys.stdout)]
    if logging_file and enabled:
        make_folder(os.path.dirname(os.path.abspath(logging_file)), "logging_file")
        try:
            handlers.append(LogFile(logging_file))
        except OSError as err:
            raise FileProblem("logging_file %s: cannot open the log file: %s" % (logging_file, err.strerror or err),
                              "logging_file")
    for handler in handlers:
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    return logger


def seed_everything(seed):
    """Seed Python's, NumPy's and MXNet's generators (at the start of every epoch, with ``seed + epoch``,
    so that a resumed run replays the same data order and augmentation)."""
    import random
    import numpy as np
    import mxnet as mx
    random.seed(seed)
    np.random.seed(seed)
    mx.random.seed(seed)


def batch_seed(seed, epoch, batch):
    """The seed of every generator before batch ``batch`` of ``epoch``: a function of the position alone, so
    that a run continued from the middle of an epoch draws the same augmentations and mixup."""
    digest = hashlib.sha256(b"%d/%d/%d" % (seed, epoch, batch)).digest()
    return int.from_bytes(digest[:4], "little")


def load_history(path, start_epoch, keys):
    """Per-epoch history for the curves: the first ``start_epoch`` entries of ``path`` when resuming,
    else empty lists for ``keys``."""
    history = {key: [] for key in list(keys) + [BATCH_LOSSES]}
    if start_epoch and os.path.isfile(path):
        try:
            with open(path) as f:
                history.update({k: [p for p in v if p[0] <= start_epoch] if k == BATCH_LOSSES else v[:start_epoch]
                                for k, v in json.load(f).items()})
        except (ValueError, AttributeError, TypeError) as err:
            raise FileProblem("cannot resume the history %s: %s (remove it to start a new one)" % (path, err))
    return history


@dataclasses.dataclass
class RunFiles:
    """Where a run writes: checkpoints ``{checkpoint_prefix}{separator}{tag}.params`` (+ ``.states``), the run
    file beside them, and the history, curves, summary and log files."""
    checkpoint_prefix: str
    separator: str
    history: str
    curves: str
    summary: str
    log: str

    def checkpoint(self, tag):
        return self.checkpoint_prefix + self.separator + tag

    @property
    def run(self):
        return run_file(self.checkpoint_prefix, self.separator)

    @property
    def lock(self):
        """The lock file a live run holds, so that a second run in the same folder is refused."""
        return os.path.join(self.folder(), "run.lock")

    def folder(self):
        return os.path.dirname(os.path.abspath(self.checkpoint_prefix))

    def claim(self):
        """Take the run's lock (:func:`~binary_models.files.lock_run`; again in the same process: nothing
        happens). The scripts claim it before they write their first log line."""
        lock_run(self.lock, self.folder())


class TrainingRun:
    """One training run's bookkeeping (see the module docstring).

    record:         the run file's content (:func:`~binary_models.files.write_run_file` arguments), written
                    at the start by the chief.
    history_keys:   the per-epoch values :meth:`end_epoch` takes; ``best_key`` decides the best checkpoint.
    curves:         label -> history key of the curves PNG.
    periodic_tag:   ``f(epoch, metrics)``: the tag of the checkpoint written every ``save_frequency`` epochs
                    and at the end (with the trainer's states and the position, :mod:`.resume`).
    is_chief:       only the chief writes files (ranks of a distributed run); ``progress``: tqdm bars.
    resume:         the :class:`~.resume.ResumePoint` the run continues from (its epoch overrides
                    ``start_epoch``); ``workers``: a :class:`~.distributed.Workers` (default: this process).
    stop_grace:     seconds from a stop signal to the end of the process (:meth:`stoppable`).

    The chief holds the run's lock (:func:`~binary_models.files.lock_run`) from here to :meth:`finish`: a
    second run with the same checkpoint prefix is refused, naming the process of this one."""

    last_checkpoint = None  # the newest checkpoint this run wrote (its .params file)

    def __init__(self, files, record, history_keys, best_key, num_epochs, start_epoch=0, seed=0,
                 save_frequency=1, periodic_tag=lambda epoch, metrics: str(epoch), curves=None, title="",
                 is_chief=True, progress=True, resume=None, workers=None, stop_grace=stopping.DEFAULT_GRACE_S):
        start_epoch = resume.epoch if resume is not None else start_epoch
        self.files, self.best_key, self.num_epochs, self.start_epoch = files, best_key, num_epochs, start_epoch
        self.seed, self.save_frequency, self.periodic_tag = seed, save_frequency, periodic_tag
        self.curves, self.title, self.is_chief, self.show_progress = curves or {}, title, is_chief, progress
        self.resume, self.workers, self.stop_grace = resume, workers or Workers(), stop_grace
        self.history = load_history(files.history, start_epoch, history_keys)
        self.batch_losses = self.history.pop(BATCH_LOSSES)
        self.epoch_losses_start = len(self.batch_losses)  # where this epoch's entries of batch_losses begin
        self.batch_losses += [tuple(p) for p in self.epoch_state(start_epoch).get("batch_losses", [])]
        self.batches_per_epoch = 1
        self.best = max((v for v in self.history[best_key] if v is not None), default=0.0)
        self.started = time.time()
        if is_chief:
            files.claim()
            write_run_file(files.run, **record)

    def epochs(self):
        """The epochs still to train; each starts by seeding every generator with ``seed + epoch``."""
        for epoch in range(self.start_epoch, self.num_epochs):
            seed_everything(self.seed + epoch)
            if epoch != self.start_epoch:
                self.epoch_losses_start = len(self.batch_losses)
            yield epoch

    def _continues(self, epoch):
        return self.resume is not None and self.resume.epoch == epoch and self.resume.batch > 0

    def first_batch(self, epoch):
        """The first batch of ``epoch`` to train: those the checkpoint continued from had done are skipped."""
        return self.resume.batch if self._continues(epoch) else 0

    def epoch_state(self, epoch):
        """What ``epoch`` had accumulated at the checkpoint continued from (the ``epoch_state`` given to
        :meth:`stop_point`); {} for an epoch that starts afresh."""
        return dict(self.resume.progress.get("epoch_state", {})) if self._continues(epoch) else {}

    def statistics_averaged(self, epoch):
        """Whether ``epoch``'s BatchNorm statistics were averaged over the workers before the checkpoint
        continued from (it was saved during validation)."""
        return self._continues(epoch) and bool(self.resume.progress.get("aux_averaged"))

    def seed_batch(self, epoch, batch):
        """Seed every generator for batch ``batch`` of ``epoch`` (:func:`batch_seed`); call it before the
        batch is read."""
        seed_everything(batch_seed(self.seed, epoch, batch))

    @contextlib.contextmanager
    def stoppable(self):
        """Within: a stop signal is deferred to the next :meth:`stop_point` (:func:`.stopping.deferred`,
        ``stop_grace``). The :class:`~binary_models.errors.Stopped` that ends the run says what was kept and
        how to continue; the run's lock is released."""
        try:
            with stopping.deferred(self.stop_grace):
                yield
        except Stopped as stop:
            if stop.kept is None or stop.grace_expired:
                stop.kept = self._kept(stop.grace_expired)
            if self.is_chief:
                unlock_run(self.files.lock)
            raise

    def _kept(self, grace_expired=False, position=""):
        """The sentence of a :class:`Stopped`: the checkpoint ``--resume auto`` continues from."""
        if not self.is_chief:
            return "%sworker 0 keeps the checkpoint; continue with --resume auto" % position
        point = resume.find_newest(self.files.checkpoint_prefix, self.files.separator)
        late = "--stop-grace %g s ran out before the checkpoint was written: " % self.stop_grace \
            if grace_expired else ""
        if point is None:
            return "%sno checkpoint was written yet (--resume auto starts afresh)" % late
        return "%skept %s; continue with --resume auto" % (late, point.describe())

    def stop_point(self, epoch, batch, net, trainer, epoch_state, aux_averaged=False):
        """A point where the run may stop: after ``batch`` batches of ``epoch``, with ``epoch_state`` (a JSON
        dict of what the epoch accumulated; :meth:`epoch_state` gives it back) and, in a distributed run, the
        BatchNorm statistics averaged or not (``aux_averaged``). When a stop signal was received (by any
        worker), the chief saves the checkpoint ``{prefix}{sep}stop`` with the trainer's states and the position,
        and every worker raises :class:`~binary_models.errors.Stopped`."""
        signum = self.workers.stop_signal(stopping.requested(), stopping.STOP_SIGNALS)
        if signum is None:
            return
        statistics = self.workers.gather_statistics(net)
        if self.is_chief:
            epoch_state = dict(epoch_state, batch_losses=self.batch_losses[self.epoch_losses_start:])
            record = resume.progress_record(epoch, batch, self.batches_per_epoch, self.workers.num_workers,
                                            epoch_state, aux_averaged)
            extra = {resume.PROGRESS_SUFFIX: resume.write_progress(record)}
            if statistics:
                import mxnet as mx
                extra[resume.RANKS_SUFFIX] = lambda path: mx.nd.save(path, statistics)
            prefix = self.files.checkpoint(resume.STOP_TAG)
            save_checkpoint(prefix, net, trainer, extra)
            raise Stopped(signum, "kept %s; continue with --resume auto"
                          % resume.ResumePoint(prefix, epoch, batch, record).describe())
        raise Stopped(signum, self._kept(position="at epoch %d, batch %d: " % (epoch, batch)))

    def progress(self, epoch, total):
        """A tqdm bar over an epoch's ``total`` batches (silent for non-chiefs or without ``progress``)."""
        from tqdm import tqdm
        self.batches_per_epoch = total
        return tqdm(total=total, desc="epoch %d (0-%d)" % (epoch, self.num_epochs - 1), unit="batch",
                    disable=not (self.show_progress and self.is_chief), leave=False, dynamic_ncols=True)

    def end_epoch(self, epoch, metrics, net, trainer=None):
        """Record ``metrics`` (history key -> value, None when not measured), save the best checkpoint
        (``{prefix}{sep}best.params``) when ``metrics[best_key]`` improved and the periodic one, rewrite
        history and curves. Returns True when this epoch is the best so far."""
        self.check_weights(net, epoch)
        for key, values in self.history.items():
            values.append(metrics.get(key))
        if not self.is_chief:
            return False
        score = metrics.get(self.best_key)
        improved = score is not None and score > self.best
        if improved:
            self.best = score
            save_checkpoint(self.files.checkpoint("best"), net)
            self.last_checkpoint = self.files.checkpoint("best") + ".params"
        last = epoch + 1 == self.num_epochs
        if (self.save_frequency and (epoch + 1) % self.save_frequency == 0) or last:
            periodic = self.files.checkpoint(self.periodic_tag(epoch, metrics))
            record = resume.progress_record(epoch + 1, 0, self.batches_per_epoch, self.workers.num_workers)
            save_checkpoint(periodic, net, trainer, {resume.PROGRESS_SUFFIX: resume.write_progress(record)})
            self.last_checkpoint = periodic + ".params"
        write_json(self.files.history, dict(self.history, **{BATCH_LOSSES: self.batch_losses}))
        plot_curves(self.files.curves, {label: [math.nan if v is None else v for v in self.history[key]]
                                        for label, key in self.curves.items()}, self.title, self.batch_losses)
        return improved

    def check_loss(self, loss, epoch, batch):
        """Stop the run with :class:`TrainingDiverged` when ``loss`` (of batch ``batch`` of ``epoch``) is NaN
        or infinite, before anything is saved with the weights it came from; the message names the last good
        checkpoint."""
        if not math.isfinite(loss):
            raise self._diverged("the training loss is %s at epoch %d batch %d" % (loss, epoch, batch))
        self.batch_losses.append((epoch + (batch + 1) / max(self.batches_per_epoch, batch + 1), loss))

    def check_weights(self, net, epoch):
        """Stop the run with :class:`TrainingDiverged` when a parameter of ``net`` holds a NaN or an infinity
        at the end of ``epoch`` (an update after the last finite loss): it is never saved."""
        import mxnet as mx
        params = [(name, p.list_data()[0]) for name, p in net.collect_params().items() if p._data is not None]
        if not params:
            return
        finite = mx.nd.concat(*[mx.nd.contrib.isfinite(d).min().reshape((1,)) for _, d in params], dim=0)
        bad = [name for (name, _), ok in zip(params, finite.asnumpy()) if not ok]
        if bad:
            raise self._diverged("parameter %s is not finite at the end of epoch %d" % (bad[0], epoch))

    def _diverged(self, what):
        """The :class:`TrainingDiverged` of ``what``, naming the last good checkpoint; the run ends here, so
        its lock is released (the run did end, without a summary)."""
        path = self.last_checkpoint
        if path is None and os.path.isfile(self.files.checkpoint("best") + ".params"):
            path = self.files.checkpoint("best") + ".params"  # of the run this one resumes
        if self.is_chief:
            unlock_run(self.files.lock)
        if path is None:
            return TrainingDiverged("%s; no checkpoint was written yet (a lower --lr may help)" % what)
        return TrainingDiverged("%s; the last good checkpoint is %s (nothing was saved after it; a lower --lr "
                                "may help)" % (what, path))

    def finish(self, reported, **fields):
        """Write the summary: ``fields``, the epochs, wall time, the best epoch and, for each ``name: key``
        of ``reported``, ``best_{name}`` and ``final_{name}`` (the history's values). Returns it."""
        scores = [-math.inf if v is None else v for v in self.history[self.best_key]]
        best = max(range(len(scores)), key=scores.__getitem__) if scores and max(scores) > -math.inf else None
        summary = dict(fields, epochs=self.num_epochs, best_epoch=best, wall_time_s=time.time() - self.started)
        for name, key in reported.items():
            values = self.history[key]
            summary["best_" + name] = values[best] if best is not None else None
            summary["final_" + name] = values[-1] if values else None
        if self.is_chief:
            write_json(self.files.summary, summary)
            unlock_run(self.files.lock)
        return summary
