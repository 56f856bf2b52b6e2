"""Training metrics beyond loss and accuracy: the flip ratio of binary weights (larq's ``FlipRatio``)."""
from mxnet import nd

from .regularization import binary_weights


class FlipRatio:
    """The share of binary weights whose sign changed in an optimizer step, averaged over the steps since the
    last :meth:`reset` (larq's ``metrics.FlipRatio``; Helwegen et al. 2019 section 5 follow it to see whether
    training has settled). Signs follow the binarization rule, +1 for w >= 0.

    ``FlipRatio(net)`` watches every binary weight of ``net`` (one whose weight quantizer is binary); call
    :meth:`watch` before ``trainer.step`` (it takes the first signs, once the weights exist: Gluon may defer
    them to the first forward pass) and :meth:`update` after it. It reads the first context's copy."""

    def __init__(self, net):
        self.params = binary_weights(net)
        self._signs = None
        self.reset()

    @staticmethod
    def _sign(param):
        return param.data() >= 0

    def watch(self):
        """Take the signs the next :meth:`update` compares with, unless it has them already."""
        if self._signs is None and self.params:
            self._signs = [self._sign(p) for p in self.params]
            self.size = sum(s.size for s in self._signs)

    def update(self):
        """Count the flips of the step just taken; returns its flip ratio (None without binary weights)."""
        if not self.params:
            return None
        self.watch()
        signs = [self._sign(p) for p in self.params]
        flips = nd.add_n(*[(new != old).sum() for new, old in zip(signs, self._signs)])
        self._signs = signs
        ratio = float(flips.asscalar()) / self.size
        self.total += ratio
        self.steps += 1
        return ratio

    def get(self):
        """The mean flip ratio of the steps since :meth:`reset`, or None before the first."""
        return self.total / self.steps if self.steps else None

    def reset(self):
        self.total, self.steps = 0.0, 0
