"""The optimizers and the initialisation of both training scripts, and the optimizer the papers use that
MXNet 1.9 lacks: RAdam (MeliusNet section 4.1 trains with it).

RAdam is registered with ``mx.optimizer.register``, so ``gluon.Trainer(params, 'radam', ...)`` and the
parameter server of a distributed kvstore (which unpickles the optimizer) find it by name.
"""
import math

import mxnet as mx
from mxnet import nd

OPTIMIZERS = ("adam", "radam", "sgd", "nag")  # what the training scripts' --optimizer offers


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
