"""The normalisation layers of every model, chosen the way GluonCV's scripts choose them.

Model families call :func:`make_norm` wherever they normalise (instead of ``nn.BatchNorm()``), and
:func:`norm_config` picks the layer it makes while a model is built, as :func:`binary_models.layer_config`
does for quantized layers. :func:`binary_models.registry.model_factory` applies GluonCV's keyword arguments
with it, so no constructor threads them through:

- ``norm_layer`` / ``norm_kwargs``: the class and keyword arguments of every normalisation layer
  (default ``mxnet.gluon.nn.BatchNorm``); ``gluon.contrib.nn.SyncBatchNorm`` with ``{'num_devices': n}`` is
  what GluonCV's ``--syncbn`` passes, ``gluoncv.nn.GroupNorm`` what ``--use-gn`` passes. A layer class that
  takes ``in_channels`` gets it (GluonCV's ``GroupNorm`` needs it; MXNet's ``nn.GroupNorm`` infers it).
- ``last_gamma``: the normalisation that ends a residual branch, right before the shortcut is added
  (``make_norm(..., residual_end=True)``), starts with gamma = 0, so each residual unit starts as the
  identity (Goyal et al., 2017, section 5.1; GluonCV's ResNet ``last_gamma``).
- GluonCV's older ``num_sync_bn_devices`` (> 1: ``SyncBatchNorm`` over that many devices).

With the default BatchNorm the layers and their parameter names are exactly those of ``nn.BatchNorm()``, so
checkpoints keep loading: :class:`BatchNorm`, which is ``nn.BatchNorm`` unless :func:`use_plain_batch_norm` is on.
"""
import contextlib
import dataclasses
import functools
import inspect

from mxnet.gluon import nn
from ..errors import UsageError


# Whether BatchNorm layers run as the native library's plain_batch_norm (see use_plain_batch_norm).
_plain_batch_norm = False


def use_plain_batch_norm(enabled=True):
    """Run the models' BatchNorm layers (:class:`BatchNorm`, over axis 1) as the native library's
    ``plain_batch_norm``: MXNet's BatchNorm (batch statistics and running averages in training, the running
    ones at inference; the same gradients, within float rounding) at memory speed on the plain NCHW layout of the
    native training operators, where oneDNN's plain-layout BatchNorm is 5-8x slower than on its blocked layout
    (docs/native.md). CPU only, float32, needs the library loaded; the training commands turn it on for CPU runs
    with :func:`~binary_models.nn.layers.use_xnor_training_conv`. Graphs built (hybridized) afterwards use it.
    Returns the previous setting."""
    global _plain_batch_norm
    previous, _plain_batch_norm = _plain_batch_norm, bool(enabled)
    return previous


class BatchNorm(nn.BatchNorm):
    """``mxnet.gluon.nn.BatchNorm`` (the same arguments, parameters and names), run as the native
    ``plain_batch_norm`` while :func:`use_plain_batch_norm` is on. The operator is not told whether it runs in
    training; a Dropout of a constant 1 tells it (1 at inference, 0 or 2 in training). ``convert()`` sets
    ``plain_in_training`` False in converted models, which stay MXNet's BatchNorm (the runtime's operators)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.plain_in_training = True

    def hybrid_forward(self, F, x, gamma, beta, running_mean, running_var):
        k = self._kwargs
        if not (_plain_batch_norm and self.plain_in_training) or k["axis"] != 1:
            return super().hybrid_forward(F, x, gamma, beta, running_mean, running_var)
        training = F.Dropout(F.ones(shape=(1,)), p=0.5)
        return F.plain_batch_norm(x, gamma, beta, running_mean, running_var, training, eps=k["eps"],
                                  momentum=k["momentum"], fix_gamma=k["fix_gamma"],
                                  use_global_stats=k["use_global_stats"])[0]


@dataclasses.dataclass(frozen=True)
class NormConfig:
    """What :func:`make_norm` builds: ``layer([in_channels=c,] **kwargs)``; ``last_gamma``: zero gamma at
    the end of residual branches."""
    layer: type = nn.BatchNorm
    kwargs: tuple = ()  # sorted (name, value) pairs of norm_kwargs
    last_gamma: bool = False


_current = NormConfig()
_residual_ends = [0]  # how many residual-branch ends were built (so a factory can tell last_gamma applied)


def residual_ends_built():
    """How many residual-branch normalisations :func:`make_norm` has built in this process so far."""
    return _residual_ends[0]


def sync_batch_norm(num_devices):
    """GluonCV's ``--syncbn`` layer: ``gluon.contrib.nn.SyncBatchNorm`` over ``num_devices`` devices."""
    from mxnet.gluon.contrib.nn import SyncBatchNorm
    return SyncBatchNorm, {"num_devices": num_devices}


