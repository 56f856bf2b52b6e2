"""The runtime without MXNet (deploy/runtime/, docs/runtime.md): every zoo classification model gives Python's
probabilities, every binary operator in it Python's outputs bit for bit; bm-run gives bm-predict's top classes;
hostile model files exit 2 with one line, also under ASan + UBSan; the C API's example compiles and runs."""
import ctypes
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import mxnet as mx

import binary_models as bm
from binary_models.inference import native
from binary_models.inference.convert import convert, load_packed, save_packed

from test_convert import trained_like
from test_deploy import packed, program  # noqa: F401  (fixtures: a tiny packed model with images; bm-predict)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(REPO, "deploy", "build")
BM_RUN = os.path.join(BUILD, "bm-run")
BINARY_OPS = ("binary_conv2d", "binary_dense", "binary_dense_stage", "norm_pool")


def convertible_models():
    """The zoo's classification models that convert with their defaults (binary_alexnet and tang_nin keep
    multi-bit or multiple binarizations, dorefanet 2-bit activations: no packed form)."""
    return [name for name in bm.get_model_list() if name not in ("binary_alexnet", "tang_nin", "dorefanet")]


@pytest.fixture(scope="module")
def runtime():
    """libbm_runtime.so through ctypes, built as `make deploy` builds it."""
    subprocess.run(["make", "-s", "-C", os.path.join(REPO, "deploy"), "runtime", "PYTHON=" + sys.executable], check=True)
    lib = ctypes.CDLL(os.path.join(BUILD, "libbm_runtime.so"))
    lib.bm_last_error.restype = ctypes.c_char_p
    lib.bm_isa.restype = ctypes.c_char_p
    return lib


def run_runtime(lib, prefix, x, threads=0):
    """The runtime's first output for x (float32 NCHW); raises AssertionError with the runtime's message."""
    model = ctypes.c_void_p()
    status = lib.bm_model_load(prefix.encode(), ctypes.byref(model))
    assert status == 0, lib.bm_last_error().decode()
    try:
        assert lib.bm_model_set_threads(model, threads) == 0
        x = np.ascontiguousarray(x, dtype=np.float32)
        shape = (ctypes.c_int64 * 4)(*x.shape)
        status = lib.bm_model_run(model, x.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), shape)
        assert status == 0, lib.bm_last_error().decode()
        data, dims, ndim = ctypes.POINTER(ctypes.c_float)(), ctypes.POINTER(ctypes.c_int64)(), ctypes.c_int()
        assert lib.bm_model_output(model, 0, ctypes.byref(data), ctypes.byref(dims), ctypes.byref(ndim)) == 0
        out_shape = [dims[i] for i in range(ndim.value)]
        return np.ctypeslib.as_array(data, shape=(int(np.prod(out_shape)),)).reshape(out_shape).copy()
    finally:
        lib.bm_model_free(model)


