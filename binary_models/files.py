"""Files the package writes and reads back: atomic writes, pairs replaced together, the run lock,
checkpoints, parameter and trainer-state files, and the run file.

Every file is written to a temporary file in its directory and renamed into place, so a reader never sees
a partial file. Files that belong together (a checkpoint's ``X.params`` and ``X.states``, a packed model's
``PREFIX-symbol.json`` and ``PREFIX-0000.params``) are replaced as a unit (:func:`replace_together`): both
are written to temporaries, then a pair record ``{X}.pair.json`` (the SHA-256 of each file and the
temporaries' names) is written, which is the commit point, then both temporaries are renamed. A reader
(:func:`finish_interrupted_commits`, called by every loader and writer) finishes the renames of a writer
that was killed after the commit point, so either the old or the new pair loads, never a mix; the record
then lets resume refuse a ``.states`` file that was not written with its ``.params``.

A temporary is locked (``flock``) by its writer while it lives: the next write into the same folder
removes the temporaries of dead writers (one log line). Outputs honour the umask.

The run file (``{checkpoint prefix}-run.json``, ``_run.json`` for detectors) records what a trained model
is: its name, the keyword arguments that build it, its input size and classes. ``convert``, ``detect.py``
and ``predict`` find it beside a checkpoint (:func:`find_run_file`) instead of asking again.
"""
import atexit
import contextlib
import datetime
import fcntl
import hashlib
import json
import logging
import os
import pickle
import re
import shutil
import socket
import sys
import tempfile
import time

from .cli import UsageError, error_line

RUN_FILE_SUFFIX = "run.json"
PAIR_RECORD_SUFFIX = ".pair.json"
# Temporaries: ``.{target}.{8 random}.{pid}.tmp`` files and ``.packing-{8 random}.{pid}`` folders (without the
# pid: written by older versions).
TEMPORARY_NAME = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}(?:\.(?P<pid>\d+))?\.tmp$")
STAGING_NAME = re.compile(r"^\.packing-[a-z0-9_]{8}(?:\.(?P<pid>\d+))?$")
# An unlocked temporary of a live process (just created, not yet locked) is left alone this long.
STALE_AFTER_S = 60

logger = logging.getLogger("binary_models")


class FileProblem(UsageError, ValueError):
    """A file that cannot be used: empty, truncated, not of its kind, of another model, or not the partner
    of its pair. The message names the file. A :class:`~binary_models.cli.UsageError` (command lines print
    one ``error:`` line and exit with status 2) and a ``ValueError`` for callers of the API."""


class MissingFile(FileProblem, FileNotFoundError):
    """A file that does not exist (a :class:`FileProblem` and a ``FileNotFoundError``)."""


def make_folder(path, what):
    """``os.makedirs(path)``, or a :class:`UsageError` naming the flag ``what`` when ``path`` (or a folder
    above it) is a file or cannot be created."""
    try:
        os.makedirs(path, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UsageError("%s %s is a file, not a folder" % (what, path))
    except OSError as err:
        raise UsageError("%s %s: cannot create the folder: %s" % (what, path, err.strerror or err))
    return path


# ---- temporaries ---------------------------------------------------------------------------------------

def _output_mode():
    """0666 less the umask: what ``open`` gives a new file (``mkstemp`` gives 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _new_temporary(directory, target_name):
    """``(fd, path)``: a new temporary file for ``target_name`` in ``directory``, locked by this process
    and with the permissions of a new file."""
    fd, path = tempfile.mkstemp(prefix="." + target_name + ".", suffix=".%d.tmp" % os.getpid(), dir=directory)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.fchmod(fd, _output_mode())
    return fd, path


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_stale(path, pid):
    """Whether the temporary ``path`` of process ``pid`` (None: unknown) is left over by a dead writer: no
    one holds its lock, and its writer is gone (or it is older than ``STALE_AFTER_S``)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # its writer holds the lock: alive
        dead = pid is not None and (pid == os.getpid() or not _alive(pid))
        return dead or time.time() - os.fstat(fd).st_mtime > STALE_AFTER_S
    finally:
        os.close(fd)


def _size(path):
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(top, name)) for top, _, names in os.walk(path) for name in names)
    return os.path.getsize(path)


def clean_folder(directory):
    """Prepare ``directory`` for a write: finish the commits of killed writers (their pair records), then
    remove the temporaries of dead writers, in one log line. Returns the removed paths."""
    finish_interrupted_commits(directory)
    removed, size = [], 0
    for entry in os.scandir(directory):
        match = TEMPORARY_NAME.match(entry.name) or STAGING_NAME.match(entry.name)
        if match is None or not _is_stale(entry.path, match.group("pid") and int(match.group("pid"))):
            continue
        try:
            size += _size(entry.path)
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.remove(entry.path)
        except OSError:
            continue
        removed.append(entry.name)
    if removed:
        logger.warning("removed %d temporary file(s) of interrupted writers in %s (%.1f MB): %s"
                       % (len(removed), directory, size / 2 ** 20, ", ".join(sorted(removed))))
    return removed


