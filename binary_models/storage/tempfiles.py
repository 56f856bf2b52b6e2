"""Temporary files and folders of writers, and the removal of those left by dead writers.

A writer creates its temporary beside the target (``.{target}.{8 random}.{pid}.tmp``, or a staging folder
``.packing-{8 random}.{pid}``) and holds a ``flock`` on it while it lives; :func:`remove_stale` removes the
temporaries whose writer is gone. Outputs honour the umask.
"""
import contextlib
import fcntl
import logging
import os
import re
import shutil
import tempfile
import time

# Names are matched whole (fullmatch). Without the pid: written by older versions.
TEMPORARY_NAME = re.compile(r"\.(?P<target>.+)\.[a-z0-9_]{8}(?:\.(?P<pid>[0-9]+))?\.tmp")
STAGING_NAME = re.compile(r"\.packing-[a-z0-9_]{8}(?:\.(?P<pid>[0-9]+))?")
# An unlocked temporary of a live process (just created, not yet locked) is left alone this long.
STALE_AFTER_S = 60

logger = logging.getLogger("binary_models")


def output_mode():
    """0666 less the umask: what ``open`` gives a new file (``mkstemp`` gives 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def new_temporary(directory, target_name):
    """``(fd, path)``: a new temporary file for ``target_name`` in ``directory``, locked by this process
    and with the permissions of a new file."""
    fd, path = tempfile.mkstemp(prefix="." + target_name + ".", suffix=".%d.tmp" % os.getpid(), dir=directory)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.fchmod(fd, output_mode())
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


def remove_stale(directory):
    """Remove the temporaries of dead writers in ``directory``, in one log line. Returns the removed names."""
    removed, size = [], 0
    for entry in os.scandir(directory):
        match = TEMPORARY_NAME.fullmatch(entry.name) or STAGING_NAME.fullmatch(entry.name)
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


@contextlib.contextmanager
def staging_folder(directory):
    """Yield a new temporary folder in ``directory`` (for writers that choose their own file names, such as
    ``net.export``), locked by this process while it lives, removed at the end."""
    path = tempfile.mkdtemp(prefix=".packing-", suffix=".%d" % os.getpid(), dir=directory)
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield path
    finally:
        os.close(fd)
        shutil.rmtree(path, ignore_errors=True)


def remove(path):
    """Remove the file or folder ``path`` (gone already: nothing to do)."""
    with contextlib.suppress(FileNotFoundError):
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
