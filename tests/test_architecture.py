"""The architecture's promises (issue 15): a registry that imports no model, quantizers as registered
objects that every consumer asks, the pad modes shared by Python and the native operator, and the run file
that lets convert rebuild a trained model without being told what it is."""
import os
import subprocess
import sys

import numpy as np
import pytest
import mxnet as mx
from mxnet import nd

import binary_models as bm
from binary_models import native, quantization
from binary_models.config import PAD_MODES
from binary_models.files import run_file, write_run_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_registry_imports_no_model_family_and_no_gluoncv():
    """The families import the registry, never the other way round (the import loop issue 15 removed):
    registry.py and what it imports (config.py, quantization.py, normalization.py) name no model module, no
    model_zoo, no layer and no GluonCV."""
    import ast
    for module in ("registry", "config", "quantization", "normalization"):
        with open(os.path.join(REPO, "binary_models", module + ".py")) as f:
            tree = ast.parse(f.read())
        imported = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
        assert not [m for m in imported if m.startswith(("models", "model_zoo", "gluoncv", "binary_models", "layers"))
                    or m in ("", "models")], (module, imported)
        allowed = lambda m: m.split(".")[0] in sys.stdlib_module_names | {"mxnet", "numpy"} \
            or m in ("config", "quantization", "normalization", "files")
        assert all(allowed(m) for m in imported), (module, imported)
    with open(os.path.join(REPO, "binary_models", "files.py")) as f:  # the registry reads pretrained weights with it
        tree = ast.parse(f.read())
    assert [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level] == ["cli"]


def test_a_registered_activation_quantizer_becomes_an_option_that_layers_stats_and_convert_ask():
    @quantization.register_activation
    class Clipped(quantization.Quantizer):
        """A 1-bit sign that no packed kernel computes (packable False): it must stay float-emulated."""
        name, bits, terms, packable = "test_clipped_sign", 1, 1, False

        def __call__(self, F, x):
            return F.sign(F.clip(x, -1, 1))

    try:
        with pytest.raises(ValueError, match="test_clipped_sign"):
            bm.LayerConfig(activation="no_such_method")  # the error lists the registered names
        net = mx.gluon.nn.HybridSequential()
        net.add(bm.QConv2D(8, 3, in_channels=4, activation_method="test_clipped_sign"),
                bm.QConv2D(8, 1, in_channels=8))
        net.initialize()
        assert isinstance(net[0].input_quantizer, Clipped) and not net[0].packable and net[1].packable
        packed = bm.convert(net)
        assert isinstance(packed[0], bm.QConv2D) and not isinstance(packed[1], bm.QConv2D)
    finally:
        del quantization.ACTIVATION_QUANTIZERS["test_clipped_sign"]


@pytest.mark.parametrize("pad_mode", PAD_MODES)
def test_every_python_pad_mode_is_a_native_pad_mode_with_the_same_meaning(pad_mode):
    native.load()
    conv = bm.QConv2D(6, 3, padding=1, in_channels=5, pad_mode=pad_mode)
    conv.initialize(mx.init.Normal(1.0))
    x = nd.array(np.random.RandomState(0).normal(size=(2, 5, 6, 7)))
    packed = nd.binary_pack_weights(conv.weight.data())
    out = nd.binary_conv2d(x, packed, kernel=3, pad=1, num_filter=6, in_channels=5, pad_mode=pad_mode)
    np.testing.assert_array_equal(out.asnumpy(), conv(x).asnumpy())


def test_the_native_operator_refuses_a_pad_mode_python_does_not_know():
    native.load()
    with pytest.raises(mx.MXNetError, match="expected 'minus_one' or 'zero'"):
        nd.binary_conv2d(nd.ones((1, 4, 5, 5)), nd.binary_pack_weights(nd.ones((4, 4, 3, 3))), kernel=3, pad=1,
                         num_filter=4, in_channels=4, pad_mode="reflect").wait_to_read()
    assert len(PAD_MODES) == 2


def test_convert_rebuilds_the_model_from_the_run_file_beside_the_parameters(tmp_path):
    kwargs = dict(stem="thumbnail", growth=16, init_channels=32, classes=10)
    net = bm.get_model("meliusnet22", **kwargs)
    net.initialize(mx.init.Xavier())
    x = nd.array(np.random.RandomState(1).normal(size=(2, 3, 16, 16)))
    expected = net(x).asnumpy()
    params = str(tmp_path / "imagenet-meliusnet22-best.params")
    net.save_parameters(params)
    write_run_file(str(tmp_path / "imagenet-meliusnet22-run.json"), "meliusnet22", kwargs, 16, 10)
    from binary_models.convert import load_packed, main
    assert main(["--params", params, "--output", str(tmp_path / "packed")]) == 0  # no --model, --stem, ...
    assert os.path.isfile(run_file(str(tmp_path / "packed")))
    out = load_packed(str(tmp_path / "packed"))(x).asnumpy()
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(out.argmax(1), expected.argmax(1))