def _prepared_folder(path):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    clean_folder(directory)
    return directory


def _remove(path):
    with contextlib.suppress(FileNotFoundError):
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path`` (an atomic
    replace), on failure removed. A reader never sees a partially written file."""
    fd, tmp = _new_temporary(_prepared_folder(path), os.path.basename(path))
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        os.close(fd)
        _remove(tmp)


@contextlib.contextmanager
def staging_folder(near):
    """Yield a new temporary folder beside the file ``near`` (for writers that choose their own file names,
    such as ``net.export``), locked by this process while it lives, removed at the end."""
    directory = _prepared_folder(near)
    path = tempfile.mkdtemp(prefix=".packing-", suffix=".%d" % os.getpid(), dir=directory)
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield path
    finally:
        os.close(fd)
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def temporaries(paths):
    """Yield a temporary path beside each of ``paths`` (locked by this process, removed at the end unless
    :func:`replace_together` committed them)."""
    opened = []
    try:
        for path in paths:
            opened.append(_new_temporary(_prepared_folder(path), os.path.basename(path)))
        yield [tmp for _, tmp in opened]
    finally:
        for fd, tmp in opened:
            os.close(fd)
            _remove(tmp)


def write_json(path, data):
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True, default=str)
            f.write("\n")


# ---- pairs replaced together ---------------------------------------------------------------------------

def pair_record(prefix):
    """The pair record of the files ``{prefix}...`` replaced together."""
    return prefix + PAIR_RECORD_SUFFIX


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _move(source, target):
    """One rename of a commit (tests interrupt commits here)."""
    os.replace(source, target)


def _read_record(record_path):
    """The pair record's content, or None when there is none or it is no record."""
    try:
        with open(record_path) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    if not (isinstance(record, dict) and isinstance(record.get("files"), dict)
            and isinstance(record.get("staged", {}), dict)):
        return None
    return record


def finish_commit(record_path):
    """Finish the renames of the commit recorded in ``record_path`` (a writer killed after its commit point
    left some of its temporaries); returns the record (None when there is none)."""
    record = _read_record(record_path)
    if record is None:
        return None
    directory = os.path.dirname(os.path.abspath(record_path))
    for name, staged in sorted(record.get("staged", {}).items()):
        source = os.path.join(directory, staged)
        if os.path.isfile(source):
            # Gone: another process finished it. Not allowed (a read-only folder): check_pair reports the mix.
            with contextlib.suppress(OSError):
                _move(source, os.path.join(directory, name))
    return record


