"""The model registry: name -> factory. It imports nothing from the models; each family file registers its
factories with ``@register_model`` next to their definitions, and :mod:`binary_models.model_zoo` imports the
families and serves ``get_model``.

Every factory takes GluonCV's arguments (``pretrained``, ``ctx``, ``root``), ignores those GluonCV's scripts
pass that make no sense here, and accepts the layer options of :class:`binary_models.LayerConfig` (``bits``,
``bits_a``, ``grad_cancel``, ...), applied with :func:`binary_models.layer_config` while the model is built.
"""
import functools
import os

from .config import LAYER_OPTIONS, layer_config

KINDS = ("classification", "detection")
# Arguments GluonCV's scripts pass to every model that these models have no use for.
GLUONCV_IGNORED = ("norm_layer", "norm_kwargs", "pretrained_base", "use_se", "last_gamma", "num_sync_bn_devices")
DEFAULT_ROOT = os.path.join("~", ".mxnet", "models")

_factories = {}  # name -> factory
_kinds = {}      # name -> one of KINDS


def default_root():
    """GluonCV's convention: ``$MXNET_HOME/models``, else ``~/.mxnet/models``."""
    home = os.environ.get("MXNET_HOME")
    return os.path.join(home, "models") if home else DEFAULT_ROOT


def pretrained_path(name, root=None):
    """Where ``pretrained=True`` looks for the weights of ``name``: ``{root}/{name}.params``."""
    return os.path.join(os.path.expanduser(root or default_root()), name + ".params")


def load_pretrained(net, name, root, ctx):
    """Load ``{root}/{name}.params`` into ``net``; nothing is ever downloaded."""
    path = pretrained_path(name, root)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            "pretrained=True: no weights for %r at %s. binary_models downloads nothing; train the model "
            "(train_imagenet.py, detection/train_ssd.py) or obtain its .params file and put it at that path "
            "(or pass root=...)."
            % (name, path))
    net.load_parameters(path, ctx=ctx)


def model_factory(fn, name=None, layer_defaults=None):
    """``fn`` as a GluonCV-style factory called ``name`` (``pretrained``, ``ctx``, ``root``; GluonCV's unused
    arguments dropped; layer options applied with :func:`layer_config` while it builds), unregistered."""
    name = name or fn.__name__

    @functools.wraps(fn)
    def factory(pretrained=False, ctx=None, root=None, **kwargs):
        import mxnet as mx
        ctx = ctx or mx.cpu()
        for ignored in GLUONCV_IGNORED:
            kwargs.pop(ignored, None)
        options = dict(layer_defaults or {})
        options.update({k: kwargs.pop(k) for k in list(kwargs) if k in LAYER_OPTIONS})
        with layer_config(**options):
            net = fn(**kwargs)
        net.model_name = name
        if pretrained:
            load_pretrained(net, name, root, ctx)
        return net

    factory.__name__ = factory.__qualname__ = name
    return factory


def register_model(fn=None, *, name=None, layer_defaults=None, kind="classification"):
    """Register ``fn`` as a :func:`model_factory` under ``name`` (default: its own name). ``layer_defaults``
    are layer options the model uses unless the caller gives others (e.g. Tang et al.'s two binarizations);
    ``kind`` ('classification' or 'detection') is what :func:`model_names` filters on."""
    if fn is None:
        return functools.partial(register_model, name=name, layer_defaults=layer_defaults, kind=kind)
    if kind not in KINDS:
        raise ValueError("unknown model kind %r; allowed: %s" % (kind, ", ".join(KINDS)))
    factory = model_factory(fn, name, layer_defaults)
    _factories[factory.__name__] = factory
    _kinds[factory.__name__] = kind
    return factory


def model_names(kind="classification"):
    """Registered names of ``kind`` ('classification', 'detection', or None for all), sorted."""
    return sorted(name for name in _factories if kind is None or _kinds[name] == kind)


def factory_of(name):
    """The registered factory of ``name`` (lower case), or None."""
    return _factories.get(name.lower())


def factories():
    """A copy of the registry: name -> factory."""
    return dict(_factories)
