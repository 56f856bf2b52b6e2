"""Parameter files, trainer-state files and checkpoints (the two written together, see :mod:`.pairs`), read
back with checks that name the file and its problem."""
import os
import pickle
import re

from ..errors import FileProblem, MissingFile, error_line
from .atomic import atomic_path, temporaries
from .pairs import check_pair, finish_commit, pair_record, replace_together


def checkpoint_record(params_or_states):
    """The pair record of the checkpoint ``X.params`` / ``X.states``: ``X.pair.json``."""
    return pair_record(re.sub(r"\.(params|states)$", "", params_or_states))


def save_checkpoint(prefix, net, trainer=None, extra=None):
    """Write ``prefix.params`` (and ``prefix.states`` for a trainer, and ``prefix + suffix`` for each
    ``suffix: write(path)`` of ``extra``) as a unit: a kill at any point leaves the old checkpoint or the new
    one (:func:`replace_together`)."""
    extra = extra or {}
    targets = [prefix + ".params"] + ([prefix + ".states"] if trainer is not None else [])
    targets += [prefix + suffix for suffix in extra]
    record = pair_record(prefix)
    if len(targets) == 1 and not os.path.exists(record):
        with atomic_path(targets[0]) as tmp:
            net.save_parameters(tmp)
        return targets[0]
    with temporaries(targets) as staged:
        net.save_parameters(staged[0])
        if trainer is not None:
            trainer.save_states(staged[1])
        for write, path in zip(extra.values(), staged[len(targets) - len(extra):]):
            write(path)
        replace_together(record, dict(zip(targets, staged)))
    return targets[0]


def _existing_file(path, what):
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        raise MissingFile("%s not found: %s" % (what, path), what)
    if os.path.getsize(path) == 0:
        raise FileProblem("%s %s is empty" % (what, path), what)
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
        raise FileProblem("%s %s is not a parameter file, or it is truncated (%s)" % (what, path, error_line(err)),
                          what)
    try:
        net.load_parameters(path, ctx=ctx or mx.cpu())
    except (mx.MXNetError, AssertionError, AttributeError, ValueError, KeyError) as err:
        model = getattr(net, "model_name", None)
        raise FileProblem("%s %s does not match the model: %s%s"
                          % (what, path, error_line(err), " (the model is %s)" % model if model else ""), what)


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
                          % (what, path, type(err).__name__, err), what)
    states, optimizer = content if isinstance(content, tuple) and len(content) == 2 else (content, None)
    if not isinstance(states, dict):
        raise FileProblem("%s %s is not a trainer-states file (it holds a %s)" % (what, path, type(states).__name__),
                          what)
    if optimizer is not None and type(optimizer) is not type(trainer.optimizer):
        raise FileProblem("%s %s holds the states of the optimizer %s, this run uses %s"
                          % (what, path, type(optimizer).__name__.lower(), type(trainer.optimizer).__name__.lower()),
                          what)
    params_list = trainer._params
    for index, state in states.items():
        shapes = _shapes(state)
        if not isinstance(index, int) or not 0 <= index < len(params_list) \
                or not all(_fits(shape, params_list[index].shape) for shape in shapes):
            raise FileProblem("%s %s holds the states of another model: %s for parameter %s, the model has %s"
                              % (what, path, shapes, index, "%d parameters" % len(params_list)
                                 if not isinstance(index, int) or not 0 <= index < len(params_list)
                                 else "%s of shape %s" % (params_list[index].name, params_list[index].shape)), what)
    trainer.load_states(path)
