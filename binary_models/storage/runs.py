"""The run file (``{checkpoint prefix}-run.json``, ``_run.json`` for detectors): what a trained model is (its
name, the keyword arguments that build it, its input size and classes). ``convert``, ``detect`` and ``predict``
find it beside a checkpoint (:func:`find_run_file`) instead of asking again.
"""
import json
import os
import re

from ..errors import FileProblem, MissingFile, UsageError
from .atomic import write_json

RUN_FILE_SUFFIX = "run.json"


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
    :class:`~binary_models.errors.UsageError` when no model name is known or ``run_path`` does not exist."""
    if run_path and not os.path.isfile(run_path):
        raise MissingFile("run_path not found: %s" % run_path, "run_path")
    path = run_path or find_run_file(params_path)
    record = read_run_file(path) if path else {}
    model = model or record.get("model")
    if not model:
        raise UsageError("model is needed: no run file beside %s (or give its run file)" % params_path, "model")
    kwargs = dict(record["model_kwargs"]) if model == record.get("model") else {}
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    return record, model, kwargs, input_size or record.get("input_size") or 224