def softmax(logits):
    z = logits.astype(np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


_zoo_cache = {}


def packed_zoo_model(name, folder):
    """``name`` with random weights and BatchNorm statistics at its smallest input size, converted and saved;
    its output layer scaled so that the softmax is spread (a comparison of probabilities means something)."""
    if name not in _zoo_cache:
        size = bm.model_zoo.minimum_input_size(name)
        mx.random.seed(0)
        net = trained_like(bm.get_model(name, classes=10), (1, 3, size, size))
        probe = mx.nd.array(np.random.RandomState(0).normal(0, 1, (2, 3, size, size)))
        spread = float(net(probe).asnumpy().std(axis=1).mean())  # logits of std ~1.5: a softmax of some spread
        net.output.weight.set_data(net.output.weight.data() * (1.5 / max(spread, 1e-12)))
        prefix = os.path.join(folder, name)
        save_packed(convert(net), prefix, input_shape=(1, 3, size, size))
        _zoo_cache[name] = (prefix, size)
    return _zoo_cache[name]


@pytest.fixture(scope="module")
def zoo_folder(tmp_path_factory):
    native.load()
    return str(tmp_path_factory.mktemp("zoo"))


@pytest.mark.parametrize("name", convertible_models())
def test_every_zoo_classification_model_gives_pythons_probabilities(runtime, zoo_folder, name):
    prefix, size = packed_zoo_model(name, zoo_folder)
    x = np.random.RandomState(0).normal(0, 1, (2, 3, size, size)).astype(np.float32)
    expected = softmax(load_packed(prefix)(mx.nd.array(x)).asnumpy())
    got = softmax(run_runtime(runtime, prefix, x))
    assert 0.11 < expected.max() < 0.9  # spread over classes, not uniform
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    np.testing.assert_allclose(softmax(run_runtime(runtime, prefix, x, threads=1)), got, rtol=0, atol=1e-6)


@pytest.mark.parametrize("isa", ["scalar", "avx2"])
def test_each_float_micro_kernel_gives_the_same_probabilities(runtime, zoo_folder, packed, isa):  # noqa: F811
    """Convolution's micro-kernels (native/kernels/gemm.h: generic vectors, AVX2 + FMA, AVX-512; BINARY_MODELS_ISA
    caps them at the binary kernels' level) on meliusnet22's strided, grouped padded (float_conv2d) and 1x1
    convolutions."""
    prefix, size = packed_zoo_model("meliusnet22", zoo_folder)

    def probabilities(env):
        out = subprocess.run([BM_RUN, "--json", "--top", "10", "--input-size", str(size), prefix, packed["images"][0]],
                             capture_output=True, text=True, check=True, env=dict(os.environ, **env)).stdout
        return {e["class"]: e["probability"] for e in json.loads(out)[0]["top"]}

    best, capped = probabilities({}), probabilities({"BINARY_MODELS_ISA": isa})
    assert sorted(best) == sorted(capped)
    np.testing.assert_allclose([capped[c] for c in sorted(best)], [best[c] for c in sorted(best)], rtol=0, atol=1e-5)


def one_node_graph(symbol, node_index, folder, params):
    """The node ``node_index`` of a symbol file alone: its activation input becomes the variable ``data``,
    its parameters stay. Returns the prefix of the saved pair of files (no pair record)."""
    nodes = symbol["nodes"]
    node = nodes[node_index]
    new_nodes, inputs, saved = [dict(op="null", name="data", inputs=[])], [], {}
    for k, (source, _, _) in enumerate(node["inputs"]):
        if k == 0:
            inputs.append([0, 0, 0])
            continue
        variable = nodes[source]
        inputs.append([len(new_nodes), 0, 0])
        new_nodes.append(dict(op="null", name=variable["name"], inputs=[]))
        saved["arg:" + variable["name"]] = params[variable["name"]]
    new_nodes.append(dict(op=node["op"], name=node["name"], attrs=node.get("attrs", {}), inputs=inputs))
    graph = dict(nodes=new_nodes, arg_nodes=list(range(len(new_nodes) - 1)), heads=[[len(new_nodes) - 1, 0, 0]],
                 node_row_ptr=list(range(len(new_nodes) + 1)), attrs=symbol["attrs"])
    prefix = os.path.join(folder, "node%d" % node_index)
    with open(prefix + "-symbol.json", "w") as f:
        json.dump(graph, f)
    mx.nd.save(prefix + "-0000.params", saved)
    return prefix


@pytest.mark.parametrize("name", ["meliusnet22", "binary_densenet28", "binary_densenet37_dilated", "resnet_e18"])
def test_every_native_operator_gives_pythons_output_bit_for_bit(runtime, zoo_folder, tmp_path, name):
    """Each binary_conv2d, binary_dense_stage, norm_pool and float_conv2d node of the model, fed the same input in
    MXNet (the native library's operator) and in the runtime: equal to the bit (the same code, the same ISA)."""
    prefix, size = packed_zoo_model(name, zoo_folder)
    with open(prefix + "-symbol.json") as f:
        symbol = json.load(f)
    params = {k.split(":", 1)[1]: v for k, v in mx.nd.load(prefix + "-0000.params").items()}
    internals = mx.sym.load(prefix + "-symbol.json").get_internals()
    shapes = dict(zip(internals.list_outputs(), internals.infer_shape(data=(2, 3, size, size))[1]))
    rng = np.random.RandomState(1)
    checked = set()
    for index, node in enumerate(symbol["nodes"]):
        if node["op"] not in BINARY_OPS + ("float_conv2d",):
            continue
        source = symbol["nodes"][node["inputs"][0][0]]
        x = rng.normal(0, 1, shapes[source["name"] + "_output" if source["op"] != "null" else "data"])
        x = x.astype(np.float32)
        node_prefix = one_node_graph(symbol, index, str(tmp_path), params)
        expected = mx.gluon.SymbolBlock.imports(node_prefix + "-symbol.json", ["data"], node_prefix + "-0000.params")
        np.testing.assert_array_equal(run_runtime(runtime, node_prefix, x), expected(mx.nd.array(x)).asnumpy(),
                                      err_msg=node["name"])
        checked.add(node["op"])
    assert checked >= {"norm_pool"} and checked & {"binary_conv2d", "binary_dense_stage"}
    assert ("float_conv2d" in checked) == (name != "resnet_e18")  # the grouped stem of MeliusNet and BinaryDenseNet


# ---- The float operators alone (one node each): MXNet's output to the bit, NaN, infinities and -0.0 included ----

def hostile_floats(shape, seed=0):
    """Normal values (std 4, so that sigmoid and tanh saturate somewhere) with NaN of both signs, +-inf,
    +-0.0, subnormals and large values at the front."""
    x = np.random.RandomState(seed).normal(0, 4, shape).astype(np.float32).ravel()
    special = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40, -1e-40, 88.7, -88.7, 104.0, -104.0,
                        3e38, -3e38], dtype=np.float32)
    x[:min(x.size, special.size)] = special[:x.size]
    return x.reshape(shape)


