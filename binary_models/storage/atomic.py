"""Atomic writes: every file is written to a temporary in its folder and renamed into place, so a reader
never sees a partial file. Before a write, the folder is cleaned: the commits of killed writers are finished
(:mod:`.pairs`) and their temporaries removed (:mod:`.tempfiles`). A write that fails (a full disk, a file-size
limit, a read-only folder, a target that is a folder) is a :class:`~binary_models.errors.FileProblem` naming the
target and the OS's reason (:func:`reporting_failed_writes`)."""
import contextlib
import json
import os
import tempfile

from ..errors import BinaryModelsError, FileProblem
from . import tempfiles
from .pairs import finish_interrupted_commits


def make_folder(path, what="folder"):
    """``os.makedirs(path)``, or a :class:`~binary_models.errors.FileProblem` naming ``what`` (the argument
    that gave the folder) when ``path`` (or a folder above it) is a file, cannot be created, or is one this
    process cannot write in (read-only: checked with a file that has no name, so nothing is left there)."""
    try:
        os.makedirs(path, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise FileProblem("%s %s is a file, not a folder" % (what, path), what)
    except OSError as err:
        raise FileProblem("%s %s: cannot create the folder: %s" % (what, path, err.strerror or err), what)
    try:
        tempfile.TemporaryFile(dir=path).close()  # O_TMPFILE where the file system has it
    except OSError as err:
        raise FileProblem("%s %s: cannot write there: %s" % (what, path, err.strerror or err), what)
    return path


def _reason(err, temporary):
    """The OS's reason for the failed write ``err`` of ``temporary``, or None when it is no failed write. MXNet
    reports one without it (``FileStream.Write incomplete``): then the OS is asked, by writing on at the end of
    the temporary (about to be removed)."""
    if isinstance(err, OSError):
        return err.strerror or str(err)
    if temporary is None:
        return None
    try:
        with open(temporary, "ab") as f:
            f.write(bytes(1 << 20))
            f.flush()
            os.fsync(f.fileno())
    except OSError as probe:
        return probe.strerror or str(probe)
    return None


@contextlib.contextmanager
def reporting_failed_writes(targets, temporaries):
    """Turn a failed write in the block (of ``temporaries``, to become ``targets``) into a
    :class:`~binary_models.errors.FileProblem` ``cannot write TARGET: REASON`` (the OS's reason: ``No space left
    on device``, ``File too large``, ``Permission denied``, ``Is a directory``); other errors pass."""
    try:
        yield
    except BinaryModelsError:
        raise
    except Exception as err:
        # The file it failed on: the one the OSError names, else the last one written (they are written in order).
        written = [(t, s) for t, s in zip(targets, temporaries) if s is None or os.path.exists(s)]
        named = [t for t, s in zip(targets, temporaries) if isinstance(err, OSError) and err.filename in (s, t)]
        if not named and isinstance(err, OSError) and err.filename and err.filename not in temporaries:
            named = [err.filename]  # a file written with them: a pair record
        target, temporary = (named[0], None) if named else (written or list(zip(targets, temporaries)))[-1]
        reason = _reason(err, temporary)
        if not reason:
            raise
        raise FileProblem("cannot write %s: %s" % (target, reason)) from err


def clean_folder(directory):
    """Prepare ``directory`` for a write: finish the commits of killed writers (their pair records), then
    remove the temporaries of dead writers, in one log line. Returns the removed names."""
    finish_interrupted_commits(directory)
    return tempfiles.remove_stale(directory)


def _prepared_folder(path):
    """The folder of ``path``, made if needed and cleaned (:func:`clean_folder`)."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        in_the_way = directory
        while not os.path.exists(in_the_way):
            in_the_way = os.path.dirname(in_the_way)
        raise FileProblem("cannot write %s: %s is a file, not a folder" % (path, in_the_way))
    clean_folder(directory)
    return directory


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path`` (an atomic
    replace), on failure removed. A reader never sees a partially written file."""
    with reporting_failed_writes([path], [None]):
        fd, tmp = tempfiles.new_temporary(_prepared_folder(path), os.path.basename(path))
    try:
        with reporting_failed_writes([path], [tmp]):
            yield tmp
            os.replace(tmp, path)
    finally:
        os.close(fd)
        tempfiles.remove(tmp)


@contextlib.contextmanager
def staging_folder(near):
    """Yield a new temporary folder beside the file ``near`` (for writers that choose their own file names,
    such as ``net.export``), locked by this process while it lives, removed at the end."""
    with reporting_failed_writes([near], [None]), tempfiles.staging_folder(_prepared_folder(near)) as path:
        yield path


@contextlib.contextmanager
def temporaries(paths):
    """Yield a temporary path beside each of ``paths`` (locked by this process, removed at the end unless
    :func:`~.pairs.replace_together` committed them)."""
    opened = []
    try:
        for path in paths:
            with reporting_failed_writes([path], [None]):
                opened.append(tempfiles.new_temporary(_prepared_folder(path), os.path.basename(path)))
        with reporting_failed_writes(paths, [tmp for _, tmp in opened]):
            yield [tmp for _, tmp in opened]
    finally:
        for fd, tmp in opened:
            os.close(fd)
            tempfiles.remove(tmp)


def write_json(path, data):
    """Write ``data`` as indented JSON, atomically: NumPy scalars as the numbers they hold, anything else JSON
    lacks as its ``str``."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True, default=_json_value)
            f.write("\n")


def _json_value(value):
    """A NumPy scalar's number (under NumPy 2's promotion, NEP 50, a metric summed from float32 losses stays
    a float32, which ``json`` does not take; NumPy 1.23 made it a float64, a ``float``), else ``str(value)``."""
    if getattr(value, "shape", None) == () and callable(getattr(value, "item", None)):
        return value.item()
    return str(value)
