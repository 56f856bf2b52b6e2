"""Model zoo: every model builds, runs, hybridizes, exports, trains; blocks do what the papers say."""
import numpy as np
import pytest
import mxnet as mx
from mxnet import autograd, gluon, nd

import binary_models as bm
from binary_models.models.common import ChannelShuffle, DenseBlock, Transition, reduced_channels
from binary_models.models import meliusnet
from binary_models.models.meliusnet import ImprovementBlock

MODELS = bm.get_model_list()
_built = {}


def small_input(name, batch=4):
    """A small input for a model's default stem (AlexNet/NIN-style nets need 64 pixels). At 32x32 the last stage
    is 1x1, and BatchNorm over two 1x1 samples always outputs +-1 (no gradient): hence a batch of 4."""
    size = 64 if name in ("binary_alexnet", "tang_nin", "xnornet", "dorefanet") else 32
    return nd.random.normal(shape=(batch, 3, size, size))


def built(name):
    """Each model is built and initialised once for the whole module (the large ones take a moment)."""
    if name not in _built:
        net = bm.get_model(name)
        net.initialize(mx.init.Xavier(magnitude=2))
        _built[name] = net
    return _built[name]


def test_model_list_has_every_family():
    expected = {"meliusnet22", "meliusnet29", "meliusnet42", "meliusnet59", "meliusnet_a", "meliusnet_b",
                "meliusnet_c", "binary_densenet28", "binary_densenet37", "binary_densenet37_dilated",
                "binary_densenet45", "resnet_e18", "resnet_e34", "tang_nin", "binary_alexnet"}
    assert expected <= set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_forward_at_224_gives_one_row_of_class_scores(name):
    out = built(name)(nd.random.uniform(shape=(1, 3, 224, 224)))
    assert out.shape == (1, 1000)
    assert np.isfinite(out.asnumpy()).all()


@pytest.mark.parametrize("name", MODELS)
def test_thumbnail_stem_runs_on_32x32_with_custom_classes(name):
    net = bm.get_model(name, stem="thumbnail", classes=10)
    net.initialize()
    assert net(nd.random.uniform(shape=(1, 3, 32, 32))).shape == (1, 10)


@pytest.mark.parametrize("name", MODELS)
def test_hybridize_export_and_symbolblock_import_give_identical_outputs(name, tmp_path):
    net = bm.get_model(name, classes=7)
    net.initialize(mx.init.Xavier())
    x = small_input(name)
    imperative = net(x).asnumpy()
    assert imperative.shape == (4, 7)
    net.hybridize()
    hybrid = net(x).asnumpy()
    np.testing.assert_allclose(hybrid, imperative, rtol=1e-4, atol=1e-4)
    net.export(str(tmp_path / name))
    loaded = gluon.SymbolBlock.imports(str(tmp_path / (name + "-symbol.json")), ["data"],
                                       str(tmp_path / (name + "-0000.params")))
    np.testing.assert_array_equal(loaded(x).asnumpy(), hybrid)


@pytest.mark.parametrize("name", MODELS)
def test_backward_reaches_every_parameter(name):
    net = bm.get_model(name, classes=5)
    net.initialize(mx.init.Xavier())
    x = small_input(name)
    with autograd.record():
        loss = gluon.loss.SoftmaxCrossEntropyLoss()(net(x), nd.array([1, 3, 0, 4]))
    loss.backward()
    unreached = [p.name for p in net.collect_params().values()
                 if p.grad_req != "null" and not np.any(p.grad().asnumpy())]
    assert not unreached


@pytest.mark.parametrize("name", MODELS)
def test_gluoncv_get_model_finds_it(name):
    import gluoncv
    net = gluoncv.model_zoo.get_model(name, classes=3, norm_layer=gluon.nn.BatchNorm, pretrained_base=False)
    assert type(net) is type(built(name)) and getattr(net, "model_name") == name


def test_get_model_falls_back_to_gluoncv_models():
    from gluoncv.model_zoo.resnetv1b import ResNetV1b
    assert isinstance(bm.get_model("resnet18_v1b"), ResNetV1b)


def test_unknown_model_names_the_closest_ones():
    with pytest.raises(ValueError) as err:
        bm.get_model("meliusnet23")
    assert "meliusnet22" in str(err.value) and "meliusnet29" in str(err.value)


