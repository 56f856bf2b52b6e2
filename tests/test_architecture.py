"""The architecture's promises (issue 15): a registry that imports no model, quantizers as registered
objects that every consumer asks, the pad modes shared by Python and the native operator, and the run file
that lets convert rebuild a trained model without being told what it is."""
import os
import sys

import numpy as np
import pytest
import mxnet as mx
from mxnet import nd

import binary_models as bm
from binary_models.inference import native
from binary_models.nn import quantization
from binary_models.nn.config import PAD_MODES
from binary_models.storage import run_file, write_run_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# What each part of the package may import from the others (docs/architecture.md): a part never imports one
# above it, so that e.g. a layer never depends on training, and library code never on the command lines.
LAYERS = ("errors", "storage", "nn", "registry", "models", "model_zoo", "stats", "plots", "data", "train",
          "inference", "commands")
MAY_IMPORT = {
    "errors": set(),
    "storage": {"errors"},
    "nn": {"errors"},
    "registry": {"errors", "nn", "storage"},
    "models": {"errors", "nn", "registry"},
    "model_zoo": {"errors", "nn", "registry", "models"},
    "stats": {"errors", "nn", "models", "model_zoo"},
    "plots": {"errors", "storage"},
    "data": {"errors", "storage"},
    "train": {"errors", "storage", "nn", "registry", "models", "model_zoo", "stats", "plots", "data"},
    "inference": {"errors", "storage", "nn", "registry", "models", "model_zoo", "stats", "plots", "data"},
    "commands": set(LAYERS) | {""},
}


def package_imports(depth=1):
    """``{(importing part, imported part)}`` over every module of the package: parts are the first ``depth``
    names below ``binary_models`` (``""``: the package itself); imports under ``if __name__ == "__main__":`` are
    left out."""
    import ast
    found = set()
    root = os.path.join(REPO, "binary_models")
    for top, _, names in os.walk(root):
        for name in (n for n in names if n.endswith(".py")):
            parts = os.path.relpath(os.path.join(top, name), REPO)[:-3].split(os.sep)
            package = parts if name == "__init__.py" else parts[:-1]
            package = package[:-1] if name == "__init__.py" else package
            tree = ast.parse(open(os.path.join(top, name)).read())
            main_blocks = [n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test)]
            skipped = {id(n) for block in main_blocks for n in ast.walk(block)}
            for node in ast.walk(tree):
                if id(node) in skipped:
                    continue
                if isinstance(node, ast.ImportFrom) and node.level:
                    base = package[:len(package) - node.level + 1]
                    targets = [base + node.module.split(".")] if node.module else [base + [a.name] for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    targets = [node.module.split(".")]
                elif isinstance(node, ast.Import):
                    targets = [a.name.split(".") for a in node.names]
                else:
                    continue
                for target in targets:
                    if target[0] == "binary_models":
                        found.add((".".join(parts[1:1 + depth]), ".".join(target[1:1 + depth])))
    return found


def test_each_part_of_the_package_imports_only_the_parts_below_it():
    broken = sorted((a, b) for a, b in package_imports() if a != b and a in MAY_IMPORT and b not in MAY_IMPORT[a])
    assert not broken, "imports against docs/architecture.md: %s" % broken
    assert ("inference", "nn") in package_imports() and ("train", "data") in package_imports()  # the walk sees them


def test_library_errors_name_arguments_not_flags():
    """Outside commands/, no error message starts with a command-line flag: library errors start with the
    argument (``input_size 8 ...``) and carry it, and the command layer puts the flag there."""
    import ast
    flagged = []
    for top, _, names in os.walk(os.path.join(REPO, "binary_models")):
        if os.path.basename(top) == "commands":
            continue
        for name in (n for n in names if n.endswith(".py")):
            path = os.path.join(top, name)
            for node in ast.walk(ast.parse(open(path).read())):
                if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args:
                    message = node.exc.args[0]
                    message = message.left if isinstance(message, ast.BinOp) else message
                    if isinstance(message, ast.Constant) and str(message.value).startswith("--"):
                        flagged.append("%s:%d" % (os.path.relpath(path, REPO), node.lineno))
    assert not flagged, flagged


def test_an_error_names_the_flag_of_its_argument_on_the_command_line():
    from binary_models.errors import InputSizeError
    err = InputSizeError("input_size 8 is too small for meliusnet22", "input_size")
    assert str(err) == "input_size 8 is too small for meliusnet22"          # what an API caller reads
    assert err.for_flags() == "--input-size 8 is too small for meliusnet22"  # what a command line prints
    assert err.for_flags({"input_size": "--size"}).startswith("--size 8 ")
    assert isinstance(err, ValueError) and isinstance(err, bm.BinaryModelsError)


def test_no_two_modules_import_each_other():
    """No import circle between two modules (data/datasets.py and data/transforms.py had one)."""
    imports = {(a, b) for a, b in package_imports(depth=2) if a != b and "." in a and "." in b}
    circles = sorted((a, b) for a, b in imports if (b, a) in imports and a < b)
    assert not circles, circles


def test_no_module_imports_gluoncv_at_import_time_below_the_models():
    """GluonCV is imported only where it is used (inside functions), and never by nn/ or storage/."""
    import ast
    for part in ("nn", "storage", "errors.py", "registry.py"):
        path = os.path.join(REPO, "binary_models", part)
        paths = [os.path.join(top, n) for top, _, names in os.walk(path) for n in names if n.endswith(".py")] \
            if os.path.isdir(path) else [path]
        for source in paths:
            tree = ast.parse(open(source).read())
            imported = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
            imported += [a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names]
            assert not [m for m in imported if m.startswith("gluoncv")], source


def test_the_top_level_holds_at_most_eight_modules():
    names = [n for n in os.listdir(os.path.join(REPO, "binary_models")) if n.endswith(".py")]
    assert len(names) <= 8, names


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
    with pytest.raises(mx.MXNetError, match="expected 'minus_one', 'zero' or 'one'"):
        nd.binary_conv2d(nd.ones((1, 4, 5, 5)), nd.binary_pack_weights(nd.ones((4, 4, 3, 3))), kernel=3, pad=1,
                         num_filter=4, in_channels=4, pad_mode="reflect").wait_to_read()
    assert len(PAD_MODES) == 3


def test_convert_rebuilds_the_model_from_the_run_file_beside_the_parameters(tmp_path):
    kwargs = dict(stem="thumbnail", growth=16, init_channels=32, classes=10)
    net = bm.get_model("meliusnet22", **kwargs)
    net.initialize(mx.init.Xavier())
    x = nd.array(np.random.RandomState(1).normal(size=(2, 3, 16, 16)))
    expected = net(x).asnumpy()
    params = str(tmp_path / "imagenet-meliusnet22-best.params")
    net.save_parameters(params)
    write_run_file(str(tmp_path / "imagenet-meliusnet22-run.json"), "meliusnet22", kwargs, 16, 10)
    from binary_models.commands.convert import main
    from binary_models.inference.convert import load_packed
    assert main(["--params", params, "--output", str(tmp_path / "packed")]) == 0  # no --model, --stem, ...
    assert os.path.isfile(run_file(str(tmp_path / "packed")))
    out = load_packed(str(tmp_path / "packed"))(x).asnumpy()
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(out.argmax(1), expected.argmax(1))