def single_op_prefix(folder, build, params=None):
    """``build(data, **variables)``, a symbol of an operator or two, saved with ``params`` as a pair of files."""
    params = params or {}
    prefix = os.path.join(str(folder), "single")
    build(mx.sym.var("data"), **{k: mx.sym.var(k) for k in params}).save(prefix + "-symbol.json")
    mx.nd.save(prefix + "-0000.params", {"arg:" + k: mx.nd.array(v) for k, v in params.items()})
    return prefix


def assert_bit_for_bit(runtime, prefix, x):
    """The runtime's output and MXNet's for x: the same shape and the same bits (NaN's sign, -0.0)."""
    expected = mx.gluon.SymbolBlock.imports(prefix + "-symbol.json", ["data"], prefix + "-0000.params")
    want = expected(mx.nd.array(x)).asnumpy()
    got = run_runtime(runtime, prefix, x)
    assert got.shape == want.shape
    mismatch = np.flatnonzero(got.view(np.uint32).ravel() != want.view(np.uint32).ravel())
    assert mismatch.size == 0, "%d of %d differ, e.g. x=%r: %r, MXNet %r" % (
        mismatch.size, got.size, x.ravel()[mismatch[0]] if x.size == got.size else "-", got.ravel()[mismatch[0]],
        want.ravel()[mismatch[0]])


def load_error(runtime, prefix, x=None):
    """The runtime's one-line message when it refuses the model (at load, or at run for x's shape)."""
    model = ctypes.c_void_p()
    if runtime.bm_model_load(prefix.encode(), ctypes.byref(model)) != 0:
        return runtime.bm_last_error().decode()
    try:
        x = np.ascontiguousarray(x, dtype=np.float32)
        shape = (ctypes.c_int64 * 4)(*x.shape)
        assert runtime.bm_model_run(model, x.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), shape) != 0
        return runtime.bm_last_error().decode()
    finally:
        runtime.bm_model_free(model)


def in_6d(op):
    """op on the data reshaped to 6 dimensions: beyond oneDNN's 5, MXNet's CPU build runs mshadow_op's kernels."""
    return lambda d: op(mx.sym.Reshape(d, shape=(0, 0, 1, -1, 1, 1)))


