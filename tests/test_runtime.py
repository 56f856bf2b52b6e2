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
def test_every_binary_operator_gives_pythons_output_bit_for_bit(runtime, zoo_folder, tmp_path, name):
    """Each binary_conv2d, binary_dense_stage and norm_pool node of the model, fed the same input in MXNet
    (the native library's operator) and in the runtime: equal to the bit."""
    prefix, size = packed_zoo_model(name, zoo_folder)
    with open(prefix + "-symbol.json") as f:
        symbol = json.load(f)
    params = {k.split(":", 1)[1]: v for k, v in mx.nd.load(prefix + "-0000.params").items()}
    internals = mx.sym.load(prefix + "-symbol.json").get_internals()
    shapes = dict(zip(internals.list_outputs(), internals.infer_shape(data=(2, 3, size, size))[1]))
    rng = np.random.RandomState(1)
    checked = set()
    for index, node in enumerate(symbol["nodes"]):
        if node["op"] not in BINARY_OPS:
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
