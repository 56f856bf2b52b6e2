"""ReActNet's generalised activations (Liu et al., 2020, section 4.2): RSign and RPReLU, per channel (NCHW).

* RSign (Eq. 2): ``+1 if x > alpha_c else -1`` with a learnable threshold per channel. It is written, as in the
  authors' code, as a :class:`LearnableBias` ``b_c`` before the sign of a binary layer (``sign(x + b)``, +1 where
  ``x + b >= 0``), so that the sign (and its ApproxSign backward) stays the binary layer's input quantizer. The
  converter folds ``b`` into the packed conv's binarization thresholds: exact, the threshold being the least float
  ``x`` whose float32 ``x + b`` is >= 0.
* RPReLU (Eq. 3): ``x - gamma_c + zeta_c`` where ``x > gamma_c``, else ``beta_c (x - gamma_c) + zeta_c``: a PReLU
  between two learnable shifts. :class:`RPReLU` computes it with MXNet's own ``LeakyReLU(act_type='prelu')``,
  which a converted model keeps as it is, so the converted model computes it to the bit as the trained one.
"""
from mxnet import init
from mxnet.gluon import HybridBlock

from ..errors import UsageError


def _channels(layer, channels):
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise UsageError("%s: channels must be an integer >= 1, got %r" % (layer, channels))
    return channels


class LearnableBias(HybridBlock):
    """``x + b`` with one learnable ``b`` per channel, initialised to 0 (ReActNet's ``LearnableBias``; RSign's
    threshold is ``-b`` when a binary layer follows)."""

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.channels = _channels("LearnableBias", channels)
        with self.name_scope():
            self.bias = self.params.get("bias", shape=(self.channels,), init=init.Zero())

    def hybrid_forward(self, F, x, bias):
        return F.broadcast_add(x, F.reshape(bias, shape=(1, -1, 1, 1)))

    def __repr__(self):
        return "%s(%d)" % (type(self).__name__, self.channels)


class RPReLU(HybridBlock):
    """ReActNet's RPReLU (Eq. 3): ``prelu(x - gamma, beta) + zeta`` per channel; ``beta`` starts at 0.25 (PyTorch's
    PReLU, as the authors' code), the shifts at 0."""

    def __init__(self, channels, slope=0.25, **kwargs):
        super().__init__(**kwargs)
        self.channels = _channels("RPReLU", channels)
        with self.name_scope():
            self.shift_in = self.params.get("shift_in", shape=(self.channels,), init=init.Zero())
            self.slope = self.params.get("slope", shape=(self.channels,), init=init.Constant(slope))
            self.shift_out = self.params.get("shift_out", shape=(self.channels,), init=init.Zero())

    def hybrid_forward(self, F, x, shift_in, slope, shift_out):
        shifted = F.broadcast_sub(x, F.reshape(shift_in, shape=(1, -1, 1, 1)))
        return F.broadcast_add(F.LeakyReLU(shifted, slope, act_type="prelu"), F.reshape(shift_out, shape=(1, -1, 1, 1)))

    def __repr__(self):
        return "%s(%d)" % (type(self).__name__, self.channels)
