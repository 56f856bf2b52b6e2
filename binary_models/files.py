"""Files the package writes and reads back: atomic writes, checkpoints, and the run file.

Every file is written to a temporary file in its directory and renamed into place, so a reader never sees
a partial file. The run file (``{checkpoint prefix}-run.json``, ``_run.json`` for detectors) records what
a trained model is: its name, the keyword arguments that build it, its input size and classes. ``convert``,
``detect.py`` and ``predict`` find it beside a checkpoint (:func:`find_run_file`) instead of asking again.
"""
import contextlib
import json
import os
import re
import tempfile

from .cli import UsageError

RUN_FILE_SUFFIX = "run.json"


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path`` (an atomic
    replace), on failure removed. A reader never sees a partially written file."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path, data):
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True, default=str)
            f.write("\n")


def save_checkpoint(prefix, net, trainer=None):
    """Write ``prefix.params`` (and ``prefix.states`` for a trainer) atomically. The states are written
    first, so a ``.params`` file always has its matching ``.states`` beside it."""
    if trainer is not None:
        with atomic_path(prefix + ".states") as tmp:
            trainer.save_states(tmp)
    with atomic_path(prefix + ".params") as tmp:
        net.save_parameters(tmp)
    return prefix + ".params"


def load_parameters(net, path, what, ctx=None):
    """``net.load_parameters(path)``, or a :class:`UsageError` naming the flag ``what`` when the file is
    missing or does not fit the network."""
    import mxnet as mx
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        raise UsageError("%s not found: %s" % (what, path))
    try:
        net.load_parameters(path, ctx=ctx or mx.cpu())
    except (mx.MXNetError, AssertionError, AttributeError, ValueError) as err:
        raise UsageError("%s %s does not match the model: %s" % (what, path, str(err).splitlines()[0]))


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
        raise UsageError("cannot read run file %s: %s" % (path, err))
    missing = [k for k in ("model", "model_kwargs", "input_size", "classes") if k not in record] \
        if isinstance(record, dict) else ["everything"]
    if missing:
        raise UsageError("run file %s lacks %s" % (path, ", ".join(missing)))
    return record


def trained_model(params_path, run_path=None, model=None, input_size=None, **overrides):
    """What builds the model whose parameters are ``params_path``: ``(record, model, model_kwargs,
    input_size)`` from its run file (``run_path``, else the one :func:`find_run_file` finds, else none: the
    record is then ``{}``), where ``model``, ``input_size`` and the keyword arguments in ``overrides`` that are
    not None take precedence. The run file's keyword arguments apply only to its own model. Raises a
    :class:`UsageError` when no model name is known or ``run_path`` does not exist."""
    if run_path and not os.path.isfile(run_path):
        raise UsageError("--run not found: %s" % run_path)
    path = run_path or find_run_file(params_path)
    record = read_run_file(path) if path else {}
    model = model or record.get("model")
    if not model:
        raise UsageError("--model is needed: no run file beside %s (or give --run)" % params_path)
    kwargs = dict(record["model_kwargs"]) if model == record.get("model") else {}
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    return record, model, kwargs, input_size or record.get("input_size") or 224
