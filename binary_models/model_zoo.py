"""``get_model``, the model list, and registration into GluonCV's model zoo.

The families (``binary_models/models/``, one per file) register their factories in
:mod:`binary_models.registry` when they are imported, here; GluonCV's own names work in ``get_model`` too.
"""
import contextlib
import difflib
import io
import numbers

import mxnet as mx
from mxnet.gluon import HybridBlock

from . import registry
from .errors import InputSizeError, UnknownModel
from .models import meliusnet, densenet, resnet_e, tang, quicknet, real_to_binary, alexnet, reactnet, ssd  # noqa: F401  (each registers its factories)
from .registry import register_model, model_factory, default_root, load_pretrained  # noqa: F401  (public API)

MAX_INPUT_SIDE = 4096  # the largest side minimum_input_size tries


def get_model_list(kind="classification"):
    """Names of this package's models of ``kind`` ('classification', 'detection', or None for all);
    GluonCV's own names work in ``get_model`` too."""
    return registry.model_names(kind)


def _gluoncv_models():
    from gluoncv.model_zoo import model_zoo as gcv_zoo
    return gcv_zoo._models


def get_model(name, **kwargs):
    """The model called ``name``: one of :func:`get_model_list`, an SSD ``ssd_{shape}_{backbone}_{dataset}``
    with one of this package's backbones, or any model of GluonCV's zoo.

    Keyword arguments go to the factory (``classes``, ``stem``, layer options, ``pretrained``...).
    An unknown name raises :class:`~binary_models.errors.UnknownModel` (a ``ValueError``) naming the closest
    known models."""
    if not isinstance(name, str):
        raise TypeError("the model name must be a string, got %r; this package's models: %s (and every GluonCV "
                        "model name)" % (name, ", ".join(registry.model_names())))
    key = name.lower()
    factory = registry.factory_of(key)
    if factory is not None:
        return factory(**kwargs)
    if ssd.is_ssd_name(key):
        return ssd.get_ssd_model(key, **kwargs)
    gluoncv_models = _gluoncv_models()
    if key in gluoncv_models:
        if isinstance(kwargs.get("classes"), numbers.Number):  # GluonCV's classifiers do not check it
            kwargs["classes"] = registry.check_classes(key, kwargs["classes"])
        return gluoncv_models[key](**kwargs)
    ours = registry.model_names(None)
    close = difflib.get_close_matches(key, sorted(set(ours) | set(gluoncv_models)), n=5, cutoff=0.5)
    raise UnknownModel("unknown model %r. Closest known: %s. binary_models.get_model_list() lists this "
                       "package's %d models; every GluonCV model name works too."
                       % (name, ", ".join(close) if close else "(none)", len(ours)), "model")


_minimum_sizes = {}  # (name, model arguments) -> minimum_input_size


def minimum_input_size(model, in_channels=3, **kwargs):
    """The least side ``s`` of a square ``(N, in_channels, s, s)`` input that ``model`` (a name of :func:`get_model`,
    built with ``kwargs``, or a Gluon HybridBlock) accepts: every convolution and pooling window fits its
    input; larger inputs all fit (sizes only grow with the input). Found by shape inference of the model's
    symbol (no weights, no computation), e.g. 29 for meliusnet22 (stride 32), 8 with ``stem='thumbnail'``."""
    key = None
    if isinstance(model, str):
        try:
            key = (model.lower(), in_channels, tuple(sorted(kwargs.items())))
            hash(key)
        except TypeError:
            key = None
        if key in _minimum_sizes:
            return _minimum_sizes[key]
        net = get_model(model, **kwargs)
    elif isinstance(model, HybridBlock):
        net = model
    else:
        raise TypeError("minimum_input_size needs a model name or a Gluon HybridBlock, got %r" % (model,))
    symbol = net(mx.sym.var("data"))

    def fits(side):
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # MXNet prints the arguments of a failed inference
                symbol.infer_shape(data=(1, in_channels, side, side))
            return True
        except mx.MXNetError:
            return False

    low, high = 1, MAX_INPUT_SIDE
    if not fits(high):
        raise ValueError("%s accepts no input up to %dx%d" % (getattr(net, "model_name", type(net).__name__), high,
                                                              high))
    while low < high:  # bisection: the outputs' sizes never shrink as the input grows
        middle = (low + high) // 2
        low, high = (low, middle) if fits(middle) else (middle + 1, high)
    if key is not None:
        _minimum_sizes[key] = low
    return low


def check_input_size(model, height, width=None, name=None, **kwargs):
    """Raise :class:`~binary_models.errors.InputSizeError` (argument ``input_size``) naming the model (``name``,
    else its own) and its :func:`minimum_input_size` when a ``height`` x ``width`` (default: square) input is
    too small for ``model``; returns the minimum."""
    minimum = minimum_input_size(model, **kwargs)
    if min(height, width or height) < minimum:
        name = name or (model if isinstance(model, str) else getattr(model, "model_name", type(model).__name__))
        size, needed = ("%d" % height, "%d" % minimum) if width in (None, height) else \
            ("%dx%d" % (height, width), "%dx%d" % (minimum, minimum))
        raise InputSizeError("input_size %s is too small for %s: it needs at least %s (its convolutions and "
                             "poolings downsample the input)" % (size, name, needed), "input_size")
    return minimum


def register_with_gluoncv():
    """Add every model of this package to GluonCV's model dict (GluonCV has no register API, and its
    ``get_model`` and ``FeatureExpander`` read that dict), so GluonCV scripts can use them unchanged."""
    _gluoncv_models().update(registry.factories())
