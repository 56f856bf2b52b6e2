"""The one place for quantized-layer defaults.

Every ``QActivation``/``QConv2D``/``QDense`` reads the defaults that are active when it is *constructed*,
so wrapping a model factory in :func:`layer_config` configures the whole model::

    with binary_models.layer_config(bits=1, bits_a=1, grad_cancel=1.0):
        net = binary_models.get_model("meliusnet22")

This keeps BMXNet-v2's ``BinaryLayerConfig`` idea, with a single name per knob.
"""
import contextlib
import dataclasses
import math
import numbers

import numpy as np

from .quantization import ACTIVATION_QUANTIZERS, WEIGHT_QUANTIZERS
from ..errors import UsageError

# Accepted values, named once so that errors can list them. The 1-bit methods are the registered
# quantizers (binary_models.quantization): registering one adds its name.
WEIGHT_BITS = (1, 2, 3, 4, 5, 6, 7, 8, 32)
ACTIVATION_BITS = WEIGHT_BITS
SCALING_METHODS = ("none", "channel", "scalar")
# Padding of binary inputs; the native operator's pad_mode attribute takes the same names, in the same
# order as native/kernels/binary_conv.h's PadMode (tests/test_native.py checks that they agree).
PAD_MODES = ("minus_one", "zero", "one")


def is_number(value):
    """A real number (NumPy's too), not a bool; NaN and inf are numbers here."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def check_choice(name, value, allowed, integer=False):
    """Raise ``ValueError`` naming ``name`` and the allowed values when ``value`` is not one of them (with
    ``integer``, also when it is no integer: True == 1 and 1.0 == 1 in Python)."""
    if value not in allowed or integer and not (isinstance(value, numbers.Integral) and not isinstance(value, bool)):
        raise UsageError("unsupported %s %r; allowed: %s" % (name, value, ", ".join(map(repr, allowed))))
    return value


@dataclasses.dataclass(frozen=True)
class LayerConfig:
    """Defaults for quantized layers.

    bits:           weight bits; 1 = sign, 2..8 = DoReFa (tanh normalisation), 32 = full precision.
    bits_a:         activation bits; 1 = binary (see ``activation``), 2..8 = DoReFa, 32 = full precision.
    grad_cancel:    t_clip of the straight-through estimator: the gradient passes where |x| <= t_clip
                    (1.3 in MeliusNet section 4.1 and BinaryDenseNet Table 7).
    activation:     method of 1-bit activations: 'sign' (STE with gradient cancelling) or
                    'approx_sign' (Bi-Real's piecewise-polynomial derivative), or any registered one.
    weight_method:  method of 1-bit weights: 'sign' (identity straight-through), or any registered one.
    binarizations:  m of Tang et al.'s multiple binarization of 1-bit activations (1 = plain sign).
    scaling:        output scaling of binary layers: 'none' (the papers' choice), 'channel'
                    (mean |W| per output channel, XNOR-Net) or 'scalar' (mean |W| of the whole weight).
    pad_mode:       'minus_one' (the value a bit can hold, so packed inference is exact), 'one' (+1, also
                    exact; larq and LCE's pad_values=1) or 'zero'. -1 and +1 padding apply to sign-valued
                    activations; other activations pad with 0.
    wd_mult:        weight-decay multiplier of quantized weights (0: off, as in BMXNet-v2).
    """
    bits: int = 1
    bits_a: int = 1
    grad_cancel: float = 1.3
    activation: str = "sign"
    binarizations: int = 1
    scaling: str = "none"
    pad_mode: str = "minus_one"
    wd_mult: float = 0.0
    weight_method: str = "sign"

    def __post_init__(self):
        check_choice("bits", self.bits, WEIGHT_BITS, integer=True)
        check_choice("bits_a", self.bits_a, ACTIVATION_BITS, integer=True)
        check_choice("activation", self.activation, tuple(ACTIVATION_QUANTIZERS))
        check_choice("weight_method", self.weight_method, tuple(WEIGHT_QUANTIZERS))
        check_choice("scaling", self.scaling, SCALING_METHODS)
        check_choice("pad_mode", self.pad_mode, PAD_MODES)
        if not (is_number(self.wd_mult) and math.isfinite(self.wd_mult) and self.wd_mult >= 0):
            raise UsageError("wd_mult must be a finite number >= 0, got %r" % (self.wd_mult,))
        if not (is_number(self.grad_cancel) and self.grad_cancel > 0):  # inf: no cancelling
            raise UsageError("grad_cancel must be a number > 0, got %r" % (self.grad_cancel,))
        if not (isinstance(self.binarizations, numbers.Integral) and not isinstance(self.binarizations, bool)
                and self.binarizations >= 1):
            raise UsageError("binarizations must be an integer >= 1, got %r" % (self.binarizations,))
        if self.binarizations > 1 and self.bits_a != 1:
            raise UsageError("binarizations > 1 needs bits_a=1, got bits_a=%r" % (self.bits_a,))

    def replace(self, **changes):
        """A copy with ``changes`` applied (unknown names raise ``ValueError`` listing the known ones)."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise UsageError("unknown layer option(s) %s; known: %s" % (", ".join(unknown), ", ".join(sorted(known))))
        return dataclasses.replace(self, **changes)


LAYER_OPTIONS = tuple(f.name for f in dataclasses.fields(LayerConfig))  # the keyword arguments of layers/models
_current = LayerConfig()


def get_layer_config():
    """The defaults in effect now."""
    return _current


def set_layer_config(**changes):
    """Change the global defaults (outside of any ``with layer_config``); returns the new config."""
    global _current
    _current = _current.replace(**changes)
    return _current


@contextlib.contextmanager
def layer_config(**changes):
    """Context manager: layers constructed inside use the defaults with ``changes`` applied."""
    global _current
    previous = _current
    _current = previous.replace(**changes)
    try:
        yield _current
    finally:
        _current = previous
