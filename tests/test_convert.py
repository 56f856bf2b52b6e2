"""binary_models.convert: packed copies of trained models, their files (1 bit per binary weight), reloading,
and the errors of models without binary layers or without the library."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import mxnet as mx
from mxnet import gluon, nd
from mxnet.gluon import nn

import binary_models as bm
from binary_models.nn import quantization
from binary_models.inference import native
from binary_models.commands.convert import main
from binary_models.inference.convert import BinaryConv2D, BinaryDense, convert, load_packed, save_packed
from binary_models.stats import model_statistics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def trained_like(net, input_shape):
    """Initialise ``net`` and give its BatchNorms non-trivial statistics, as training would."""
    net.initialize(mx.init.Xavier())
    net(nd.zeros(input_shape))
    rng = np.random.RandomState(0)
    for name, param in net.collect_params().items():
        if name.endswith(("running_mean", "beta")):
            param.set_data(nd.array(rng.normal(0, 0.2, param.shape)))
        elif name.endswith(("running_var", "gamma")):
            param.set_data(nd.array(rng.uniform(0.5, 1.5, param.shape)))
    return net


def blocks_of(net, kind):
    found = [net] if isinstance(net, kind) else []
    for child in net._children.values():
        found += blocks_of(child, kind)
    return found


@pytest.fixture(scope="module")
def meliusnet22():
    return trained_like(bm.get_model("meliusnet22"), (1, 3, 224, 224))


@pytest.fixture(scope="module")
def packed_meliusnet22(meliusnet22, tmp_path_factory):
    prefix = str(tmp_path_factory.mktemp("packed") / "meliusnet22")
    save_packed(convert(meliusnet22), prefix, (1, 3, 224, 224))
    return prefix


def test_packed_meliusnet22_file_has_the_size_of_one_bit_per_binary_weight(meliusnet22, packed_meliusnet22,
                                                                             tmp_path):
    packed_mb = os.path.getsize(packed_meliusnet22 + "-0000.params") / 2 ** 20
    expected_mb = model_statistics("meliusnet22").totals["size_mb"]  # 3.88 MB (paper: 3.9 MB)
    assert abs(packed_mb - expected_mb) < 0.1 * expected_mb, (packed_mb, expected_mb)
    meliusnet22.save_parameters(str(tmp_path / "float.params"))
    float_mb = os.path.getsize(str(tmp_path / "float.params")) / 2 ** 20  # 26.6 MB
    assert float_mb > 6 * packed_mb, (float_mb, packed_mb)


def test_reloaded_packed_meliusnet22_equals_the_float_emulated_model(meliusnet22, packed_meliusnet22):
    x = nd.random.normal(shape=(3, 3, 224, 224))
    meliusnet22.hybridize()
    expected = meliusnet22(x).asnumpy()
    with open(packed_meliusnet22 + "-symbol.json") as f:
        ops = [node["op"] for node in json.load(f)["nodes"]]
    # the 34 binary convs run as one in-place dense stage per stage; transitions, stem pool, head BN: norm_pool
    assert ops.count("binary_dense_stage") == 4 and "binary_conv2d" not in ops and "Concat" not in ops
    assert "Convolution" in ops and "BatchNorm" not in ops and "Pooling" in ops  # Pooling: the global average
    assert ops.count("float_conv2d") == 2  # the grouped stem's two grouped convs
    out = load_packed(packed_meliusnet22)(x).asnumpy()
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(out.argmax(axis=1), expected.argmax(axis=1))


def test_convert_replaces_binary_layers_by_type_and_leaves_the_original(rng):
    class Renamed(gluon.HybridBlock):
        """A binary conv under an attribute name no converter could guess, next to a float conv."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            with self.name_scope():
                self.anything = bm.QConv2D(8, 3, padding=1, in_channels=4, scaling="channel")
                self.float_conv = nn.Conv2D(8, 1, in_channels=8)
                self.head = bm.QDense(5, in_units=8 * 6 * 6)

        def hybrid_forward(self, F, x):
            return self.head(self.float_conv(self.anything(x)))

    net = Renamed()
    net.initialize(mx.init.Normal(1.0))
    x = nd.array(rng.randn(2, 4, 6, 6))
    expected = net(x).asnumpy()
    packed = convert(net)
    assert isinstance(packed.anything, BinaryConv2D) and isinstance(packed.head, BinaryDense)
    assert isinstance(packed.float_conv, nn.Conv2D) and isinstance(net.anything, bm.QConv2D)
    assert packed.anything.scale.shape == (8,)
    np.testing.assert_allclose(packed(x).asnumpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(net(x).asnumpy(), expected, rtol=1e-5)
    assert isinstance(bm.convert(net).anything, BinaryConv2D)  # the package-level spelling of the issue


def test_layers_without_a_packed_kernel_stay_float(rng):
    net = nn.HybridSequential()
    net.add(bm.QConv2D(8, 3, in_channels=4), bm.QConv2D(8, 3, in_channels=8, bits=2, bits_a=2),
            bm.QConv2D(8, 1, in_channels=8, binarizations=2))
    net.initialize()
    packed = convert(net)
    assert [type(b) for b in packed] == [BinaryConv2D, bm.QConv2D, bm.QConv2D]


@pytest.mark.parametrize("make_net", [lambda: nn.Dense(3, in_units=4),
                                      lambda: bm.QDense(3, in_units=4, bits=4, bits_a=4)])
def test_converting_a_model_without_binary_layers_raises(make_net):
    net = make_net()
    net.initialize()
    with pytest.raises(ValueError, match="no binary layer to convert"):
        convert(net)


def test_converting_uninitialised_weights_raises():
    with pytest.raises(ValueError, match="initialize or load"):
        convert(bm.QConv2D(4, 3))


def test_save_leaves_no_partial_file_when_export_fails(tmp_path, rng):
    conv = bm.QConv2D(4, 3, in_channels=4)
    conv.initialize()
    packed = convert(conv)

    def failing_export(path, epoch=0):
        with open(path + "-symbol.json", "w") as f:
            f.write("{partial")
        raise OSError("disk full")

    packed.export = failing_export
    with pytest.raises(bm.FileProblem, match="^cannot write %s: disk full$" % (tmp_path / "model-symbol.json")):
        save_packed(packed, str(tmp_path / "model"), (1, 4, 5, 5))
    assert os.listdir(str(tmp_path)) == []


def test_loading_a_packed_model_without_the_library_raises_a_clear_error(tmp_path):
    conv = bm.QConv2D(4, 3, in_channels=4)
    conv.initialize()
    prefix = str(tmp_path / "conv")
    save_packed(convert(conv), prefix, (1, 4, 5, 5))
    env = dict(os.environ, **{native.LIBRARY_ENV: str(tmp_path / "missing" / native.LIBRARY_NAME)})
    code = "from binary_models.convert import load_packed; load_packed(%r)" % prefix
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True)
    assert result.returncode != 0
    assert "NativeLibraryError: the packed model %s uses the native operators binary_conv2d" % prefix in result.stderr
    assert "does not exist" in result.stderr