def finish_interrupted_commits(directory):
    """:func:`finish_commit` for every pair record in ``directory``."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            if entry.name.endswith(PAIR_RECORD_SUFFIX) and entry.is_file():
                finish_commit(entry.path)


def replace_together(record_path, staged):
    """Rename the complete temporaries ``staged`` (target path -> temporary path, all in the record's
    folder) onto their targets as a unit: the record (each file's SHA-256 and temporary) is written first,
    then the renames; a reader finishes them after a kill (:func:`finish_commit`)."""
    directory = os.path.dirname(os.path.abspath(record_path))
    for source in staged.values():
        _fsync(source)
    record = {"files": {os.path.basename(t): sha256(s) for t, s in staged.items()},
              "staged": {os.path.basename(t): os.path.relpath(s, directory) for t, s in staged.items()}}
    write_json(record_path, record)  # the commit point
    try:
        for target, source in sorted(staged.items()):
            _move(source, target)
    except BaseException:  # interrupted (KeyboardInterrupt): finish before the temporaries are removed
        with contextlib.suppress(Exception):
            finish_commit(record_path)
        raise


def check_pair(record_path, paths, what):
    """Check that ``paths`` are the files written together under ``record_path`` (after finishing an
    interrupted commit). No record (files written by older versions, or copied without it): nothing to check.
    Raises a :class:`FileProblem` naming ``what`` and the files otherwise."""
    record = finish_commit(record_path)
    if record is None:
        return
    for path in paths:
        recorded = record["files"].get(os.path.basename(path))
        if recorded is None or not os.path.isfile(path) or sha256(path) != recorded:
            others = " and ".join(sorted(set(paths) - {path})) or "its partner"
            raise FileProblem("%s: %s is not the file written together with %s (%s the pair record %s)"
                              % (what, path, others, "it changed since" if recorded else "it is not listed in",
                                 record_path))


# ---- parameters, trainer states and checkpoints ---------------------------------------------------------

def checkpoint_record(params_or_states):
    """The pair record of the checkpoint ``X.params`` / ``X.states``: ``X.pair.json``."""
    return pair_record(re.sub(r"\.(params|states)$", "", params_or_states))


def save_checkpoint(prefix, net, trainer=None):
    """Write ``prefix.params`` (and ``prefix.states`` for a trainer) as a unit: a kill at any point leaves
    the old checkpoint or the new one (:func:`replace_together`)."""
    targets = [prefix + ".params"] + ([prefix + ".states"] if trainer is not None else [])
    record = pair_record(prefix)
    if trainer is None and not os.path.exists(record):
        with atomic_path(targets[0]) as tmp:
            net.save_parameters(tmp)
        return targets[0]
    with temporaries(targets) as staged:
        net.save_parameters(staged[0])
        if trainer is not None:
            trainer.save_states(staged[1])
        replace_together(record, dict(zip(targets, staged)))
    return targets[0]


def _existing_file(path, what):
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        raise MissingFile("%s not found: %s" % (what, path))
    if os.path.getsize(path) == 0:
        raise FileProblem("%s %s is empty" % (what, path))
    return path


def load_parameters(net, path, what="parameter file", ctx=None):
    """``net.load_parameters(path)``; a :class:`MissingFile` or :class:`FileProblem` naming ``what`` (a flag)
    and the file when it is missing, empty, truncated, not a parameter file, or of another model. A killed
    checkpoint write is finished first (:func:`finish_commit`)."""
    import mxnet as mx
    path = os.path.expanduser(path)
    if path.endswith(".params"):
        finish_commit(checkpoint_record(path))
    _existing_file(path, what)
    try:
        mx.nd.load(path)
    except mx.MXNetError as err:
        raise FileProblem("%s %s is not a parameter file, or it is truncated (%s)" % (what, path, error_line(err)))
    try:
        net.load_parameters(path, ctx=ctx or mx.cpu())
    except (mx.MXNetError, AssertionError, AttributeError, ValueError, KeyError) as err:
        model = getattr(net, "model_name", None)
        raise FileProblem("%s %s does not match the model: %s%s"
                          % (what, path, error_line(err), " (the model is %s)" % model if model else ""))


def _shapes(state):
    """The shapes of the arrays in an optimizer state (an NDArray, None, or nested tuples/lists)."""
    if state is None:
        return []
    if isinstance(state, (tuple, list)):
        return [shape for item in state for shape in _shapes(item)]
    return [tuple(getattr(state, "shape", ()))]


def _fits(shape, param_shape):
    """Whether a state of ``shape`` fits a parameter of ``param_shape`` (0: not known yet)."""
    return len(shape) == len(param_shape) and all(p in (0, s) for s, p in zip(shape, param_shape))


def load_states(trainer, path, what="trainer states", params=None):
    """``trainer.load_states(path)`` after checking the file: a :class:`MissingFile` or :class:`FileProblem`
    naming ``what`` and the file when it is missing, empty, truncated or not a states file, holds the states
    of another model or optimizer, or (``params``: the parameter file loaded with it) was not written
    together with ``params`` according to its pair record."""
    path = os.path.expanduser(path)
    record = checkpoint_record(path)
    finish_commit(record)
    _existing_file(path, what)
    if params:
        check_pair(record, [os.path.expanduser(params), path], what)
    try:
        with open(path, "rb") as f:
            content = pickle.load(f)
    except Exception as err:  # unpickling garbage raises almost anything
        raise FileProblem("%s %s is not a trainer-states file, or it is truncated (%s: %s)"
                          % (what, path, type(err).__name__, err))
    states, optimizer = content if isinstance(content, tuple) and len(content) == 2 else (content, None)
    if not isinstance(states, dict):
        raise FileProblem("%s %s is not a trainer-states file (it holds a %s)" % (what, path, type(states).__name__))
    if optimizer is not None and type(optimizer) is not type(trainer.optimizer):
        raise FileProblem("%s %s holds the states of the optimizer %s, this run uses %s"
                          % (what, path, type(optimizer).__name__.lower(), type(trainer.optimizer).__name__.lower()))
    params_list = trainer._params
    for index, state in states.items():
        shapes = _shapes(state)
        if not isinstance(index, int) or not 0 <= index < len(params_list) \
                or not all(_fits(shape, params_list[index].shape) for shape in shapes):
            raise FileProblem("%s %s holds the states of another model: %s for parameter %s, the model has %s"
                              % (what, path, shapes, index, "%d parameters" % len(params_list)
                                 if not isinstance(index, int) or not 0 <= index < len(params_list)
                                 else "%s of shape %s" % (params_list[index].name, params_list[index].shape)))
    trainer.load_states(path)


# ---- the run lock --------------------------------------------------------------------------------------

_held_locks = {}  # real path -> fd of the run locks this process holds


@atexit.register
def _release_run_locks():
    """A process that exits, also after an error, ends its runs cleanly; only a killed one leaves its line
    in the lock file for the next run's warning."""
    for path in list(_held_locks):
        unlock_run(path)


def lock_run(path, what):
    """Take the lock file ``path`` for this process's training run (held until :func:`unlock_run` or the
    process ends; a lock of a dead process is taken over). A :class:`UsageError` naming ``what`` (the run's
    folder) and the process that holds it when another live run does."""
    key = os.path.realpath(path)
    if key in _held_locks:  # this process holds it already (a script claims it before its TrainingRun does)
        return path
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, _output_mode())
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 4096).decode("utf-8", "replace").strip() or "unknown process"
        os.close(fd)
        raise UsageError("%s is in use by another training run (%s; lock file %s): wait for it to end, or "
                         "choose another output folder" % (what, holder, path))
    previous = os.read(fd, 4096).decode("utf-8", "replace").strip()
    if previous:
        logger.warning("taking over the lock %s of a run that did not end cleanly (%s)" % (path, previous))
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, ("process %d on %s since %s: %s\n" % (
        os.getpid(), socket.gethostname(), datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        " ".join(sys.argv))).encode())
    _held_locks[key] = fd
    return path


