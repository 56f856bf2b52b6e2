"""``get_model``, the model list, and registration into GluonCV's model zoo.

The families (``binary_models/models/``, one per file) register their factories in
:mod:`binary_models.registry` when they are imported, here; GluonCV's own names work in ``get_model`` too.
"""
import difflib

from . import registry
from .models import meliusnet, densenet, resnet_e, tang, ssd  # noqa: F401  (each registers its factories)
from .registry import register_model, model_factory, default_root, load_pretrained  # noqa: F401  (public API)


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
    An unknown name raises ``ValueError`` naming the closest known models."""
    if not isinstance(name, str):
        raise ValueError("the model name must be a string, got %r; binary_models.get_model_list() lists them"
                         % (name,))
    key = name.lower()
    factory = registry.factory_of(key)
    if factory is not None:
        return factory(**kwargs)
    if ssd.is_ssd_name(key):
        return ssd.get_ssd_model(key, **kwargs)
    gluoncv_models = _gluoncv_models()
    if key in gluoncv_models:
        return gluoncv_models[key](**kwargs)
    ours = registry.model_names(None)
    close = difflib.get_close_matches(key, sorted(set(ours) | set(gluoncv_models)), n=5, cutoff=0.5)
    raise ValueError("unknown model %r. Closest known: %s. binary_models.get_model_list() lists this "
                     "package's %d models; every GluonCV model name works too."
                     % (name, ", ".join(close) if close else "(none)", len(ours)))


def register_with_gluoncv():
    """Add every model of this package to GluonCV's model dict (GluonCV has no register API, and its
    ``get_model`` and ``FeatureExpander`` read that dict), so GluonCV scripts can use them unchanged."""
    _gluoncv_models().update(registry.factories())