# Activation's sigmoid, tanh and softrelu on up to 5 dimensions are oneDNN's approximations in MXNet's CPU
# build, a few bits from libm's (docs/runtime.md): on 6 the runtime's equal them.
@pytest.mark.parametrize("build", [
    lambda d: mx.sym.relu(d), lambda d: mx.sym.sigmoid(d), lambda d: mx.sym.tanh(d), lambda d: mx.sym.softsign(d),
    lambda d: mx.sym.Activation(d, act_type="relu"), lambda d: mx.sym.Activation(d, act_type="softsign"),
    in_6d(lambda d: mx.sym.Activation(d, act_type="relu")), in_6d(lambda d: mx.sym.Activation(d, act_type="sigmoid")),
    in_6d(lambda d: mx.sym.Activation(d, act_type="tanh")), in_6d(lambda d: mx.sym.Activation(d, act_type="softrelu")),
    in_6d(lambda d: mx.sym.relu(d)),
], ids=["relu", "sigmoid", "tanh", "softsign", "Activation-relu", "Activation-softsign", "Activation-relu-6d",
        "Activation-sigmoid-6d", "Activation-tanh-6d", "Activation-softrelu-6d", "relu-6d"])
def test_activations_give_mxnets_output_bit_for_bit(runtime, tmp_path, build):
    assert_bit_for_bit(runtime, single_op_prefix(tmp_path, build), hostile_floats((2, 8, 16, 16)))


@pytest.mark.parametrize("build, params", [
    (lambda d: mx.sym.LeakyReLU(d), {}),  # leaky, slope 0.25
    (lambda d: mx.sym.LeakyReLU(d, act_type="leaky", slope=0.1), {}),
    (lambda d: mx.sym.LeakyReLU(d, act_type="leaky", slope=-0.5), {}),
    (lambda d: mx.sym.LeakyReLU(d, act_type="leaky", slope=0.0), {}),  # oneDNN's relu: NaN gives 0
    (in_6d(lambda d: mx.sym.LeakyReLU(d, act_type="leaky", slope=0.0)), {}),  # mshadow's: NaN * 0
    (in_6d(lambda d: mx.sym.LeakyReLU(d, act_type="leaky", slope=0.1)), {}),
    (lambda d, gamma: mx.sym.LeakyReLU(d, gamma, act_type="prelu"),
     {"gamma": np.array([0.25, -1.5, 0.0, -0.0, 1e-3, np.nan, np.inf, 2.0], np.float32)}),
    (lambda d, gamma: mx.sym.LeakyReLU(d, gamma, act_type="prelu"), {"gamma": np.array([-0.3], np.float32)}),
], ids=["leaky-default", "leaky-0.1", "leaky-negative", "leaky-0", "leaky-0-6d", "leaky-0.1-6d", "prelu-per-channel",
        "prelu-one"])
def test_leaky_relu_and_prelu_give_mxnets_output_bit_for_bit(runtime, tmp_path, build, params):
    assert_bit_for_bit(runtime, single_op_prefix(tmp_path, build, params), hostile_floats((2, 8, 5, 7)))


@pytest.mark.parametrize("shape", [(0, 0, 1, 1), (0, -1), (-1,), (0, 0, -1), (-1, 35), (2, -1, 5), (0, 8, 35, 1),
                                   (4, 4, 35)])
def test_reshape_with_0_and_minus_1_gives_mxnets_shape_and_values(runtime, tmp_path, shape):
    x = hostile_floats((2, 8, 5, 7)) if shape != (0, 0, 1, 1) else hostile_floats((2, 8, 1, 1))
    assert_bit_for_bit(runtime, single_op_prefix(tmp_path, lambda d: mx.sym.Reshape(d, shape=shape)), x)


