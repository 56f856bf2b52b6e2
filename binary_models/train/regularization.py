"""Tang et al. (2017) section 3.2: the bipolar regularizer and the weight clip of Algorithm 1."""
from mxnet import nd

from ..nn.layers import QuantizedLayer

DEFAULT_BIPOLAR_LAMBDA = 5e-7  # Tang et al. section 3.2


def walk_blocks(block):
    """``block`` and all its descendants, depth first, in registration order."""
    yield block
    for child in block._children.values():
        yield from walk_blocks(child)


def binary_weights(net):
    """The weight parameters of every ``QConv2D``/``QDense`` in ``net`` whose weight quantizer is binary."""
    return [b.weight for b in walk_blocks(net) if isinstance(b, QuantizedLayer) and b.weight_quantizer.is_binary]


def bipolar_regularization(net, lam=DEFAULT_BIPOLAR_LAMBDA, ctx=None):
    """``lam * sum(1 - W^2)`` over the binary weights (a loss term, to be added inside ``autograd.record``):
    it pushes latent weights towards -1 and +1, replacing L2 decay."""
    terms = [(1 - w.data(ctx) ** 2).sum() for w in binary_weights(net)]
    if not terms:
        raise ValueError("bipolar_regularization: the network has no binary (bits=1) weights")
    return lam * nd.add_n(*terms) if len(terms) > 1 else lam * terms[0]


def clip_binary_weights(net, bound=1.0):
    """Clip binary latent weights to [-bound, bound] in place, on every context (after each update)."""
    for param in binary_weights(net):
        for data in param.list_data():
            nd.clip(data, -bound, bound, out=data)
