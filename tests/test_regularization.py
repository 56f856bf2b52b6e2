"""Tang et al.'s bipolar regularizer and weight clip."""
import numpy as np
import mxnet as mx
from mxnet import autograd, gluon, nd

import binary_models as bm


def net_with_binary_and_float_weights():
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Conv2D(4, 3, in_channels=3), bm.QConv2D(6, 3, in_channels=4), bm.QDense(5, in_units=6 * 4 * 4))
    net.initialize(mx.init.Uniform(0.9))
    return net


def test_bipolar_term_equals_lambda_sum_one_minus_w_squared():
    net = net_with_binary_and_float_weights()
    ws = [net[1].weight.data().asnumpy(), net[2].weight.data().asnumpy()]
    expected = 5e-7 * sum((1 - w.astype(np.float64) ** 2).sum() for w in ws)
    np.testing.assert_allclose(bm.bipolar_regularization(net).asscalar(), expected, rtol=1e-5)


def test_bipolar_regularizer_pushes_binary_weights_to_plus_minus_one():
    net = net_with_binary_and_float_weights()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.05})
    distance = lambda: np.mean([np.abs(1 - np.abs(w.data().asnumpy())).mean() for w in bm.binary_weights(net)])
    before = distance()
    float_before = net[0].weight.data().asnumpy().copy()
    for _ in range(30):
        with autograd.record():
            loss = bm.bipolar_regularization(net, lam=1.0)
        loss.backward()
        trainer.step(1, ignore_stale_grad=True)
        bm.clip_binary_weights(net)
    after = distance()
    assert after < 0.2 * before, (before, after)
    for w in bm.binary_weights(net):
        assert np.abs(w.data().asnumpy()).max() <= 1.0
    np.testing.assert_array_equal(net[0].weight.data().asnumpy(), float_before)  # full precision untouched


def test_clip_binary_weights_clips_to_bound():
    net = net_with_binary_and_float_weights()
    net[1].weight.set_data(nd.ones_like(net[1].weight.data()) * 3)
    bm.clip_binary_weights(net, 0.5)
    assert np.all(net[1].weight.data().asnumpy() == 0.5)