def test_command_line_converts_a_thumbnail_model(tmp_path, capsys):
    net = trained_like(bm.get_model("meliusnet22", stem="thumbnail", classes=10), (1, 3, 32, 32))
    params = str(tmp_path / "trained.params")
    net.save_parameters(params)
    prefix = str(tmp_path / "out" / "meliusnet22")
    assert main(["--model", "meliusnet22", "--params", params, "--output", prefix, "--stem", "thumbnail",
                 "--classes", "10", "--input-size", "32"]) == 0
    printed = capsys.readouterr().out
    assert "float parameters:" in printed and "packed parameters:" in printed
    x = nd.random.normal(shape=(2, 3, 32, 32))
    np.testing.assert_allclose(load_packed(prefix)(x).asnumpy(), net(x).asnumpy(), rtol=1e-4, atol=1e-4)


def test_layers_the_native_kernel_cannot_run_stay_emulated_with_one_warning(rng):
    """Decided at conversion (issue 24): a binary layer whose geometry or form the kernels do not run (stride 5,
    flatten=False, float64, a 0/1 quantizer) stays float-emulated, named in one warning with the reason."""
    net = nn.HybridSequential()
    net.add(bm.QConv2D(8, 3, strides=5, in_channels=4), bm.QConv2D(8, 1, in_channels=8),
            bm.QConv2D(8, 1, in_channels=8, input_quantizer=quantization.SteHeaviside()),
            bm.QDense(5, flatten=False, in_units=2))
    net.initialize(mx.init.Normal(1.0))
    x = nd.array(rng.randn(2, 4, 11, 11))
    expected = net(x).asnumpy()
    with pytest.warns(UserWarning) as caught:
        packed = convert(net)
    assert [type(b) for b in packed] == [bm.QConv2D, BinaryConv2D, bm.QConv2D, bm.QDense]
    messages = [str(w.message) for w in caught if "float-emulated" in str(w.message)]
    assert len(messages) == 1 and "\n" not in messages[0], messages
    assert "stride 5 is not supported (allowed: 1..4)" in messages[0] and "flatten=False" in messages[0]
    assert "ste_heaviside" in messages[0] and "3 binary layers" in messages[0]
    np.testing.assert_array_equal(packed(x).asnumpy(), expected)


def test_strict_conversion_refuses_what_the_native_kernel_cannot_run_in_one_line():
    conv = bm.QConv2D(8, 9, in_channels=4)
    conv.initialize()
    with pytest.raises(bm.UsageError) as err:
        convert(conv, strict=True)
    assert "\n" not in str(err.value) and "kernel height 9 is not supported" in str(err.value)
    dense = bm.QDense(4, dtype="float64", in_units=8)
    dense.initialize()
    with pytest.raises(bm.UsageError, match="float64"):
        convert(dense, strict=True)
