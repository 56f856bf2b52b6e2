"""Files replaced together, as a unit: a checkpoint's ``X.params`` and ``X.states``, a packed model's
``PREFIX-symbol.json`` and ``PREFIX-0000.params``.

Both are written to temporaries, then a pair record ``{X}.pair.json`` (the SHA-256 of each file and the
temporaries' names) is written, which is the commit point, then both temporaries are renamed
(:func:`replace_together`). A reader (:func:`finish_interrupted_commits`, called by every loader and writer)
finishes the renames of a writer that was killed after the commit point, so either the old or the new pair
loads, never a mix; the record then lets a reader refuse a file that was not written with its partner
(:func:`check_pair`).
"""
import contextlib
import hashlib
import json
import os

from ..errors import FileProblem
from . import tempfiles

PAIR_RECORD_SUFFIX = ".pair.json"


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


def _write_record(record_path, record):
    """Write the record atomically (the folder is prepared: the staged files are in it)."""
    fd, tmp = tempfiles.new_temporary(os.path.dirname(os.path.abspath(record_path)),
                                        os.path.basename(record_path))
    try:
        with open(tmp, "w") as f:
            json.dump(record, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, record_path)
    finally:
        os.close(fd)
        tempfiles.remove(tmp)


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
    _write_record(record_path, record)  # the commit point
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
                                 record_path), what)