@pytest.mark.parametrize("op", ["broadcast_add", "broadcast_sub", "broadcast_mul"])
@pytest.mark.parametrize("data_shape, other_shape", [
    ((2, 8, 5, 7), (2, 8, 1, 1)),  # a channel gate
    ((2, 8, 5, 7), (1, 8, 1, 1)), ((2, 8, 5, 7), (1, 1, 5, 7)), ((2, 8, 5, 7), (2, 8, 5, 7)),
    ((2, 1, 5, 1), (1, 8, 1, 7)),  # both operands broadcast
    ((2, 8, 5, 7), (8, 1, 7)), ((2, 8, 5, 7), (1,)), ((1, 1, 1, 1), (2, 3, 4)),  # ranks differ
])
def test_broadcast_operators_broadcast_as_mxnet(runtime, tmp_path, op, data_shape, other_shape):
    other = hostile_floats(other_shape, seed=1).ravel()[::-1].reshape(other_shape)  # specials at the end
    other = np.full(other_shape, 2.5, np.float32) if other.size == 1 else other
    prefix = single_op_prefix(tmp_path, lambda d, other: getattr(mx.sym, op)(d, other), {"other": other})
    assert_bit_for_bit(runtime, prefix, hostile_floats(data_shape))


def test_float_conv2d_gives_the_extensions_bits_and_refuses_a_wrong_weight(runtime, tmp_path):
    """The same code in both (native/kernels/float_conv.h): equal to the bit, NaN and infinities included."""
    native.load()
    rng = np.random.RandomState(5)
    params = {"w": rng.normal(0, 1, (8, 2, 3, 3)).astype(np.float32), "b": rng.normal(0, 1, 8).astype(np.float32)}
    prefix = single_op_prefix(tmp_path, lambda d, w, b: mx.sym.float_conv2d(
        d, w, b, kernel=(3, 3), pad=(1, 1), stride=(2, 1), num_filter=8, num_group=4), params)
    assert_bit_for_bit(runtime, prefix, hostile_floats((2, 8, 9, 11)))
    bad = single_op_prefix(tmp_path, lambda d, w: mx.sym.float_conv2d(
        d, w, kernel=(3, 3), num_filter=8, num_group=4, no_bias=True), {"w": np.ones((8, 3, 3, 3), np.float32)})
    error = load_error(runtime, bad, np.zeros((1, 8, 9, 9)))
    assert "weight has shape (8, 3, 3, 3), the attributes need (8, 2, 3, 3)" in error and "\n" not in error, error


@pytest.mark.parametrize("build, params, shape, message", [
    (lambda d: mx.sym.LeakyReLU(d, act_type="elu"), {}, None,
     "attribute act_type 'elu' is not supported (supported: leaky, prelu)"),
    (lambda d: mx.sym.LeakyReLU(d, act_type="gelu"), {}, None, "attribute act_type 'gelu' is not supported"),
    (lambda d: mx.sym.LeakyReLU(d, act_type="rrelu"), {}, None, "attribute act_type 'rrelu' is not supported"),
    (lambda d: mx.sym.LeakyReLU(d, act_type="selu"), {}, None, "attribute act_type 'selu' is not supported"),
    (lambda d: mx.sym.Reshape(d, shape=(-2,)), {}, None, "shape (-2,): Reshape's codes -2 are not supported"),
    (lambda d: mx.sym.Reshape(d, shape=(0, -3, -4, 2, -1, -3)), {}, None,
     "Reshape's codes -3, -4 are not supported (only 0, -1 and sizes)"),
    (lambda d: mx.sym.Reshape(d, shape=(0, -1), reverse=True), {}, None, "reverse=True is not supported"),
    (lambda d: mx.sym.Reshape(d, shape=(-1, -1)), {}, None, "has two -1"),
    (lambda d: mx.sym.Reshape(d, shape=(0, 0, 0, 0, 0)), {}, (1, 2, 3, 4), "copies no dimension of (1, 2, 3, 4)"),
    (lambda d: mx.sym.Reshape(d, shape=(5, -1)), {}, (1, 2, 3, 4), "cannot reshape (1, 2, 3, 4) to (5, 4)"),
    (lambda d: mx.sym.Reshape(d, shape=(2**31 - 1,) * 4), {}, (1, 2, 3, 4), "is too large"),
    (lambda d, g: mx.sym.elemwise_mul(d, g), {"g": np.ones((1, 2, 1, 1), np.float32)}, (1, 2, 3, 4),
     "operands of shapes (1, 2, 3, 4) and (1, 2, 1, 1) (only the broadcast_ operators broadcast)"),
    (lambda d, g: mx.sym.broadcast_mul(d, g), {"g": np.ones((1, 3, 1, 1), np.float32)}, (1, 2, 3, 4),
     "operands of shapes (1, 2, 3, 4) and (1, 3, 1, 1) do not broadcast"),
    (lambda d, g: mx.sym.LeakyReLU(d, g, act_type="prelu"), {"g": np.ones(3, np.float32)}, (1, 2, 3, 4),
     "gamma has shape (3,), the attributes need (2,)"),
], ids=["elu", "gelu", "rrelu", "selu", "reshape-2", "reshape-3-4", "reverse", "two-minus-1", "zero-beyond-rank",
        "sizes-differ", "huge", "elemwise-shapes", "broadcast-mismatch", "prelu-gamma"])