def test_pretrained_without_file_says_nothing_is_downloaded_and_where_to_put_it(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        bm.get_model("meliusnet22", pretrained=True, root=str(tmp_path))
    assert "downloads nothing" in str(err.value) and str(tmp_path / "meliusnet22.params") in str(err.value)


def test_pretrained_loads_params_from_root(tmp_path):
    net = bm.get_model("resnet_e18", classes=4)
    net.initialize()
    net(nd.zeros((1, 3, 32, 32)))
    net.save_parameters(str(tmp_path / "resnet_e18.params"))
    loaded = bm.get_model("resnet_e18", classes=4, pretrained=True, root=str(tmp_path))
    x = nd.random.uniform(shape=(1, 3, 32, 32))
    np.testing.assert_array_equal(loaded(x).asnumpy(), net(x).asnumpy())


def test_layer_options_pass_through_get_model():
    net = bm.get_model("meliusnet22", bits_a=2, grad_cancel=1.0)
    convs = [b for b in bm.train.regularization.walk_blocks(net) if isinstance(b, bm.QConv2D)]
    assert convs and all(c.config.bits_a == 2 and c.config.grad_cancel == 1.0 for c in convs)
    with bm.layer_config(grad_cancel=1.25):
        net = bm.get_model("binary_densenet28")
    assert all(c.config.grad_cancel == 1.25 for c in bm.train.regularization.walk_blocks(net) if isinstance(c, bm.QConv2D))


def test_tang_models_default_to_two_binarizations_and_binary_last_layer():
    net = bm.get_model("tang_nin")
    layers = [b for b in bm.train.regularization.walk_blocks(net) if isinstance(b, (bm.QConv2D, bm.QDense))]
    assert all(layer.config.binarizations == 2 for layer in layers)
    assert isinstance(net.output[0], bm.QConv2D) and isinstance(net.output[-1], bm.Scale)
    assert bm.get_model("tang_nin", binarizations=1).output[0].config.binarizations == 1


def test_first_conv_downsampling_and_fc_stay_full_precision():
    net = bm.get_model("meliusnet22")
    assert isinstance(net.output, gluon.nn.Dense)
    assert all(isinstance(b, gluon.nn.Conv2D) for b in bm.train.regularization.walk_blocks(net.features[0])
               if isinstance(b, (gluon.nn.Conv2D, bm.QConv2D)))
    transitions = [b for b in net.features if isinstance(b, Transition)]
    assert len(transitions) == 3
    assert all(not isinstance(b, bm.QConv2D) for t in transitions for b in bm.train.regularization.walk_blocks(t))


def test_improvement_block_changes_only_last_64_channels(rng):
    block = ImprovementBlock(64)
    block.initialize()
    x = nd.array(rng.randn(2, 192, 6, 6))
    y = block(x).asnumpy()
    conv_out = block.body(x).asnumpy()
    np.testing.assert_array_equal(y[:, :128], x.asnumpy()[:, :128])
    np.testing.assert_allclose(y[:, 128:], x.asnumpy()[:, 128:] + conv_out, rtol=1e-6)
    assert np.abs(conv_out).sum() > 0


@pytest.mark.parametrize("whole_map_sum", [False, True])
def test_improvement_block_values_and_gradients_are_those_of_adding_to_the_last_64_channels(rng, whole_map_sum):
    """Both forms (slices, or x + [0 | body(x)] for oneDNN's layouts in training) against the definition
    concat(x[:, :-64], x[:, -64:] + body(x)) written out here: the same outputs and gradients."""
    previous = meliusnet.use_whole_map_sum(whole_map_sum)
    try:
        block = ImprovementBlock(64)
        block.initialize(mx.init.Xavier())
        block.hybridize()
        x0, upstream = nd.array(rng.randn(2, 192, 6, 6)), nd.array(rng.randn(2, 192, 6, 6))
        results = []
        for form in ("block", "definition"):
            x = x0.copy()
            x.attach_grad()
            with autograd.record():
                y = block(x) if form == "block" else nd.concat(x[:, :128], x[:, 128:] + block.body(x), dim=1)
            y.backward(upstream)
            results.append((y.asnumpy(), x.grad.asnumpy(), block.body[1].weight.grad().asnumpy().copy()))
    finally:
        meliusnet.use_whole_map_sum(previous)
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(results[0][0][:, :128], x0.asnumpy()[:, :128])
    assert np.abs(results[0][1][:, :128] - upstream.asnumpy()[:, :128]).max() > 0  # the body's path reaches x


def test_dense_block_concatenates_64_new_channels(rng):
    block = DenseBlock(64)
    block.initialize()
    x = nd.array(rng.randn(1, 256, 5, 5))
    y = block(x)
    assert y.shape == (1, 320, 5, 5)
    np.testing.assert_array_equal(y.asnumpy()[:, :256], x.asnumpy())


def test_channel_shuffle_interleaves_groups():
    x = nd.arange(32).reshape((1, 32, 1, 1))
    y = ChannelShuffle(16)(x).asnumpy().ravel()
    expected = np.arange(32).reshape(16, 2).T.ravel()
    np.testing.assert_array_equal(y, expected)


def test_grouped_transition_shuffles_and_halves_resolution(rng):
    t = Transition(96, groups=2)
    t.initialize()
    assert any(isinstance(b, ChannelShuffle) for b in t.body)
    assert t(nd.array(rng.randn(1, 320, 8, 8))).shape == (1, 96, 4, 4)
    assert not any(isinstance(b, ChannelShuffle) for b in Transition(96).body)


@pytest.mark.parametrize("name, widths", [
    # SPEC.md Table 7 / Table 1: stage widths from the authors' rounding round((c // r) / 32) * 32
    ("binary_densenet28", [448, 544, 576, 576]), ("binary_densenet37", [448, 640, 960, 640]),
    ("binary_densenet45", [448, 928, 1184, 800]), ("meliusnet22", [320, 480, 480, 512]),
    ("meliusnet29", [320, 512, 704, 640]), ("meliusnet59", [448, 960, 1856, 1312])])
def test_stage_widths_follow_reduction_rates(name, widths):
    assert bm.get_model(name).widths == widths


def test_reduced_channels_keeps_multiples_of_32():
    assert [reduced_channels(c, r) for c, r in ((448, 2.7), (544, 2.7), (576, 2.2), (960, 4))] == [160, 192, 256, 256]


def test_dilated_densenet_keeps_stride_8_resolution():
    net = bm.get_model("binary_densenet37_dilated")
    net.initialize()
    stage_outputs = mx.sym.Group([net(mx.sym.var("data"))])  # trace to confirm it builds symbolically
    x = nd.zeros((1, 3, 224, 224))
    feat = x
    for i, block in enumerate(net.features):
        feat = block(feat)
        if i == net.stage_ends[-1]:
            break
    assert feat.shape[2:] == (28, 28) and stage_outputs is not None


def test_unknown_stem_lists_allowed_ones():
    with pytest.raises(ValueError, match="'grouped', '7x7', 'thumbnail'"):
        bm.get_model("meliusnet22", stem="5x5")


def test_grouped_conv_with_default_layout_matches_conv2d_forward_and_backward_and_convert_drops_the_reshape():
    """GroupedConv2D (the stem's grouped convs, reordered to NCHW for training speed) computes what
    nn.Conv2D computes, gradients included; a converted model's graph has neither its Reshape nor its
    whole-axis slice."""
    import json
    from binary_models.models.common import GroupedConv2D
    rng = np.random.RandomState(0)
    x = mx.nd.array(rng.randn(2, 32, 9, 9))
    results = []
    for cls in (mx.gluon.nn.Conv2D, GroupedConv2D):
        conv = cls(64, 3, padding=1, groups=8, use_bias=False, in_channels=32)
        conv.initialize()
        conv.weight.set_data(mx.nd.array(np.random.RandomState(1).randn(64, 4, 3, 3)))
        conv.hybridize(static_alloc=True)
        data = x.copy()
        data.attach_grad()
        with autograd.record():
            y = conv(data)
            loss = (y * y).sum()
        loss.backward()
        results.append((y.asnumpy(), data.grad.asnumpy(), conv.weight.grad().asnumpy()))
    for plain, reordered in zip(*results):
        np.testing.assert_allclose(reordered, plain, rtol=1e-5, atol=1e-5)
    net = bm.get_model("meliusnet22")
    net.initialize()
    net.hybridize()
    net(mx.nd.zeros((1, 3, 64, 64)))  # a cached graph with the reorders, which convert must not keep
    packed = bm.convert(net)
    packed.hybridize()
    packed(mx.nd.zeros((1, 3, 64, 64)))
    nodes = json.loads(packed._cached_graph[1].tojson())["nodes"]
    ops = [n["op"] for n in nodes]
    assert "Reshape" not in ops and ops.count("Convolution") == 4 and ops.count("float_conv2d") == 2
    # a grouped conv that stays MXNet's Convolution (32 input channels per group) loses its reorders too
    wide = mx.gluon.nn.HybridSequential()
    wide.add(GroupedConv2D(64, 3, padding=1, groups=2, use_bias=False, in_channels=64), mx.gluon.nn.BatchNorm(),
             bm.QConv2D(8, 3, padding=1, in_channels=64))
    wide.initialize()
    wide.hybridize()
    wide(mx.nd.zeros((1, 64, 8, 8)))
    packed_wide = bm.convert(wide)
    packed_wide.hybridize()
    packed_wide(mx.nd.zeros((1, 64, 8, 8)))
    wide_nodes = json.loads(packed_wide._cached_graph[1].tojson())["nodes"]
    assert [n["op"] for n in wide_nodes].count("Convolution") == 1 and "Reshape" not in [n["op"] for n in wide_nodes]
    whole_slices = [n for n in nodes + wide_nodes if n["op"] == "slice_axis" and n["attrs"].get("end") == "None"
                    and n["attrs"].get("begin") == "0"]
    assert not whole_slices