def unlock_run(path):
    """Release this process's lock ``path`` (no-op when it does not hold it)."""
    fd = _held_locks.pop(os.path.realpath(path), None)
    if fd is not None:
        os.ftruncate(fd, 0)  # empty: the next run knows that this one ended cleanly
        os.close(fd)


# ---- the run file ----------------------------------------------------------------------------------------

def run_file(checkpoint_prefix, separator="-"):
    """The run file of the checkpoints ``{checkpoint_prefix}{separator}{tag}.params``."""
    return checkpoint_prefix + separator + RUN_FILE_SUFFIX


def write_run_file(path, model, model_kwargs, input_size, classes, kind="classification", **extra):
    """Record what a training run builds: ``get_model(model, **model_kwargs)`` at ``input_size`` with
    ``classes`` (a count, or the class names of a detector)."""
    write_json(path, dict(model=model, model_kwargs=model_kwargs, input_size=input_size, classes=classes,
                          kind=kind, **extra))


def find_run_file(params_path):
    """The run file of a checkpoint ``{prefix}{sep}{tag...}.params`` (``sep`` is - or _): the nearest
    ``{prefix}{sep}run.json`` found by cutting the name at its separators from the right; None if none."""
    directory, base = os.path.split(os.path.abspath(params_path))
    stem = re.sub(r"\.params$", "", base)
    for match in reversed(list(re.finditer(r"[-_]", stem))):
        candidate = os.path.join(directory, stem[:match.end()] + RUN_FILE_SUFFIX)
        if os.path.isfile(candidate):
            return candidate
    return None


def read_run_file(path):
    """The run file's record (a dict with model, model_kwargs, input_size, classes, kind), or a
    :class:`UsageError` naming the file and its problem."""
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError) as err:
        raise FileProblem("cannot read run file %s: %s" % (path, err))
    missing = [k for k in ("model", "model_kwargs", "input_size", "classes") if k not in record] \
        if isinstance(record, dict) else ["everything"]
    if missing:
        raise FileProblem("run file %s lacks %s" % (path, ", ".join(missing)))
    kinds = dict(model=str, model_kwargs=dict, input_size=int, classes=(int, list))
    wrong = [k for k, kind in kinds.items() if not isinstance(record[k], kind) or isinstance(record[k], bool)]
    if wrong:
        raise FileProblem("run file %s: %s" % (path, ", ".join("%s is %r" % (k, record[k]) for k in wrong)))
    return record


def trained_model(params_path, run_path=None, model=None, input_size=None, **overrides):
    """What builds the model whose parameters are ``params_path``: ``(record, model, model_kwargs,
    input_size)`` from its run file (``run_path``, else the one :func:`find_run_file` finds, else none: the
    record is then ``{}``), where ``model``, ``input_size`` and the keyword arguments in ``overrides`` that are
    not None take precedence. The run file's keyword arguments apply only to its own model. Raises a
    :class:`UsageError` when no model name is known or ``run_path`` does not exist."""
    if run_path and not os.path.isfile(run_path):
        raise MissingFile("--run not found: %s" % run_path)
    path = run_path or find_run_file(params_path)
    record = read_run_file(path) if path else {}
    model = model or record.get("model")
    if not model:
        raise UsageError("--model is needed: no run file beside %s (or give --run)" % params_path)
    kwargs = dict(record["model_kwargs"]) if model == record.get("model") else {}
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    return record, model, kwargs, input_size or record.get("input_size") or 224
