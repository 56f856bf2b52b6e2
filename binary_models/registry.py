"""The model registry: name -> factory. It imports nothing from the models; each family file registers its
factories with ``@register_model`` next to their definitions, and :mod:`binary_models.model_zoo` imports the
families and serves ``get_model``.

Every factory takes GluonCV's arguments (``pretrained``, ``ctx``, ``root``) and the keyword arguments GluonCV's
scripts pass: ``norm_layer``, ``norm_kwargs`` and ``last_gamma`` are applied with
:func:`binary_models.normalization.norm_config` while the model is built; ``pretrained_base`` goes to detectors
(a classifier warns when it is True); ``use_se=True`` is refused (no model here has SE blocks). The layer
options of :class:`binary_models.LayerConfig` (``bits``, ``bits_a``, ``grad_cancel``, ...) are applied with
:func:`binary_models.layer_config` the same way.
"""
import functools
import numbers
import os
import warnings

from .nn.config import LAYER_OPTIONS, layer_config
from .nn.normalization import norm_config, residual_ends_built, sync_batch_norm
from .errors import UsageError

KINDS = ("classification", "detection")
# GluonCV's normalisation arguments (binary_models.normalization.norm_config's).
NORM_ARGUMENTS = ("norm_layer", "norm_kwargs", "last_gamma")
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
    """Load ``{root}/{name}.params`` into ``net``; nothing is ever downloaded. A missing, empty, truncated
    or other model's file raises a :class:`~binary_models.files.FileProblem` (a ``ValueError``;
    ``FileNotFoundError`` when missing) naming the file."""
    from .storage import MissingFile, load_parameters
    path = pretrained_path(name, root)
    if not os.path.isfile(path):
        raise MissingFile(
            "pretrained=True: no weights for %r at %s. binary_models downloads nothing; train the model "
            "(train_imagenet.py, detection/train_ssd.py) or obtain its .params file and put it at that path "
            "(or pass root=...)."
            % (name, path))
    load_parameters(net, path, "pretrained=True: the weights of %r" % name, ctx)


def take_norm_options(name, kwargs):
    """Remove GluonCV's normalisation arguments from ``kwargs`` and return them as :func:`norm_config`'s:
    ``norm_layer``, ``norm_kwargs``, ``last_gamma``, and GluonCV's older ``num_sync_bn_devices`` (> 1:
    ``SyncBatchNorm`` over that many devices). ``use_se=True`` raises: no model here has SE blocks."""
    options = {k: kwargs.pop(k) for k in NORM_ARGUMENTS if k in kwargs}
    devices = kwargs.pop("num_sync_bn_devices", None)
    if devices is not None and devices > 1:
        if options.get("norm_layer") is not None:
            raise UsageError("%s: give norm_layer or num_sync_bn_devices, not both" % name)
        options["norm_layer"], sync_kwargs = sync_batch_norm(devices)
        options["norm_kwargs"] = dict(options.get("norm_kwargs") or {}, **sync_kwargs)
    if kwargs.pop("use_se", False):
        raise UsageError("use_se=True: %s has no squeeze-and-excitation blocks (GluonCV's option of ResNeXt and "
                         "SE-ResNet)" % name)
    return options


def check_classes(name, classes):
    """A classifier's ``classes`` must be an integer >= 1 (a detector's is a list of names: not checked here)."""
    if isinstance(classes, bool) or not isinstance(classes, numbers.Integral) or classes < 1:
        raise UsageError("%s: classes must be an integer >= 1, got %r (the number of classes)" % (name, classes))
    return int(classes)


def warn_unused_last_gamma(name, residual_ends):
    """``last_gamma=True`` built no zero-gamma normalisation: say so, naming the model."""
    if residual_ends == 0:
        warnings.warn("last_gamma=True has no effect on %s: none of its residual branches ends in a normalisation "
                      "layer (only ResNet-E's blocks do; MeliusNet's ImprovementBlock normalises before its binary "
                      "conv, BinaryDenseNet's blocks concatenate, Tang et al.'s layers have no shortcut)" % name,
                      stacklevel=3)


def model_factory(fn, name=None, layer_defaults=None, kind="classification"):
    """``fn`` as a GluonCV-style factory called ``name``, unregistered: ``pretrained``, ``ctx``, ``root``;
    layer options applied with :func:`layer_config` and GluonCV's normalisation arguments with
    :func:`norm_config` while it builds. A detector's ``fn`` also gets ``pretrained_base`` (False when
    ``pretrained``, as in GluonCV), ``ctx`` and ``root``; a classifier warns about ``pretrained_base=True``."""
    name = name or fn.__name__

    @functools.wraps(fn)
    def factory(pretrained=False, ctx=None, root=None, **kwargs):
        import mxnet as mx
        ctx = ctx or mx.cpu()
        norm_options = take_norm_options(name, kwargs)
        if kind == "detection":
            kwargs.update(ctx=ctx, root=root, pretrained_base=kwargs.pop("pretrained_base", False) and not pretrained)
        else:
            if "classes" in kwargs:
                kwargs["classes"] = check_classes(name, kwargs["classes"])
            if kwargs.pop("pretrained_base", False):
                warnings.warn("pretrained_base=True has no effect on the classifier %s (it is a detector's "
                              "argument; pretrained=True loads a classifier's weights)" % name, stacklevel=2)
        options = dict(layer_defaults or {})
        options.update({k: kwargs.pop(k) for k in list(kwargs) if k in LAYER_OPTIONS})
        residual_ends = residual_ends_built()
        with layer_config(**options), norm_config(**norm_options):
            net = fn(**kwargs)
        if norm_options.get("last_gamma"):
            warn_unused_last_gamma(name, residual_ends_built() - residual_ends)
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
        raise UsageError("unknown model kind %r; allowed: %s" % (kind, ", ".join(KINDS)))
    factory = model_factory(fn, name, layer_defaults, kind)
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
