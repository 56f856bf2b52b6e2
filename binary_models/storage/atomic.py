"""Atomic writes: every file is written to a temporary in its folder and renamed into place, so a reader
never sees a partial file. Before a write, the folder is cleaned: the commits of killed writers are finished
(:mod:`.pairs`) and their temporaries removed (:mod:`.tempfiles`)."""
import contextlib
import json
import os

from ..errors import FileProblem
from . import tempfiles
from .pairs import finish_interrupted_commits


def make_folder(path, what="folder"):
    """``os.makedirs(path)``, or a :class:`~binary_models.errors.FileProblem` naming ``what`` (the argument
    that gave the folder) when ``path`` (or a folder above it) is a file or cannot be created."""
    try:
        os.makedirs(path, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise FileProblem("%s %s is a file, not a folder" % (what, path), what)
    except OSError as err:
        raise FileProblem("%s %s: cannot create the folder: %s" % (what, path, err.strerror or err), what)
    return path


def clean_folder(directory):
    """Prepare ``directory`` for a write: finish the commits of killed writers (their pair records), then
    remove the temporaries of dead writers, in one log line. Returns the removed names."""
    finish_interrupted_commits(directory)
    return tempfiles.remove_stale(directory)


def _prepared_folder(path):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    clean_folder(directory)
    return directory


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path`` (an atomic
    replace), on failure removed. A reader never sees a partially written file."""
    fd, tmp = tempfiles.new_temporary(_prepared_folder(path), os.path.basename(path))
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        os.close(fd)
        tempfiles.remove(tmp)


@contextlib.contextmanager
def staging_folder(near):
    """Yield a new temporary folder beside the file ``near`` (for writers that choose their own file names,
    such as ``net.export``), locked by this process while it lives, removed at the end."""
    with tempfiles.staging_folder(_prepared_folder(near)) as path:
        yield path


@contextlib.contextmanager
def temporaries(paths):
    """Yield a temporary path beside each of ``paths`` (locked by this process, removed at the end unless
    :func:`~.pairs.replace_together` committed them)."""
    opened = []
    try:
        for path in paths:
            opened.append(tempfiles.new_temporary(_prepared_folder(path), os.path.basename(path)))
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
