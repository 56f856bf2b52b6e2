"""The run file (``{checkpoint prefix}-run.json``, ``_run.json`` for detectors): what a trained model is (its
name, the keyword arguments that build it, its input size and classes). ``convert``, ``detect`` and ``predict``
find it beside a checkpoint (:func:`find_run_file`) instead of asking again.
"""
import json
import math
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


def _finite(text):
    """json's ``parse_float`` and ``parse_constant``: NaN, infinities and overflowing numbers are no JSON."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("%s is not a finite number" % text)
    return value


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive_integer(value):
    """bm-predict's positive integer: a whole number (16 or 16.0) from 1 to 10^6."""
    return _number(value) and 1 <= value <= 1e6 and value == math.floor(value)


def _numbers(value, name):
    values = [value] if _number(value) else value if isinstance(value, list) else []
    if not values or not all(_number(v) for v in values):
        raise FileProblem("preprocessing.%s must be a number or a list of numbers" % name)
    return list(values)


def _with_input_size(fields, name):
    """A copy of ``fields`` whose ``input_size`` (if any) is an int: bm-predict's positive integer, else a
    :class:`FileProblem` naming it as ``name``."""
    checked = dict(fields)
    if "input_size" in fields:
        if not _positive_integer(fields["input_size"]):
            raise FileProblem("%s must be a positive integer" % name)
        checked["input_size"] = int(fields["input_size"])
    return checked


def checked_preprocessing(entry):
    """The ``preprocessing`` entry of a run file (``input_size``, ``crop_ratio``, ``grayscale``, ``mean``,
    ``std``, each optional) after bm-predict's checks (deploy/run_file.cc, deploy/predict.cc), with its whole
    numbers as ints and ``mean`` and ``std`` as lists; a :class:`FileProblem` names the member that is wrong."""
    if not isinstance(entry, dict):
        raise FileProblem("preprocessing must be an object")
    checked = _with_input_size(entry, "preprocessing.input_size")
    if "crop_ratio" in entry and not (entry["crop_ratio"] is None or _number(entry["crop_ratio"])
                                      and entry["crop_ratio"] > 0):
        raise FileProblem("preprocessing.crop_ratio must be a positive number or null")
    if "grayscale" in entry and not isinstance(entry["grayscale"], bool):
        raise FileProblem("preprocessing.grayscale must be true or false")
    for name in ("mean", "std"):
        if name in entry:
            checked[name] = _numbers(entry[name], name)
    if any(s <= 0 for s in checked.get("std", ())):
        raise FileProblem("preprocessing.std must be positive")
    channels = 1 if checked.get("grayscale") else 3
    if any(len(checked.get(name, [0] * channels)) not in (1, channels) for name in ("mean", "std")):
        raise FileProblem("preprocessing.mean and preprocessing.std need %d values (or 1) for this model's input"
                          % channels)
    return checked


def checked_run_fields(record):
    """``record`` (a run file's content) with what serving its model reads checked as bm-predict checks it:
    ``input_size`` (a positive integer), ``preprocessing`` (:func:`checked_preprocessing`) and ``class_names``
    (a list of strings). A :class:`FileProblem` names the field; ints replace whole-number floats."""
    if not isinstance(record, dict):
        raise FileProblem("it is not a JSON object")
    checked = _with_input_size(record, "input_size")
    if "preprocessing" in record:
        checked["preprocessing"] = checked_preprocessing(record["preprocessing"])
    if "class_names" in record and not (isinstance(record["class_names"], list)
                                        and all(isinstance(n, str) for n in record["class_names"])):
        raise FileProblem("class_names must be a list of strings")
    return checked


def check_class_names(names, classes, source):
    """A :class:`FileProblem` unless ``names`` has one name per class: ``"{source} has 3 names, the model has
    10 classes"`` (bm-predict's words)."""
    if len(names) != classes:
        raise FileProblem("%s has %d names, the model has %d classes" % (source, len(names), classes))


def read_run_file(path):
    """The run file's record (a dict with model, model_kwargs, input_size, classes, kind), or a
    :class:`FileProblem` naming the file and its problem; the fields serving reads are checked with
    bm-predict's rules (:func:`checked_run_fields`)."""
    try:
        with open(path) as f:
            record = json.load(f, parse_float=_finite, parse_constant=_finite)
    except (OSError, ValueError) as err:
        raise FileProblem("cannot read run file %s: %s" % (path, err))
    try:
        record = checked_run_fields(record)
    except FileProblem as err:
        raise FileProblem("run file %s: %s" % (path, err))
    missing = [k for k in ("model", "model_kwargs", "input_size", "classes") if k not in record]
    if missing:
        raise FileProblem("run file %s lacks %s" % (path, ", ".join(missing)))
    kinds = dict(model=str, model_kwargs=dict, classes=(int, list))
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
