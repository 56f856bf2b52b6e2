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
import stat

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
    """One rename of a commit, ``(folder descriptor, name)`` to ``(folder descriptor, name)`` (tests interrupt
    commits here)."""
    os.replace(source[1], target[1], src_dir_fd=source[0], dst_dir_fd=target[0])


def _plain_name(name):
    """A file name in a folder: a string, not empty, not ``.`` or ``..``, without ``/`` (or NUL)."""
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\0" not in name


def _quoted(value):
    """A record's entry as bm-predict quotes it (JSON, ASCII; ``an array``, ``an object``)."""
    if isinstance(value, (dict, list)):
        return "an object" if isinstance(value, dict) else "an array"
    return json.dumps(value)


@contextlib.contextmanager
def _planned_renames(record_path, staged):
    """Yield the renames of ``staged`` (target name -> temporary) as ``(source, target)`` pairs of ``(folder
    descriptor, name)``, after checking every name (a :class:`FileProblem` refuses the record before anything
    is renamed). A target is a plain file name in the record's folder; a temporary a plain name, or
    ``.packing-XXXXXXXX.PID/NAME`` in a staging folder that is a real folder (not a link). A staging folder
    that is gone yields nothing to rename. The rule of bm-predict (deploy/pair_record.cc)."""
    folder = os.open(os.path.dirname(os.path.abspath(record_path)),
                     getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY)
    opened = {}  # staging folder name -> descriptor (None: gone)
    try:
        renames = []
        for target, source in sorted(staged.items()):
            if not _plain_name(target) or not isinstance(source, str):
                raise _refusal(record_path, source if _plain_name(target) else target)
            sub, slash, name = source.partition("/")
            if not slash:
                if not _plain_name(source):
                    raise _refusal(record_path, source)
                renames.append(((folder, source), (folder, target)))
                continue
            if not tempfiles.STAGING_NAME.fullmatch(sub) or not _plain_name(name):
                raise _refusal(record_path, source)
            if sub not in opened:
                try:  # O_NOFOLLOW: a link named like a staging folder could lead anywhere
                    opened[sub] = os.open(sub, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder)
                except FileNotFoundError:
                    opened[sub] = None
                except OSError:
                    raise _refusal(record_path, source)
            if opened[sub] is not None:
                renames.append(((opened[sub], name), (folder, target)))
        yield renames
    finally:
        for fd in [folder] + [fd for fd in opened.values() if fd is not None]:
            os.close(fd)


def _refusal(record_path, name):
    return FileProblem("pair record %s: %s is not the name of a file in its folder" % (record_path, _quoted(name)))


def _is_file(source):
    try:
        return stat.S_ISREG(os.stat(source[1], dir_fd=source[0]).st_mode)
    except OSError:
        return False


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
    except OSError as err:  # named after the record, not its temporary (nor the files it pairs)
        raise OSError(err.errno, err.strerror, record_path) from err
    finally:
        os.close(fd)
        tempfiles.remove(tmp)


def finish_commit(record_path):
    """Finish the renames of the commit recorded in ``record_path`` (a writer killed after its commit point
    left some of its temporaries); returns the record (None when there is none). A record that names anything
    but files in its own folder is refused (:class:`FileProblem`) and nothing is renamed."""
    record = _read_record(record_path)
    if record is None:
        return None
    with _planned_renames(record_path, record.get("staged", {})) as renames:
        for source, target in renames:
            if _is_file(source):
                # Gone: another process finished it. Not allowed (a read-only folder): check_pair reports the mix.
                with contextlib.suppress(OSError):
                    _move(source, target)
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
    names = {os.path.relpath(t, directory): os.path.relpath(s, directory) for t, s in staged.items()}
    record = {"files": {os.path.relpath(t, directory): sha256(s) for t, s in staged.items()}, "staged": names}
    with _planned_renames(record_path, names) as renames:  # the rule readers apply, checked before the commit
        _write_record(record_path, record)  # the commit point
        try:
            for source, target in renames:
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
