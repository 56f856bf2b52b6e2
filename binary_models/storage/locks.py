"""The run lock: one live training run per output folder.

A run holds ``flock`` on its lock file while it lives and writes there who it is; a run that ends, also after
an error, removes it (only a killed run leaves its file behind, for the next run's warning).
"""
import atexit
import datetime
import fcntl
import logging
import os
import socket
import sys

from ..errors import FolderInUse
from .tempfiles import output_mode

logger = logging.getLogger("binary_models")

_held_locks = {}  # real path -> fd of the run locks this process holds


@atexit.register
def release_run_locks():
    """A process that exits, also after an error or a stop signal, ends its runs cleanly; only a killed one
    leaves its lock file for the next run's warning."""
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
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, output_mode())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 4096).decode("utf-8", "replace").strip() or "unknown process"
            os.close(fd)
            raise FolderInUse("%s is in use by another training run (%s; lock file %s): wait for it to end, or "
                              "choose another output folder" % (what, holder, path))
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # locked a file its run removed as it ended: lock the path's file anew
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
        try:
            os.unlink(path)  # gone: the next run knows that this one ended cleanly
        except OSError:
            os.ftruncate(fd, 0)  # a read-only folder: empty says the same
        os.close(fd)