def test_unsupported_variants_are_refused_in_one_line(runtime, tmp_path, build, params, shape, message):
    error = load_error(runtime, single_op_prefix(tmp_path, build, params), np.zeros(shape or (1, 2, 3, 4)))
    assert message in error and "\n" not in error, error


def test_docs_runtime_md_lists_every_operator_name_of_the_runtime():
    with open(os.path.join(REPO, "deploy", "runtime", "ops_tensor.cc")) as f:
        body = re.search(r"operator_names\(\) \{\s*return \{(.*?)\};", f.read(), re.S).group(1)
    with open(os.path.join(REPO, "docs", "runtime.md")) as f:
        table = f.read().split("## What it runs")[1].split("## The checks")[0]
    names = re.findall(r'"(\w+)"', body)
    assert {"relu", "sigmoid", "tanh", "LeakyReLU", "Reshape", "broadcast_mul"} <= set(names)
    assert [n for n in names if "`%s`" % n not in table] == []


def test_bm_run_gives_bm_predicts_top5_without_libmxnet(runtime, program, packed):  # noqa: F811
    images = packed["images"]
    expected = json.loads(subprocess.run([program, "--json", packed["prefix"]] + images, capture_output=True,
                                         text=True, check=True).stdout)
    result = subprocess.run([BM_RUN, "--json", "--threads", "2", packed["prefix"]] + images, capture_output=True,
                            text=True)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    got = json.loads(result.stdout)
    for a, b in zip(expected, got):
        assert a["image"] == b["image"]
        assert [e["class"] for e in a["top"]] == [e["class"] for e in b["top"]]
        np.testing.assert_allclose([e["probability"] for e in b["top"]], [e["probability"] for e in a["top"]],
                                   rtol=0, atol=1e-4)
    libraries = subprocess.run(["ldd", BM_RUN], capture_output=True, text=True, check=True).stdout
    assert "mxnet" not in libraries and "python" not in libraries


def test_bm_run_and_the_libraries_it_links_outside_the_system_take_at_most_5_mb(runtime):
    sizes = {BM_RUN: os.path.getsize(BM_RUN)}
    for line in subprocess.run(["ldd", BM_RUN], capture_output=True, text=True, check=True).stdout.splitlines():
        match = re.search(r"=> (\S+)", line)
        if match and not match.group(1).startswith(("/lib/", "/lib64/", "/usr/lib/")):
            sizes[match.group(1)] = os.path.getsize(match.group(1))
    assert sum(sizes.values()) <= 5e6, sizes


