"""plain_batch_norm (native/ops/batch_norm.cc) and the models' BatchNorm that runs it in training on the CPU:
against MXNet's BatchNorm (values, the three gradients, the running averages; training and inference mode,
use_global_stats, fix_gamma; any rank) and a float64 NumPy reference; in a hybridized model the training
step's values, gradients and running averages are MXNet's within float rounding, and at inference (a Dropout
of 1 tells the operator) the running statistics are used; the layer keeps nn.BatchNorm's parameter names and
the converter still folds it; bad input: tests/test_bad_input_api.py."""
import numpy as np
import pytest
import mxnet as mx
from mxnet import autograd, gluon, nd
from mxnet.gluon import nn

import binary_models as bm
from binary_models.inference import native
from binary_models.inference.convert import convert
from binary_models.nn import normalization
from binary_models.nn.normalization import BatchNorm, make_norm
from graphs import graph_operators, one_training_step


@pytest.fixture(scope="module", autouse=True)
def library():
    return native.load()


@pytest.fixture(autouse=True)
def mxnet_batch_norm_afterwards():
    yield
    normalization.use_plain_batch_norm(False)


def normalize(native_op, x, d_out, train_mode, fix_gamma=False, use_global_stats=False, seed=5):
    """Output, the gradients of x, gamma and beta, and the running mean and variance after one call."""
    rng = np.random.RandomState(seed)
    channels = x.shape[1]
    gamma, beta = nd.array(rng.rand(channels) + 0.5), nd.array(rng.randn(channels))
    mean, var = nd.array(np.linspace(-1, 1, channels)), nd.array(np.linspace(0.5, 2, channels))
    data = nd.array(x)
    for p in (data, gamma, beta):
        p.attach_grad()
    options = dict(eps=1e-5, momentum=0.9, fix_gamma=fix_gamma, use_global_stats=use_global_stats)
    with autograd.record(train_mode=train_mode):
        if native_op:
            out = nd.plain_batch_norm(data, gamma, beta, mean, var, nd.Dropout(nd.ones((1,)), p=0.5), **options)[0]
        else:
            out = nd.BatchNorm(data, gamma, beta, mean, var, **options)
    out.backward(nd.array(d_out))
    return [a.asnumpy() for a in (out, data.grad, gamma.grad, beta.grad, mean, var)]


def assert_close(got, expected, name=""):
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5 * max(1.0, np.abs(expected).max()), err_msg=name)


@pytest.mark.parametrize("shape", [(4, 6, 5, 7), (8, 3), (2, 5, 9)])
@pytest.mark.parametrize("train_mode", [True, False])
@pytest.mark.parametrize("fix_gamma", [False, True])
@pytest.mark.parametrize("use_global_stats", [False, True])
def test_it_computes_what_mxnet_batchnorm_computes(shape, train_mode, fix_gamma, use_global_stats):
    rng = np.random.RandomState(len(shape))
    x, d_out = (rng.randn(*shape) * 3 + 1).astype(np.float32), rng.randn(*shape).astype(np.float32)
    expected = normalize(False, x, d_out, train_mode, fix_gamma, use_global_stats)
    got = normalize(True, x, d_out, train_mode, fix_gamma, use_global_stats)
    for name, g, e in zip(("out", "d_x", "d_gamma", "d_beta", "running mean", "running var"), got, expected):
        assert_close(g, e, name)


def test_training_uses_the_batch_statistics_and_updates_the_running_ones():
    rng = np.random.RandomState(1)
    x, d_out = (rng.randn(3, 4, 6, 5) * 2 - 1).astype(np.float32), rng.randn(3, 4, 6, 5).astype(np.float32)
    out, _, d_gamma, d_beta, mean, var = normalize(True, x, d_out, train_mode=True)
    rng = np.random.RandomState(5)  # normalize()'s gamma and beta
    gamma, beta = rng.rand(4) + 0.5, rng.randn(4)
    batch_mean, batch_var = x.astype(np.float64).mean(axis=(0, 2, 3)), x.astype(np.float64).var(axis=(0, 2, 3))
    x_hat = (x - batch_mean[:, None, None]) / np.sqrt(batch_var[:, None, None] + 1e-5)
    assert_close(out, x_hat * gamma[:, None, None] + beta[:, None, None], "out")
    assert_close(d_gamma, (d_out * x_hat).sum(axis=(0, 2, 3)), "d_gamma")
    assert_close(d_beta, d_out.sum(axis=(0, 2, 3)), "d_beta")
    assert_close(mean, 0.9 * np.linspace(-1, 1, 4) + 0.1 * batch_mean, "running mean")
    assert_close(var, 0.9 * np.linspace(0.5, 2, 4) + 0.1 * batch_var, "running var (biased, as MXNet's)")


def small_model():
    net = gluon.nn.HybridSequential()
    with net.name_scope():
        net.add(gluon.nn.Conv2D(8, 3, padding=1), make_norm(8), bm.QConv2D(16, 3, padding=1, in_channels=8),
                make_norm(16, scale=False), gluon.nn.GlobalAvgPool2D(), gluon.nn.Dense(4))
    return net


def trained_step(plain, x, y):
    """Logits, parameter gradients and running averages after one training step, the graph's operators, and
    the logits at inference afterwards."""
    normalization.use_plain_batch_norm(plain)
    net, out, gradients, operators = one_training_step(small_model, x, y)
    running = {name[len(net.prefix):]: p.data().asnumpy() for name, p in net.collect_params().items()
               if "running" in name}
    return out, gradients, running, operators, net(x).asnumpy()


def test_a_hybridized_model_trains_and_infers_as_with_mxnet_batchnorm():
    rng = np.random.RandomState(0)
    x, y = nd.array(rng.randn(4, 3, 10, 10)), nd.array([0, 1, 2, 3])
    expected, got = trained_step(False, x, y), trained_step(True, x, y)
    assert got[3]["plain_batch_norm"] == 2 and expected[3]["plain_batch_norm"] == 0 and got[3]["BatchNorm"] == 0
    assert_close(got[0], expected[0], "logits")
    assert expected[1].keys() == got[1].keys()
    for name in expected[1]:
        assert_close(got[1][name], expected[1][name], name)
    assert len(expected[2]) == 4
    for name in expected[2]:
        assert_close(got[2][name], expected[2][name], name)
        assert not np.allclose(expected[2][name], 0 if "mean" in name else 1)  # the step moved them
    assert_close(got[4], expected[4], "logits at inference (the running statistics)")
    assert not np.allclose(got[4], got[0], atol=1e-3)  # which differ from the batch's


def test_the_layer_is_gluons_batchnorm_to_checkpoints_and_the_converter():
    layer = make_norm(8)
    assert type(layer) is BatchNorm and isinstance(layer, nn.BatchNorm)
    names = lambda block: sorted(p[len(block.prefix):] for p in block.collect_params())
    assert names(BatchNorm(in_channels=8)) == names(nn.BatchNorm(in_channels=8))
    normalization.use_plain_batch_norm(True)
    net = gluon.nn.HybridSequential()
    with net.name_scope():
        net.add(gluon.nn.Conv2D(8, 3, padding=1, in_channels=3), make_norm(8),
                bm.QConv2D(16, 3, padding=1, in_channels=8), make_norm(16), gluon.nn.GlobalAvgPool2D())
    net.initialize(mx.init.Xavier())
    packed = convert(net)
    operators = graph_operators(packed(mx.sym.var("data")))
    assert operators["binary_conv2d"] == 1 and operators["plain_batch_norm"] == 0  # the first BatchNorm folded
