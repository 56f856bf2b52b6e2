"""Where a training run continues: the position a checkpoint records, and ``--resume auto``.

Every checkpoint with trainer states that :class:`~binary_models.train.loop.TrainingRun` writes is one unit
(docs/formats.md) of ``X.params``, ``X.states`` and ``X.progress.json``: the epoch to continue, the batches of
it already done, and what the epoch had accumulated (loss and metric sums, the per-batch losses). The
checkpoint saved on a stop signal is ``{prefix}{sep}stop`` (replaced by each stop); a distributed run adds
``X.ranks.params``, the BatchNorm statistics of every worker (they differ until the epoch's end)."""
import dataclasses
import json
import logging
import os
import re

from ..errors import BinaryModelsError, FileProblem, MissingFile, UsageError
from ..storage import check_pair, finish_commit, finish_interrupted_commits
from ..storage.checkpoints import checkpoint_record

PROGRESS_SUFFIX = ".progress.json"
RANKS_SUFFIX = ".ranks.params"
STOP_TAG = "stop"
# Checkpoints of older versions have no progress file: their tag starts with the epoch they end.
EPOCH_TAG = re.compile(r"^(\d+)(?:_|$)")

logger = logging.getLogger("binary_models")


@dataclasses.dataclass
class ResumePoint:
    """A complete, verified checkpoint ``prefix`` (``.params``, ``.states``) and the position it records:
    ``epoch`` to continue, ``batch`` batches of it done; ``progress``: its progress file ({} for older ones)."""
    prefix: str
    epoch: int
    batch: int
    progress: dict

    @property
    def params(self):
        return self.prefix + ".params"

    @property
    def states(self):
        return self.prefix + ".states"

    @property
    def ranks(self):
        return self.prefix + RANKS_SUFFIX if os.path.isfile(self.prefix + RANKS_SUFFIX) else None

    def describe(self):
        where = "epoch %d, batch %d" % (self.epoch, self.batch) if self.batch else "the start of epoch %d" % self.epoch
        return "%s (%s)" % (self.params, where)


def progress_record(epoch, batch, num_batches, num_workers, epoch_state=None, aux_averaged=False):
    """The content of a progress file: the position ``(epoch, batch)`` and what the run needs to continue
    there exactly."""
    return dict(epoch=epoch, batch=batch, num_batches=num_batches, num_workers=num_workers,
                epoch_state=epoch_state or {}, aux_averaged=aux_averaged)


def write_progress(record):
    """A writer of ``record`` for :func:`~binary_models.storage.save_checkpoint`'s ``extra``."""
    def write(path):
        with open(path, "w") as f:
            json.dump(record, f, sort_keys=True)  # one line: an epoch of ImageNet has 5,000 batch losses
            f.write("\n")
    return write


def read_point(prefix, what, tag=None):
    """The :class:`ResumePoint` of checkpoint ``prefix`` (``tag``: the name's end, which gives the epoch of an
    older checkpoint without a progress file) after checking that every file of it is the one written with
    the others (SHA-256, its pair record): a :class:`FileProblem` naming ``what`` otherwise."""
    params, states = prefix + ".params", prefix + ".states"
    for path in (params, states):
        if not os.path.isfile(path):
            raise MissingFile("%s: %s not found" % (what, path), what)
    record = finish_commit(checkpoint_record(params))
    if record is None:
        raise FileProblem("%s: %s has no pair record (%s), so it cannot be verified"
                          % (what, params, checkpoint_record(params)), what)
    folder = os.path.dirname(os.path.abspath(prefix))
    names = set(record["files"]) | {os.path.basename(params), os.path.basename(states)}
    check_pair(checkpoint_record(params), sorted(os.path.join(folder, n) for n in names), what)
    if os.path.isfile(prefix + PROGRESS_SUFFIX):
        try:
            with open(prefix + PROGRESS_SUFFIX) as f:
                progress = json.load(f)
            return ResumePoint(prefix, int(progress["epoch"]), int(progress["batch"]), progress)
        except (ValueError, KeyError, TypeError) as err:
            raise FileProblem("%s: %s is not a progress file (%s)" % (what, prefix + PROGRESS_SUFFIX, err), what)
    match = EPOCH_TAG.match(tag or "")
    if match is None:
        raise FileProblem("%s: %s has no progress file (%s), so its epoch is not known"
                          % (what, params, prefix + PROGRESS_SUFFIX), what)
    return ResumePoint(prefix, int(match.group(1)) + 1, 0, {})


def _claimed_position(prefix, tag):
    """The position checkpoint ``prefix`` claims (its progress file or tag, unverified), for the order in
    which :func:`find_newest` verifies them."""
    try:
        with open(prefix + PROGRESS_SUFFIX) as f:
            progress = json.load(f)
        return int(progress["epoch"]), int(progress["batch"])
    except (OSError, ValueError, KeyError, TypeError):
        match = EPOCH_TAG.match(tag)
        return (int(match.group(1)) + 1, 0) if match else (-1, 0)


def find_newest(checkpoint_prefix, separator, what="--resume auto"):
    """The newest complete, verified checkpoint (with trainer states) ``{checkpoint_prefix}{separator}TAG``:
    the furthest position, the stop checkpoint included; None when there is none. Checkpoints that fail
    their check are logged and passed over."""
    folder = os.path.dirname(os.path.abspath(checkpoint_prefix))
    start = os.path.basename(checkpoint_prefix) + separator
    finish_interrupted_commits(folder)  # a commit killed after its commit point: its new files count
    try:
        names = os.listdir(folder)
    except OSError:
        return None
    found = [(os.path.join(folder, name[:-len(".states")]), name[len(start):-len(".states")]) for name in names
             if name.startswith(start) and name.endswith(".states")]
    for prefix, tag in sorted(found, key=lambda item: _claimed_position(*item), reverse=True):
        try:
            return read_point(prefix, what, tag)
        except BinaryModelsError as err:
            logger.warning("passing over checkpoint %s: %s" % (prefix, err))
    return None


def check_continuable(point, num_batches, num_workers, what):
    """Refuse to continue mid-epoch from ``point`` with another number of batches per epoch or of workers:
    the data order and the schedule would not be the ones it was saved in."""
    if not point.batch:
        return
    for key, value, flags in (("num_batches", num_batches, "--batch-size, --max-batches"),
                              ("num_workers", num_workers, "the number of workers")):
        saved = point.progress.get(key)
        if saved is not None and saved != value:
            raise UsageError("%s: %s was saved in the middle of an epoch with %s %d, this run has %d (%s must "
                             "stay as they were)" % (what, point.params, key.replace("_", " "), saved, value, flags))


def load_rank_statistics(net, point, rank):
    """Set ``net``'s BatchNorm statistics to those worker ``rank`` had at ``point`` (distributed runs)."""
    import mxnet as mx
    if point.ranks is None:
        return
    saved = mx.nd.load(point.ranks)
    for index, param in enumerate(p for p in net.collect_params().values() if p.grad_req == "null"):
        key = "rank%d:%d" % (rank, index)
        if key not in saved:
            raise FileProblem("%s holds no statistics of worker %d" % (point.ranks, rank))
        param.set_data(saved[key])
