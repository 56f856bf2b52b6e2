"""The optimizers and the initialisation of both training scripts, and the optimizers the papers use that
MXNet 1.9 lacks: RAdam (MeliusNet section 4.1 trains with it) and Bop (Helwegen et al. 2019), which trains
binary weights as signs, with :class:`CaseOptimizer` giving it the binary weights and another optimizer
(Adam) the rest (larq's ``CaseOptimizer((Bop.is_binary_variable, Bop()), default_optimizer=Adam())``).

They are registered with ``mx.optimizer.register``, so ``gluon.Trainer(params, 'radam', ...)`` and the
parameter server of a distributed kvstore (which unpickles the optimizer) find them by name.
"""
import math

import mxnet as mx
from mxnet import nd

from ..errors import UsageError

OPTIMIZERS = ("adam", "radam", "sgd", "nag", "bop")  # what the training scripts' --optimizer offers
BOP_DEFAULTS = ("adam", "radam", "sgd", "nag")  # what trains the other weights with --optimizer bop


def initialize(net, ctx):
    """Initialise the parameters of ``net`` not set yet: Glorot/Xavier Gaussian, magnitude 2 (MeliusNet and
    BinaryDenseNet train from scratch with it)."""
    net.initialize(mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2), ctx=ctx)


@mx.optimizer.register
class RAdam(mx.optimizer.Optimizer):
    """Rectified Adam (Liu et al., 2020, Algorithm 2).

    The variance of the adaptive learning rate is rectified by ``r_t``; while the approximated SMA length
    ``rho_t`` is at most ``sma_threshold`` (the first few steps) the update is un-adapted momentum SGD.
    Weight decay is added to the gradient (L2), as in MXNet's Adam."""

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8, sma_threshold=4.0, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1, self.beta2, self.epsilon, self.sma_threshold = beta1, beta2, epsilon, sma_threshold

    def create_state(self, index, weight):
        return (nd.zeros(weight.shape, weight.context, dtype=weight.dtype),   # first moment
                nd.zeros(weight.shape, weight.context, dtype=weight.dtype))   # second moment

    def rectification(self, t):
        """``r_t`` of step ``t`` (1-based), or None while the variance is intractable."""
        rho_inf = 2 / (1 - self.beta2) - 1
        beta2_t = self.beta2 ** t
        rho_t = rho_inf - 2 * t * beta2_t / (1 - beta2_t)
        if rho_t <= self.sma_threshold:
            return None
        return math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))

    def update(self, index, weight, grad, state):
        self._update_count(index)
        lr, wd = self._get_lr(index), self._get_wd(index)
        t = self._index_update_count[index]
        grad = grad * self.rescale_grad
        if self.clip_gradient is not None:
            grad = nd.clip(grad, -self.clip_gradient, self.clip_gradient)
        grad = grad + wd * weight
        mean, var = state
        mean[:] = self.beta1 * mean + (1 - self.beta1) * grad
        var[:] = self.beta2 * var + (1 - self.beta2) * nd.square(grad)
        mean_hat = mean / (1 - self.beta1 ** t)
        r = self.rectification(t)
        if r is None:
            weight[:] = weight - lr * mean_hat
        else:
            var_hat = nd.sqrt(var / (1 - self.beta2 ** t))
            weight[:] = weight - lr * r * mean_hat / (var_hat + self.epsilon)


def is_binary_weight(param):
    """True for a parameter of precision 1: the weight of a QConv2D/QDense whose weight quantizer has one bit
    (sign, magnitude-aware sign, ``NoOp(precision=1)``); larq's ``Bop.is_binary_variable``."""
    return getattr(param, "precision", 32) == 1