def _checked(norm_layer, norm_kwargs, last_gamma):
    if norm_layer is not None and not callable(norm_layer):
        raise UsageError("norm_layer must be a normalisation layer class such as mxnet.gluon.nn.BatchNorm, "
                         "got %r" % (norm_layer,))
    if norm_kwargs is not None and not isinstance(norm_kwargs, dict):
        raise UsageError("norm_kwargs must be a dict of the norm_layer's keyword arguments, got %r" % (norm_kwargs,))
    if last_gamma is not None and not isinstance(last_gamma, bool):
        raise UsageError("last_gamma must be True or False, got %r" % (last_gamma,))


@contextlib.contextmanager
def norm_config(norm_layer=None, norm_kwargs=None, last_gamma=None):
    """Context manager: :func:`make_norm` builds ``norm_layer([in_channels=c,] **norm_kwargs)`` inside. A new
    ``norm_layer`` starts from empty ``norm_kwargs``; arguments left as None keep the outer setting (so a
    backbone built inside a detector's factory follows the detector's)."""
    global _current
    _checked(norm_layer, norm_kwargs, last_gamma)
    previous = _current
    layer = previous.layer if norm_layer is None else norm_layer
    kwargs = dict(previous.kwargs) if norm_layer is None else {}
    kwargs.update(norm_kwargs or {})
    _current = NormConfig(layer, tuple(sorted(kwargs.items())),
                          previous.last_gamma if last_gamma is None else last_gamma)
    try:
        yield _current
    finally:
        _current = previous


@contextlib.contextmanager
def default_norm():
    """Context manager: plain BatchNorm inside, whatever is active outside (for throwaway shape probes)."""
    global _current
    previous, _current = _current, NormConfig()
    try:
        yield _current
    finally:
        _current = previous


def make_norm(channels, residual_end=False, **options):
    """A normalisation layer over ``channels`` channels, of the kind :func:`norm_config` chose (BatchNorm by
    default). ``residual_end``: it ends a residual branch (its output is added to a shortcut), so
    ``last_gamma`` initialises its gamma to zero. ``options`` (``scale``, ``center``, ``epsilon``: what the
    architecture asks of it) go to the layer where it takes them; the user's ``norm_kwargs`` come first."""
    config = _current
    accepted = _parameters(config.layer)
    kwargs = {k: v for k, v in options.items() if not accepted or k in accepted}
    kwargs.update(config.kwargs)
    if residual_end:
        _residual_ends[0] += 1
        if config.last_gamma:
            kwargs["gamma_initializer"] = "zeros"
    if _takes_in_channels(config.layer):
        kwargs["in_channels"] = channels
    _check_groups(config.layer, kwargs, channels)
    return (BatchNorm if config.layer is nn.BatchNorm else config.layer)(**kwargs)


# The group-count arguments of group normalisations: GluonCV's GroupNorm, MXNet's nn.GroupNorm.
GROUP_ARGUMENTS = ("ngroups", "num_groups")


def _check_groups(layer, kwargs, channels):
    """A group normalisation must split ``channels`` evenly (else its reshape fails at the first batch, far from
    the cause): raise ``ValueError`` naming the layer, the groups and the width now."""
    for argument in GROUP_ARGUMENTS:
        groups = kwargs.get(argument, _parameters(layer).get(argument))
        if isinstance(groups, int) and groups > 0 and channels and channels % groups:
            raise UsageError("norm_layer=%s with %s=%d cannot normalise a layer of %d channels (the groups must "
                             "divide every width of the model); pass norm_kwargs={'%s': ...} with a divisor of %d"
                             % (layer.__name__, argument, groups, channels, argument, channels))


@functools.lru_cache(maxsize=None)
def _parameters(layer):
    """``layer``'s constructor arguments and their defaults (None where none), {} where it has no signature."""
    try:
        parameters = inspect.signature(layer).parameters
    except (TypeError, ValueError):
        return {}
    return {name: (None if p.default is inspect.Parameter.empty else p.default) for name, p in parameters.items()}


def _takes_in_channels(layer):
    parameters = _parameters(layer)
    return not parameters or "in_channels" in parameters  # no signature to read: assume Gluon's convention
