"""GluonCV's normalisation arguments (norm_layer, norm_kwargs, last_gamma, num_sync_bn_devices) build every
normalisation layer of every family; the default keeps nn.BatchNorm (the models' subclass of it, which runs
plain_batch_norm in CPU training: tests/test_plain_batch_norm.py) and the checkpoint names."""
import warnings

import numpy as np
import pytest
import mxnet as mx
from mxnet import autograd, gluon, nd
from mxnet.gluon import nn

import binary_models as bm
from binary_models.inference.convert import BinaryConv2D, convert
from binary_models.models.resnet_e import ResNetEBlock
from binary_models.nn.normalization import BatchNorm, make_norm, norm_config
from binary_models.train.regularization import walk_blocks

# Thin members of each family (every constructor that normalises), at 16x16.
THIN = {
    "meliusnet22": dict(stem="thumbnail", growth=16, init_channels=16),
    "binary_densenet28": dict(stem="thumbnail", growth=16, init_channels=16),
    "resnet_e18": dict(stem="thumbnail"),
    "tang_nin": dict(stem="thumbnail"),
}
NORM_TYPES = (nn.BatchNorm, gluon.contrib.nn.SyncBatchNorm, nn.GroupNorm)


def norms_of(net):
    from gluoncv.nn import GroupNorm
    return [b for b in walk_blocks(net) if isinstance(b, NORM_TYPES + (GroupNorm,))]


def thin(name, **kwargs):
    return bm.get_model(name, classes=4, **dict(THIN[name], **kwargs))


def test_default_norm_is_batchnorm_with_the_checkpoint_names_of_before():
    net = thin("meliusnet22")
    assert {type(b) for b in norms_of(net)} == {BatchNorm}
    names = net._collect_params_with_prefix()
    # structural names (save_parameters) as the models had them before norm_layer existed
    for name in ("features.0.1.gamma", "features.0.1.running_var", "features.1.body.0.beta",
                 "features.2.body.0.running_mean", "features.38.gamma", "output.weight"):
        assert name in names
    explicit = thin("meliusnet22", norm_layer=nn.BatchNorm, norm_kwargs={})
    assert list(explicit._collect_params_with_prefix()) == list(names)


@pytest.mark.parametrize("name", sorted(THIN))
def test_group_norm_replaces_every_normalisation_with_its_groups(name):
    from gluoncv.nn import GroupNorm
    default = norms_of(thin(name))
    net = thin(name, norm_layer=GroupNorm, norm_kwargs={"ngroups": 4})
    norms = norms_of(net)
    assert len(norms) == len(default) and all(type(b) is GroupNorm and b.ngroups == 4 for b in norms)
    # every layer knows its width (GluonCV's GroupNorm cannot infer it) and it matches the BatchNorm's
    assert [b.gamma.shape for b in norms] == [b.gamma.shape for b in default]
    net.initialize(mx.init.Xavier())
    x = nd.random.normal(shape=(2, 3, 16, 16))
    with autograd.record():
        loss = net(x).sum()
    loss.backward()
    assert all(np.any(b.gamma.grad().asnumpy()) for b in norms)


@pytest.mark.parametrize("layer, kwargs, message", [
    ("gluoncv", {}, "ngroups=32 cannot normalise a layer of 16 channels"),  # --use-gn's default on a thin model
    ("mxnet", {"num_groups": 3}, "num_groups=3 cannot normalise a layer of 16 channels"),
])
def test_group_norm_whose_groups_do_not_divide_a_width_is_refused_when_built(layer, kwargs, message):
    from gluoncv.nn import GroupNorm
    norm_layer = GroupNorm if layer == "gluoncv" else nn.GroupNorm
    with pytest.raises(ValueError, match=message):
        thin("meliusnet22", norm_layer=norm_layer, norm_kwargs=kwargs)


def test_sync_batch_norm_on_one_device_trains_like_batch_norm():
    plain = thin("binary_densenet28")
    sync = thin("binary_densenet28", norm_layer=gluon.contrib.nn.SyncBatchNorm, norm_kwargs={"num_devices": 1})
    assert all(type(b) is gluon.contrib.nn.SyncBatchNorm for b in norms_of(sync))
    plain.initialize(mx.init.Xavier())
    x = nd.random.normal(shape=(4, 3, 16, 16))
    plain(x)
    sync.initialize()
    sync(x)
    for target, source in zip(sync.collect_params().values(), plain.collect_params().values()):
        target.set_data(source.data())
    with autograd.record():
        expected, got = plain(x), sync(x)
    np.testing.assert_allclose(got.asnumpy(), expected.asnumpy(), rtol=1e-4, atol=1e-4)


def test_num_sync_bn_devices_of_older_gluoncv_builds_sync_batch_norm():
    norms = norms_of(thin("resnet_e18", num_sync_bn_devices=2))
    assert all(type(b) is gluon.contrib.nn.SyncBatchNorm and b._kwargs["ndev"] == 2 for b in norms)
    assert {type(b) for b in norms_of(thin("resnet_e18", num_sync_bn_devices=-1))} == {BatchNorm}