@mx.optimizer.register
class Bop(mx.optimizer.Optimizer):
    """Binary optimizer (Helwegen et al. 2019, "Latent weights do not exist", Algorithm 1): an exponential
    moving average m of the gradients with adaptivity rate ``gamma`` flips a binary weight w when it points
    the same way as w by more than ``threshold``:

        m <- (1 - gamma) m + gamma g;   w <- -w where w m > threshold, else w;   w is then +-1.

    As larq's Bop: w <- sign(-sign(w m - threshold) w) with sign(0) = +1, so the first step makes the
    initial weights +-1, and a product exactly at the threshold sets +1. Learning rate and weight decay do
    not apply; ``rescale_grad`` and ``clip_gradient`` do."""

    def __init__(self, threshold=1e-8, gamma=1e-4, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("threshold", threshold), ("gamma", gamma)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise UsageError("Bop: %s must be a finite number, got %r" % (name, value))
        if not 0 < gamma <= 1:
            raise UsageError("Bop: gamma must be in (0, 1], got %r" % (gamma,))
        if threshold < 0:
            raise UsageError("Bop: threshold must be >= 0, got %r" % (threshold,))
        self.threshold, self.gamma = float(threshold), float(gamma)

    def create_state(self, index, weight):
        return nd.zeros(weight.shape, weight.context, dtype=weight.dtype)  # m

    def update(self, index, weight, grad, state):
        self._update_count(index)
        grad = grad * self.rescale_grad
        if self.clip_gradient is not None:
            grad = nd.clip(grad, -self.clip_gradient, self.clip_gradient)
        state[:] = state + self.gamma * (grad - state)
        kept = -nd.sign(weight * state - self.threshold) * weight
        weight[:] = (kept >= 0) * 2 - 1


@mx.optimizer.register
class CaseOptimizer(mx.optimizer.Optimizer):
    """``binary`` (a :class:`Bop`) trains the parameters ``is_binary_weight`` claims, ``default`` every other
    one (larq's CaseOptimizer with one predicate). The learning rate, its schedule and ``set_learning_rate``
    are the default optimizer's; ``rescale_grad`` (set by the Trainer each step) reaches both."""

    def __init__(self, binary=None, default=None, predicate=is_binary_weight, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(binary, mx.optimizer.Optimizer) or not isinstance(default, mx.optimizer.Optimizer):
            raise UsageError("CaseOptimizer needs two optimizers, binary= (e.g. Bop()) and default= (e.g. "
                             "mx.optimizer.Adam()), got %r and %r" % (binary, default))
        self.binary, self.default, self.predicate = binary, default, predicate
        self.claimed = {}  # index -> the optimizer that trains it

    def _optimizer(self, index):
        if index not in self.claimed:
            param = self.param_dict.get(index)
            self.claimed[index] = self.binary if param is not None and self.predicate(param) else self.default
        chosen = self.claimed[index]
        chosen.param_dict, chosen.rescale_grad = self.param_dict, self.rescale_grad
        return chosen

    @property
    def learning_rate(self):
        return self.default.learning_rate

    def set_learning_rate(self, lr):
        self.default.set_learning_rate(lr)

    def _set_current_context(self, device_id):
        for optimizer in (self.binary, self.default):
            optimizer._set_current_context(device_id)

    def create_state_multi_precision(self, index, weight):
        return self._optimizer(index).create_state_multi_precision(index, weight)

    def create_state(self, index, weight):
        return self._optimizer(index).create_state(index, weight)

    def update_multi_precision(self, index, weight, grad, state):
        self._optimizer(index).update_multi_precision(index, weight, grad, state)

    def update(self, index, weight, grad, state):
        self._optimizer(index).update(index, weight, grad, state)


def bop_for_binary_weights(default, threshold=1e-8, gamma=1e-4):
    """A :class:`CaseOptimizer`: Bop(threshold, gamma) for the binary weights, ``default`` (an optimizer, or
    its registered name) for the rest."""
    if isinstance(default, str):
        default = mx.optimizer.create(default)
    return CaseOptimizer(binary=Bop(threshold=threshold, gamma=gamma), default=default)
