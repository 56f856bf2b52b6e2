"""What several tests build or inspect: a small hybridizable binary model, and the operators of a graph."""
import collections
import json

import mxnet as mx
from mxnet import autograd, gluon

import binary_models as bm


def graph_operators(symbol):
    """How many times each operator occurs in ``symbol``'s graph."""
    return collections.Counter(node["op"] for node in json.loads(symbol.tojson())["nodes"])


def small_binary_model(binary_layers=None):
    """conv -> BatchNorm -> ``binary_layers()`` (default: two QConv2D, the second strided with output scaling,
    and a BatchNorm between them) -> global pooling -> QDense -> Dense, for 3-channel input and 4 classes. The
    layers are made inside the model's name scope, so their parameter names start with its prefix."""
    net = gluon.nn.HybridSequential()
    with net.name_scope():
        layers = binary_layers() if binary_layers else (
            bm.QConv2D(16, 3, padding=1, in_channels=8), gluon.nn.BatchNorm(),
            bm.QConv2D(16, 3, padding=1, strides=2, in_channels=16, scaling="channel"))
        net.add(gluon.nn.Conv2D(8, 3, padding=1), gluon.nn.BatchNorm(), *layers,
                gluon.nn.GlobalAvgPool2D(), bm.QDense(10, in_units=16), gluon.nn.Dense(4))
    return net


def one_training_step(build, x, y):
    """A model from ``build()`` (seeded, Xavier, hybridized as the training commands do) after one step's forward
    and backward on ``x``, ``y``: the model, its logits, its parameter gradients by name (without the prefix) and
    its graph's operators."""
    mx.random.seed(3)
    net = build()
    net.initialize(mx.init.Xavier())
    net.hybridize(static_alloc=True)
    with autograd.record():
        out = net(x)
        loss = gluon.loss.SoftmaxCrossEntropyLoss()(out, y)
    loss.backward()
    gradients = {name[len(net.prefix):]: p.grad().asnumpy() for name, p in net.collect_params().items()
                 if p.grad_req != "null"}
    return net, out.asnumpy(), gradients, graph_operators(net(mx.sym.var("data")))