def test_a_model_with_operators_the_runtime_lacks_is_refused_naming_them(runtime, tmp_path):
    """An SSD's box priors (and anything else unknown): one line naming the operators, exit status 2."""
    data = mx.sym.var("data")
    conv = mx.sym.Convolution(data, kernel=(3, 3), num_filter=4, name="conv")
    head = mx.sym.Group([mx.sym.contrib.MultiBoxPrior(conv, sizes=(0.5,)), mx.sym.erf(conv)])
    prefix = str(tmp_path / "ssd")
    head.save(prefix + "-symbol.json")
    mx.nd.save(prefix + "-0000.params", {"arg:conv_weight": mx.nd.ones((4, 3, 3, 3)), "arg:conv_bias": mx.nd.zeros(4)})
    image = tmp_path / "image.png"  # read before the model, decoded after: never reached
    image.write_bytes(b"not decoded")
    result = subprocess.run([BM_RUN, prefix, image], capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == ("error: %s-symbol.json uses operators the runtime does not have: _contrib_MultiBoxPrior, "
                             "erf\n" % prefix)


# ---- Hostile files: one line, exit status 2, never a crash (and nothing for ASan/UBSan to report) ----

def hostile_variants(prefix):
    """(description, symbol bytes, params bytes) of damaged copies of a packed model."""
    with open(prefix + "-symbol.json", "rb") as f:
        symbol = f.read()
    with open(prefix + "-0000.params", "rb") as f:
        params = f.read()
    graph = json.loads(symbol)
    variants = [("params cut at %d" % n, symbol, params[:n]) for n in (0, 7, 24, 40, 60, len(params) // 2,
                                                                     len(params) - 1)]
    variants += [("symbol cut at %d" % n, symbol[:n], params) for n in (1, len(symbol) // 2, len(symbol) - 1)]
    variants.append(("params with a byte more", symbol, params + b"\0"))
    for offset, value in ((16, 2**62), (16, 2**40), (28, 2**31 - 1), (32, 2**62), (32, -5)):
        b = bytearray(params)
        width = 4 if offset == 28 else 8
        b[offset:offset + width] = int(value).to_bytes(width, "little", signed=True)
        variants.append(("params with %d at byte %d" % (value, offset), symbol, bytes(b)))
    rng = np.random.RandomState(0)
    for i in range(12):
        b = bytearray(params)
        for at in rng.randint(0, 400, 3):
            b[at] = rng.randint(0, 256)
        variants.append(("params with random bytes %d" % i, symbol, bytes(b)))

    def edited(description, change):
        g = json.loads(symbol)
        change(g)
        variants.append((description, json.dumps(g).encode(), params))

    ops = [n for n in graph["nodes"] if n["op"] != "null"]
    edited("a node reading a later node", lambda g: g["nodes"][2]["inputs"].__setitem__(0, [len(g["nodes"]) - 1, 0, 0]))
    edited("an input index that is a string", lambda g: g["nodes"][2]["inputs"].__setitem__(0, ["0", 0, 0]))
    edited("a huge kernel", lambda g: next(n for n in g["nodes"] if n["op"] == "Convolution")["attrs"].update(
        kernel="(99999999999, 3)"))
    edited("a huge stride", lambda g: next(n for n in g["nodes"] if n["op"] == "norm_pool")["attrs"].update(
        stride="(1000000, 1)"))
    edited("an unknown attribute", lambda g: next(n for n in g["nodes"] if n["op"] == ops[0]["op"])["attrs"].update(
        bogus="1"))
    edited("units that are no units", lambda g: next(
        (n for n in g["nodes"] if n["op"] == "binary_dense_stage"), {"attrs": {}})["attrs"].update(units="DX"))
    edited("a wrong in_channels", lambda g: next(
        (n for n in g["nodes"] if n["op"] == "binary_dense_stage"), {"attrs": {}})["attrs"].update(in_channels="7"))
    flatten = next(i for i, n in enumerate(graph["nodes"]) if n["op"] == "Flatten")
    bias = next(i for i, n in enumerate(graph["nodes"]) if n["name"].endswith("bias"))
    for op, attrs in (("Reshape", {"shape": "(2147483647, 2147483647, 2147483647, 8)"}),
                      ("Reshape", {"shape": "(-4, 1, -1)"}), ("Reshape", {"shape": "()"}),
                      ("LeakyReLU", {"act_type": "prelu"}), ("LeakyReLU", {"act_type": "elu"})):
        edited("the Flatten a %s %s" % (op, attrs), lambda g, op=op, attrs=attrs: g["nodes"][flatten].update(
            op=op, attrs=attrs))
    edited("the Flatten a broadcast_mul by a bias", lambda g: g["nodes"][flatten].update(
        op="broadcast_mul", inputs=g["nodes"][flatten]["inputs"] + [[bias, 0, 0]]))
    edited("no data", lambda g: g["nodes"][0].update(name="other"))
    edited("no heads", lambda g: g.update(heads=[]))
    edited("a head out of range", lambda g: g.update(heads=[[10**6, 0, 0]]))
    edited("an output index 1", lambda g: g.update(heads=[[len(g["nodes"]) - 1, 1, 0]]))
    edited("attrs that are a list", lambda g: ops and next(n for n in g["nodes"] if n["op"] != "null").update(attrs=[1]))
    variants.append(("nested arrays", b"[[[[[[[[[[[[]]]]]]]]]]]]", params))
    variants.append(("not JSON", b"\xff\xfe{", params))
    return variants


@pytest.fixture(scope="module")
def asan_bm_run():
    subprocess.run(["make", "-s", "-C", os.path.join(REPO, "deploy"), "runtime-asan", "PYTHON=" + sys.executable],
                   check=True)
    return os.path.join(BUILD, "asan", "bm-run")


@pytest.mark.parametrize("sanitized", [False, True], ids=["plain", "asan-ubsan"])
def test_hostile_model_files_exit_2_with_one_line(runtime, zoo_folder, asan_bm_run, tmp_path, packed, sanitized):  # noqa: F811
    program = asan_bm_run if sanitized else BM_RUN
    prefix, size = packed_zoo_model("binary_densenet28", zoo_folder)
    image = packed["images"][0]
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0", OMP_NUM_THREADS="1")
    for description, symbol, params in hostile_variants(prefix):
        damaged = str(tmp_path / "damaged")
        for suffix, content in (("-symbol.json", symbol), ("-0000.params", params)):
            with open(damaged + suffix, "wb") as f:
                f.write(content)
        result = subprocess.run([program, "--input-size", str(size), damaged, image], capture_output=True, text=True,
                                errors="replace", env=env, timeout=120)
        if "random bytes" in description and result.returncode == 0 and result.stderr == "":
            continue  # the bytes changed were weights: a model still
        assert result.returncode == 2, (description, result.returncode, result.stderr[-2000:])
        assert result.stdout == "" and re.fullmatch(r"error: [^\n]+\n", result.stderr), (description, result.stderr)


def test_a_flipped_bit_is_refused_by_the_pair_records_sha256(runtime, packed, tmp_path):  # noqa: F811
    damaged = str(tmp_path / "tiny")
    for suffix in ("-symbol.json", "-0000.params", ".pair.json"):
        shutil.copy(packed["prefix"] + suffix, damaged + suffix)
    with open(damaged + "-0000.params", "r+b") as f:
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 1]))
    result = subprocess.run([BM_RUN, damaged, packed["images"][0]], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr == ("error: packed model %s: %s-0000.params is not the file written together with "
                             "%s-symbol.json (it changed since the pair record %s.pair.json)\n" % ((damaged,) * 4))


# ---- docs/runtime.md's embedding example ----

def test_the_embedding_example_of_docs_runtime_md_compiles_and_runs(runtime, packed, tmp_path):  # noqa: F811
    with open(os.path.join(REPO, "docs", "runtime.md")) as f:
        text = f.read()
    source = re.search(r"<!-- example:begin -->\n```c\n(.*?)```\n<!-- example:end -->", text, re.S).group(1)
    build = re.search(r"<!-- build:begin -->\n```sh\n(.*?)```", text, re.S).group(1).strip()
    (tmp_path / "classify.c").write_text(source)
    command = build.replace("deploy/", os.path.join(REPO, "deploy") + "/")
    subprocess.run(command, shell=True, cwd=str(tmp_path), check=True)
    result = subprocess.run([str(tmp_path / "classify"), packed["prefix"]], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    classes = int(re.search(r"(\d+) classes", result.stdout).group(1))
    assert classes == 10 and "best class" in result.stdout
