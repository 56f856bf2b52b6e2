"""Model registry: name -> factory, ``get_model``, and registration into GluonCV's model zoo.

Factories are registered with ``@register_model`` next to their definition (one family per file in
``binary_models.models``). Every factory takes GluonCV's arguments (``pretrained``, ``ctx``, ``root``),
ignores those GluonCV's scripts pass that make no sense here, and accepts the layer options of
:class:`binary_models.LayerConfig` (``bits``, ``bits_a``, ``grad_cancel``, ...), applied with
:func:`binary_models.layer_config` while the model is built.
"""
import dataclasses
import difflib
import functools
import os

import mxnet as mx

from .config import LayerConfig, layer_config

_models = {}
_kinds = {}  # name -> 'classification' | 'detection'

LAYER_OPTIONS = tuple(f.name for f in dataclasses.fields(LayerConfig))
# Arguments GluonCV's scripts pass to every model that these models have no use for.
GLUONCV_IGNORED = ("norm_layer", "norm_kwargs", "pretrained_base", "use_se", "last_gamma", "num_sync_bn_devices")
DEFAULT_ROOT = os.path.join("~", ".mxnet", "models")


def default_root():
    """GluonCV's convention: ``$MXNET_HOME/models``, else ``~/.mxnet/models``."""
    home = os.environ.get("MXNET_HOME")
    return os.path.join(home, "models") if home else DEFAULT_ROOT


def load_pretrained(net, name, root, ctx):
    """Load ``{root}/{name}.params`` into ``net``; nothing is ever downloaded."""
    path = os.path.join(os.path.expanduser(root), name + ".params")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            "pretrained=True: no weights for %r at %s. binary_models downloads nothing; train the model "
            "(train_imagenet.py, detection/train_ssd.py) or obtain its .params file and put it at that path "
            "(or pass root=...)."
            % (name, path))
    net.load_parameters(path, ctx=ctx)


def model_factory(fn, layer_defaults=None):
    """``fn`` as a GluonCV-style factory (``pretrained``, ``ctx``, ``root``; GluonCV's unused arguments
    dropped; layer options applied with :func:`layer_config` while it builds), without registering it."""
    name = fn.__name__

    @functools.wraps(fn)
    def factory(pretrained=False, ctx=mx.cpu(), root=None, **kwargs):
        for ignored in GLUONCV_IGNORED:
            kwargs.pop(ignored, None)
        options = dict(layer_defaults or {})
        options.update({k: kwargs.pop(k) for k in list(kwargs) if k in LAYER_OPTIONS})
        with layer_config(**options):
            net = fn(**kwargs)
        net.model_name = name
        if pretrained:
            load_pretrained(net, name, root or default_root(), ctx)
        return net

    return factory


def register_model(fn=None, *, layer_defaults=None, kind="classification"):
    """Register ``fn`` under its name as a :func:`model_factory`; ``layer_defaults`` are layer options the
    model uses unless the caller gives others (e.g. Tang et al.'s two binarizations); ``kind``
    ('classification' or 'detection') is what :func:`get_model_list` filters on."""
    if fn is None:
        return functools.partial(register_model, layer_defaults=layer_defaults, kind=kind)
    factory = model_factory(fn, layer_defaults)
    _models[fn.__name__] = factory
    _kinds[fn.__name__] = kind
    return factory


def _ensure_registered():
    from . import models  # noqa: F401  (importing the families fills the registry)


def get_model_list(kind="classification"):
    """Names of this package's models of ``kind`` ('classification', 'detection', or None for all);
    GluonCV's own names work in ``get_model`` too."""
    _ensure_registered()
    return sorted(name for name in _models if kind is None or _kinds[name] == kind)


def _gluoncv_models():
    from gluoncv.model_zoo import model_zoo as gcv_zoo
    return gcv_zoo._models


def get_model(name, **kwargs):
    """The model called ``name``: one of :func:`get_model_list`, or any model of GluonCV's zoo.

    Keyword arguments go to the factory (``classes``, ``stem``, layer options, ``pretrained``...).
    An unknown name raises ``ValueError`` naming the closest known models."""
    _ensure_registered()
    key = name.lower()
    if key in _models:
        return _models[key](**kwargs)
    gluoncv_models = _gluoncv_models()
    if key in gluoncv_models:
        return gluoncv_models[key](**kwargs)
    known = sorted(set(_models) | set(gluoncv_models))
    close = difflib.get_close_matches(key, known, n=5, cutoff=0.5)
    raise ValueError("unknown model %r. Closest known: %s. binary_models.get_model_list() lists this "
                     "package's %d models; every GluonCV model name works too."
                     % (name, ", ".join(close) if close else "(none)", len(_models)))


def register_with_gluoncv():
    """Add every model of this package to GluonCV's model dict (GluonCV has no register API, and its
    ``get_model`` and ``FeatureExpander`` read that dict), so GluonCV scripts can use them unchanged."""
    _ensure_registered()
    _gluoncv_models().update(_models)