def test_norm_kwargs_alone_configure_the_batch_norms():
    norms = norms_of(thin("tang_nin", norm_kwargs={"momentum": 0.5, "epsilon": 1e-3}))
    assert norms and all(b._kwargs["momentum"] == 0.5 and b._kwargs["eps"] == 1e-3 for b in norms)


def test_norm_layer_reaches_the_detector_backbone_and_extras():
    net = bm.get_model("ssd_300_binary_densenet28_voc", growth=16, init_channels=16, stem="7x7",
                       norm_layer=nn.GroupNorm, norm_kwargs={"num_groups": 8})
    norms = norms_of(net.features)
    assert len(norms) == len(norms_of(bm.get_model("ssd_300_binary_densenet28_voc", growth=16, init_channels=16,
                                                   stem="7x7").features))
    assert all(type(b) is nn.GroupNorm for b in norms)


def test_last_gamma_starts_every_resnet_e_block_as_its_shortcut():
    net = thin("resnet_e18", last_gamma=True)
    net.initialize(mx.init.Xavier())
    blocks = [b for b in net.features if isinstance(b, ResNetEBlock)]
    assert len(blocks) == 16
    x = nd.random.normal(shape=(2, 64, 8, 8))
    identity_block = blocks[1]  # no downsampling: its shortcut is x itself
    np.testing.assert_array_equal(identity_block(x).asnumpy(), x.asnumpy())
    for block in blocks:
        assert not np.any(block.body[1].gamma.data().asnumpy())
        if block.downsample is not None:  # the shortcut's BN is no residual branch end
            np.testing.assert_array_equal(block.downsample[-1].gamma.data().asnumpy(), 1)
    default = thin("resnet_e18")
    default.initialize()
    assert np.all(default.features[2].body[1].gamma.data().asnumpy() == 1)


@pytest.mark.parametrize("name, reason", [("meliusnet22", "ImprovementBlock normalises before"),
                                          ("binary_densenet28", "concatenate"),
                                          ("tang_nin", "no shortcut")])
def test_last_gamma_warns_naming_the_model_where_no_residual_branch_ends_in_a_norm(name, reason):
    with pytest.warns(UserWarning, match="last_gamma=True has no effect on %s: .*%s" % (name, reason)):
        net = thin(name, last_gamma=True)
    net.initialize()
    assert all(np.all(b.gamma.data().asnumpy() == 1) for b in norms_of(net))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        thin(name, last_gamma=False)


def test_detector_with_resnet_e_backbone_takes_last_gamma_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        net = bm.get_model("ssd_512_resnet_e18_voc", last_gamma=True)
    net.initialize()
    gammas = [b.body[1].gamma.data().asnumpy() for b in walk_blocks(net) if isinstance(b, ResNetEBlock)]
    assert len(gammas) == 16 and not any(np.any(g) for g in gammas)


def test_use_se_is_refused_and_pretrained_base_on_a_classifier_warns():
    with pytest.raises(ValueError, match="use_se=True: meliusnet22 has no squeeze-and-excitation"):
        bm.get_model("meliusnet22", use_se=True)
    with pytest.warns(UserWarning, match="pretrained_base=True has no effect on the classifier resnet_e18"):
        thin("resnet_e18", pretrained_base=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        thin("resnet_e18", pretrained_base=False, use_se=False)


def test_bad_norm_arguments_are_named():
    with pytest.raises(ValueError, match="norm_layer must be a normalisation layer class"):
        thin("meliusnet22", norm_layer="GroupNorm")
    with pytest.raises(ValueError, match="norm_kwargs must be a dict"):
        thin("meliusnet22", norm_kwargs=8)


def test_norm_config_nests_and_restores():
    with norm_config(norm_layer=nn.GroupNorm, norm_kwargs={"num_groups": 2}):
        with norm_config(last_gamma=True):
            inner = make_norm(8, residual_end=True)
        outer = make_norm(8, residual_end=True)
    after = make_norm(8)
    assert type(inner) is type(outer) is nn.GroupNorm and type(after) is BatchNorm
    assert inner.gamma.init == "zeros" and outer.gamma.init != "zeros"


def test_group_norm_model_converts_and_keeps_its_outputs():
    from gluoncv.nn import GroupNorm
    net = thin("binary_densenet28", norm_layer=GroupNorm, norm_kwargs={"ngroups": 4})
    net.initialize(mx.init.Xavier())
    x = nd.random.normal(shape=(2, 3, 16, 16))
    expected = net(x).asnumpy()
    packed = convert(net)
    assert sum(isinstance(b, BinaryConv2D) for b in walk_blocks(packed)) == 23
    assert len(norms_of(packed)) == len(norms_of(net))  # kept as they are (not folded)
    np.testing.assert_allclose(packed(x).asnumpy(), expected, rtol=1e-4, atol=1e-4)
