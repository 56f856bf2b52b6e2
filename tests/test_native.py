"""The native operators (binary_models.native, native/mxnet_ops.cc) against the float-emulated QConv2D /
QDense and NumPy: exact equality on random shapes (on every instruction set this machine supports, also
against the portable scalar kernels) and on every binary layer of two models; the instruction-set choice
(BINARY_MODELS_ISA); bad input raises MXNetError naming the problem."""
import ctypes
import os
import platform
import subprocess
import sys

import numpy as np
import pytest
import mxnet as mx
from mxnet import nd

import binary_models as bm
from binary_models.inference import native
from binary_models.inference.convert import BinaryConv2D, BinaryDense
import reference

FUZZ_CHUNKS, FUZZ_PER_CHUNK = 11, 20  # 220 random shapes


@pytest.fixture(scope="module", autouse=True)
def library():
    return native.load()


def equals_scalar_kernels(isa, run, result):
    """Asserts that ``run()`` (a NumPy result) gives ``result`` on the scalar kernels too."""
    if isa != "scalar":
        native.set_isa("scalar")
        try:
            np.testing.assert_array_equal(run(), result, err_msg="%s differs from scalar" % isa)
        finally:
            native.set_isa(isa)


def random_input(rng, shape):
    """Normal values with exact zeros mixed in (sign(0) = +1 in both implementations)."""
    x = rng.randn(*shape).astype(np.float32)
    x[rng.rand(*shape) < 0.1] = 0.0
    return nd.array(x)


def random_conv(rng):
    """A random binary QConv2D (channels not multiples of 64, groups, kernels, strides, dilation, both
    paddings, all scalings) and an input it accepts."""
    while True:
        groups = int(rng.choice([1, 1, 2, 3, 4]))
        cin = groups * int(rng.randint(1, rng.choice([8, 80, 160])))
        cout = groups * int(rng.randint(1, rng.choice([6, 24, 70])))
        k = int(rng.choice([1, 3, 3, 5]))
        stride, dilation, pad = int(rng.choice([1, 2])), int(rng.choice([1, 1, 2])), int(rng.randint(0, 3))
        h, w = int(rng.randint(1, 14)), int(rng.randint(1, 16))
        if h + 2 * pad >= dilation * (k - 1) + 1 and w + 2 * pad >= dilation * (k - 1) + 1:
            break
    conv = bm.QConv2D(cout, k, strides=stride, padding=pad, dilation=dilation, groups=groups, in_channels=cin,
                      pad_mode=str(rng.choice(["minus_one", "zero", "one"])),
                      scaling=str(rng.choice(["none", "none", "channel", "scalar"])))
    conv.initialize(mx.init.Normal(1.0))
    return conv, random_input(rng, (int(rng.randint(1, 4)), cin, h, w))


@pytest.mark.parametrize("chunk", range(FUZZ_CHUNKS))
@pytest.mark.parametrize("kernels_isa", native.ISAS, indirect=True)
def test_native_conv_equals_float_emulated_qconv2d_and_scalar_kernels_on_random_shapes(kernels_isa, chunk):
    rng = np.random.RandomState(1000 + chunk)  # the same shapes on every ISA
    for _ in range(FUZZ_PER_CHUNK):
        conv, x = random_conv(rng)
        expected = conv(x).asnumpy()
        binary = BinaryConv2D(conv)
        result = binary(x).asnumpy()
        np.testing.assert_array_equal(result, expected, err_msg="%s: %r" % (kernels_isa, conv))
        equals_scalar_kernels(kernels_isa, lambda: binary(x).asnumpy(), result)


def cpu_features():
    """What the OS says this CPU runs: x86-64, the flags of /proc/cpuinfo (listed only where the OS saves their
    registers too); aarch64, the names of the AT_HWCAP bits the kernels use (under qemu-user /proc/cpuinfo is
    the host's, while the auxiliary vector is the emulated CPU's)."""
    if platform.machine() in ("aarch64", "arm64"):
        hwcap = ctypes.CDLL(None).getauxval
        hwcap.restype, hwcap.argtypes = ctypes.c_ulong, [ctypes.c_ulong]
        bits = hwcap(16)  # AT_HWCAP
        return {name for name, bit in (("asimd", 1), ("asimddp", 20)) if bits >> bit & 1}
    with open("/proc/cpuinfo") as f:
        return next((set(line.split(":", 1)[1].split()) for line in f if line.startswith("flags")), set())


@pytest.mark.skipif(bool(os.environ.get(native.ISA_ENV)), reason="BINARY_MODELS_ISA is set")
def test_kernels_run_the_best_isa_that_the_cpu_lists(capsys):
    features = cpu_features()
    if {"avx512f", "avx512bw", "avx512vl", "avx512_vpopcntdq", "bmi2", "avx2", "popcnt"} <= features:
        expected = "avx512"
    elif {"avx2", "popcnt"} <= features:
        expected = "avx2"
    elif {"asimd", "asimddp"} <= features:
        expected = "neon-dot"
    elif "asimd" in features:
        expected = "neon"
    else:
        expected = "scalar"
    assert native.isa() == native.best_isa() == expected
    ran = [name for name in native.ISAS if native.isa_supported(name)]
    with capsys.disabled():
        print("\nnative kernels: %s by default; the fuzz runs %s%s" % (
            native.isa(), ", ".join(ran), "; skipped (not supported here): %s" % ", ".join(
                name for name in native.ISAS if name not in ran) if len(ran) < len(native.ISAS) else ""))


def isa_chosen_in_a_new_process(value):
    """(the ISA the library runs, its stderr) in a fresh process with BINARY_MODELS_ISA=value (ctypes only)."""
    code = ("import ctypes, sys; library = ctypes.CDLL(sys.argv[1]); "
            "library.binary_models_isa.restype = ctypes.c_char_p; print(library.binary_models_isa().decode())")
    result = subprocess.run([sys.executable, "-c", code, native.library_path()], env=dict(
        os.environ, **{native.ISA_ENV: value}), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        universal_newlines=True, check=True)
    return result.stdout.strip(), result.stderr


@pytest.mark.parametrize("name", native.ISAS)
def test_binary_models_isa_forces_a_supported_isa_and_reports_a_missing_one(name):
    chosen, stderr = isa_chosen_in_a_new_process(name)
    if native.isa_supported(name):
        assert (chosen, stderr) == (name, "")
    else:
        assert chosen == native.best_isa()
        assert "BINARY_MODELS_ISA=%s asks for" % name in stderr and "running %s" % chosen in stderr


def test_binary_models_isa_with_an_unknown_name_says_so_and_runs_the_best():
    chosen, stderr = isa_chosen_in_a_new_process("avx1024")
    assert chosen == native.best_isa()
    assert stderr == ("binary_models: BINARY_MODELS_ISA=avx1024 is unknown (known: auto, scalar, avx2, avx512, "
                      "avx512-emulated, neon, neon-dot); running %s\n" % chosen)


def test_binary_models_isa_forces_the_kernels_of_mxnet_operators():
    """Through the whole stack: the variable read when MXNet loads the library, isa() and a convolution."""
    code = ("import mxnet as mx; from binary_models import native; native.load(); "
            "w = mx.nd.array([[[[1.0]], [[-1.0]]]]); x = mx.nd.array([[[[-2.0]], [[-3.0]]]]); "
            "y = mx.nd.binary_conv2d(x, mx.nd.binary_pack_weights(w), kernel=1, num_filter=1, in_channels=2); "
            "print(native.isa(), y.asnumpy().ravel()[0])")
    env = dict(os.environ, **{native.ISA_ENV: "scalar", native.LIBRARY_ENV: native.library_path()})
    result = subprocess.run([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, check=True)
    assert result.stdout.split() == ["scalar", "0.0"], result.stderr  # sign: (-1)(+1) + (-1)(-1)


def test_set_isa_refuses_unknown_and_unsupported_names():
    with pytest.raises(ValueError, match="unknown instruction set 'avx1024'"):
        native.set_isa("avx1024")
    missing = [name for name in native.ISAS if not native.isa_supported(name)]
    for name in missing:
        with pytest.raises(ValueError, match="%r is not supported by this CPU or OS" % name):
            native.set_isa(name)
    assert native.isa() == native.best_isa()


@pytest.mark.parametrize("seed", range(6))
def test_native_conv_equals_numpy_reference(seed):
    rng = np.random.RandomState(seed)
    conv, x = random_conv(rng)
    padded_with = conv.pad_value
    expected = reference.binary_conv2d(x.asnumpy(), conv.weight.data().asnumpy(), conv.strides, conv.padding,
                                       conv.dilation, conv.groups, pad_value=padded_with)
    scale = bm.nn.quantization.weight_scale(nd, conv.weight.data(), conv.config.scaling)
    if scale is not None:
        expected = expected * scale.asnumpy().reshape(1, -1, 1, 1)
    np.testing.assert_allclose(BinaryConv2D(conv)(x).asnumpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("in_shape,units,scaling", [((3, 100), 10, "none"), ((2, 64), 64, "channel"),
                                                    ((4, 7, 3, 5), 33, "scalar"), ((1, 1000), 5, "none")])
@pytest.mark.parametrize("kernels_isa", native.ISAS, indirect=True)
def test_native_dense_equals_float_emulated_qdense(rng, kernels_isa, in_shape, units, scaling):
    dense = bm.QDense(units, in_units=int(np.prod(in_shape[1:])), scaling=scaling)
    dense.initialize(mx.init.Normal(1.0))
    x = random_input(rng, in_shape)
    binary = BinaryDense(dense)
    result = binary(x).asnumpy()
    np.testing.assert_array_equal(result, dense(x).asnumpy())
    equals_scalar_kernels(kernels_isa, lambda: binary(x).asnumpy(), result)


def binary_layer_inputs(net, x):
    """(layer, input) of every binary QConv2D of ``net`` on input ``x``."""
    seen, hooks = [], []
    for block in reference.blocks(net):
        if isinstance(block, bm.QConv2D) and block.is_binary:
            hooks.append(block.register_forward_hook(lambda b, inputs, out: seen.append((b, inputs[0]))))
    net(x)
    for hook in hooks:
        hook.detach()
    return seen


@pytest.mark.parametrize("name", ["meliusnet22", "binary_densenet28"])
def test_every_binary_conv_of_the_model_matches(rng, name):
    """The real channel counts (64 .. 600 inputs), at a 32x32 thumbnail input."""
    net = bm.get_model(name, stem="thumbnail", classes=10)
    net.initialize(mx.init.Xavier())
    layers = binary_layer_inputs(net, random_input(rng, (2, 3, 32, 32)))
    assert len(layers) == {"meliusnet22": 34, "binary_densenet28": 23}[name]
    for layer, x in layers:
        np.testing.assert_array_equal(BinaryConv2D(layer)(x).asnumpy(), layer(x).asnumpy(), err_msg=repr(layer))


def test_symbolic_use_infers_the_packed_weight_shape():
    data, weight = mx.sym.var("data"), mx.sym.var("weight")
    out = mx.sym.binary_conv2d(data, weight, kernel=(3, 3), pad=(1, 1), num_filter=70, in_channels=130)
    arg_shapes, out_shapes, _ = out.infer_shape(data=(2, 130, 9, 9))
    assert arg_shapes[1] == (18, 3, 3, 3, 4)  # ceil(70 / 4) blocks, 3x3 taps, ceil(130 / 64) words, 4 lanes
    assert out_shapes[0] == (2, 70, 9, 9)
    x, w = nd.random.normal(shape=(2, 130, 9, 9)), nd.random.normal(shape=(70, 130, 3, 3))
    result = out.eval(data=x, weight=nd.binary_pack_weights(w))[0]
    expected = reference.binary_conv2d(x.asnumpy(), w.asnumpy(), pad=(1, 1))
    np.testing.assert_array_equal(result.asnumpy(), expected)


# ---- bad input: MXNetError naming the problem ----

CONV = dict(kernel=(3, 3), pad=(1, 1), num_filter=8, in_channels=16)


def packed(shape=(8, 16, 3, 3), **attrs):
    return nd.binary_pack_weights(nd.ones(shape), **attrs)


def call_conv(data, weight, *extra, **changes):
    nd.binary_conv2d(data, weight, *extra, **dict(CONV, **changes)).wait_to_read()


BAD_CONV_CALLS = {
    "data must be float32, got float64":
        lambda: call_conv(nd.ones((1, 16, 5, 5), dtype="float64"), packed()),
    "packed weight must be int64":
        lambda: call_conv(nd.ones((1, 16, 5, 5)), nd.ones((2, 3, 3, 1, 4))),
    r"data must be 4-D NCHW, got shape \(16, 5, 5\)":
        lambda: call_conv(nd.ones((16, 5, 5)), packed()),
    "data has 12 channels but in_channels is 16":
        lambda: call_conv(nd.ones((1, 12, 5, 5)), packed()),
    r"packed weight shape \(2, 3, 3, 1, 4\) does not match the attributes, which need \(2, 3, 3, 2, 4\)":
        lambda: call_conv(nd.ones((1, 100, 5, 5)), packed(), in_channels=100),
    r"kernel height 9 is not supported \(allowed: 1..7\)":
        lambda: call_conv(nd.ones((1, 16, 12, 12)), packed(), kernel=(9, 9)),
    r"stride 5 is not supported \(allowed: 1..4\)":
        lambda: call_conv(nd.ones((1, 16, 5, 5)), packed(), stride=5),
    r"stride 0 is not supported":
        lambda: call_conv(nd.ones((1, 16, 5, 5)), packed(), stride=(1, 0)),
    "the \\(dilated\\) kernel is larger than the padded input":
        lambda: call_conv(nd.ones((1, 16, 1, 1)), packed(), pad=0),
    "attribute pad_mode: expected 'minus_one', 'zero' or 'one'":
        lambda: call_conv(nd.ones((1, 16, 5, 5)), packed(), pad_mode="reflect"),
    "unknown attribute 'strides'":
        lambda: call_conv(nd.ones((1, 16, 5, 5)), packed(), strides=2),
    "attribute num_filter: required attribute missing":
        lambda: nd.binary_conv2d(nd.ones((1, 16, 5, 5)), packed(), kernel=3, in_channels=16).wait_to_read(),
    "in_channels 16 must be a positive multiple of num_group 3":
        lambda: call_conv(nd.ones((1, 16, 5, 5)), packed(), num_group=3),
    r"scale shape \(3,\) must be \(8,\)":
        lambda: call_conv(nd.ones((1, 16, 5, 5)), packed(), nd.ones((3,)), scaled=True),
    "binary_dense: data has 10 features per sample but in_units is 16":
        lambda: nd.binary_dense(nd.ones((2, 10)), packed((4, 16)), num_hidden=4, in_units=16).wait_to_read(),
    r"binary_dense: data must have a batch axis and features, got shape \(16,\)":
        lambda: nd.binary_dense(nd.ones((16,)), packed((4, 16)), num_hidden=4, in_units=16).wait_to_read(),
    r"binary_pack_weights: weight must be 4-D .* or 2-D .*, got shape \(8, 16, 3\)":
        lambda: packed((8, 16, 3)).wait_to_read(),
    "binary_pack_weights: weight must be float32, got int32":
        lambda: nd.binary_pack_weights(nd.ones((8, 16), dtype="int32")).wait_to_read(),
    # integer attributes outside int are refused, not cast (2**32 + 1 would run as 1)
    r"attribute stride: 4294967297 is out of range \(-2147483648..2147483647\)":
        lambda: call_conv(nd.ones((1, 16, 5, 5)), packed(), stride=2 ** 32 + 1),
    "attribute num_filter: 4294967300 is out of range":
        lambda: call_conv(nd.ones((1, 16, 5, 5)), packed((4, 16, 3, 3)), num_filter=2 ** 32 + 4),
    "attribute in_channels: 2147483648 is out of range":
        lambda: call_conv(nd.ones((1, 16, 5, 5)), packed(), in_channels=2 ** 31),
    "attribute kernel: 4294967299 is out of range":
        lambda: call_conv(nd.ones((1, 16, 5, 5)), packed(), kernel=(3, 2 ** 32 + 3)),
    "attribute pad: -4294967295 is out of range":
        lambda: call_conv(nd.ones((1, 16, 5, 5)), packed(), pad=(1, -2 ** 32 + 1)),
    "attribute dilate: 8589934592 is out of range":
        lambda: call_conv(nd.ones((1, 16, 5, 5)), packed(), dilate=2 ** 33),
    "attribute num_group: 4294967297 is out of range":
        lambda: call_conv(nd.ones((1, 16, 5, 5)), packed(), num_group=2 ** 32 + 1),
    "attribute stride: 1267650600228229401496703205376 is out of range":
        lambda: call_conv(nd.ones((1, 16, 5, 5)), packed(), stride=2 ** 100),
    r"num_filter 1073741824 is not supported \(allowed: 1..16777216\)":
        lambda: call_conv(nd.ones((1, 16, 5, 5)), packed(), num_filter=2 ** 30),
    r"in_channels 2147483647 is not supported \(allowed: 1..16777216\)":
        lambda: call_conv(nd.ones((1, 16, 5, 5)), packed(), in_channels=2 ** 31 - 1),
    r"pad 65537 is not supported \(allowed: 0..65536\)":
        lambda: call_conv(nd.ones((1, 16, 5, 5)), packed(), pad=2 ** 16 + 1),
    "binary_dense: attribute num_hidden: 4294967300 is out of range":
        lambda: nd.binary_dense(nd.ones((2, 16)), packed((4, 16)), num_hidden=2 ** 32 + 4,
                                in_units=16).wait_to_read(),
    "binary_dense: attribute in_units: 1099511627792 is out of range":
        lambda: nd.binary_dense(nd.ones((2, 16)), packed((4, 16)), num_hidden=4, in_units=2 ** 40 + 16).wait_to_read(),
    r"binary_dense: num_hidden 1073741824 is not supported \(allowed: 1..16777216\)":
        lambda: nd.binary_dense(nd.ones((2, 16)), packed((4, 16)), num_hidden=2 ** 30, in_units=16).wait_to_read(),
    "binary_dense: in_units 0 is not supported":
        lambda: nd.binary_dense(nd.ones((2, 16)), packed((4, 16)), num_hidden=4, in_units=0).wait_to_read(),
    "binary_pack_weights: attribute num_group: 4294967298 is out of range":
        lambda: packed(num_group=2 ** 32 + 2).wait_to_read(),
    r"binary_pack_weights: in_channels 33554432 \(weight shape \(2, 16777216\), num_group 2\) is not supported":
        lambda: nd.binary_pack_weights(nd.ones((2, 2 ** 24)), num_group=2).wait_to_read(),
}


@pytest.mark.parametrize("message", sorted(BAD_CONV_CALLS))
def test_bad_input_raises_mxnet_error_naming_the_problem(message):
    with pytest.raises(mx.MXNetError, match=message):
        BAD_CONV_CALLS[message]()


def test_an_error_message_names_only_its_own_problem():
    """MXNet keeps all extension messages of a process; the library drops the stale ones."""
    with pytest.raises(mx.MXNetError, match="stride 5"):
        call_conv(nd.ones((1, 16, 5, 5)), packed(), stride=5)
    with pytest.raises(mx.MXNetError) as second:
        call_conv(nd.ones((1, 12, 5, 5)), packed())
    assert "12 channels" in str(second.value) and "stride 5" not in str(second.value)


def test_backward_refuses_with_a_message():
    x, w = nd.ones((1, 16, 5, 5)), packed()
    x.attach_grad()
    with mx.autograd.record():
        y = nd.binary_conv2d(x, w, **CONV)
    with pytest.raises(mx.MXNetError, match="have no gradient"):
        y.backward()
        x.grad.wait_to_read()


def test_load_is_idempotent_and_reports_the_library():
    assert native.is_loaded()
    assert native.load() == native.library_path() and native.library_path().endswith(native.LIBRARY_NAME)


@pytest.mark.parametrize("content", [b"not a library", b"\x7fELF" + bytes(100)], ids=["text", "cut-off-elf"])
def test_a_library_that_does_not_load_is_one_line_without_mxnets_traceback(tmp_path, content):
    """``bm predict --packed`` of a model that needs the library: one line, with the loader's reason."""
    library = tmp_path / "libbroken.so"
    library.write_bytes(content)
    env = dict(os.environ, **{native.LIBRARY_ENV: str(library)})
    code = ("from binary_models.inference import native\ntry:\n    native.load()\nexcept native.NativeLibraryError "
            "as err:\n    print(err)")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert loaded.stdout.count("\n") == 1 and "Traceback" not in loaded.stdout and "File " not in loaded.stdout
    assert loaded.stdout.startswith("MXNet could not load %s: %s: " % (library, library)), loaded.stdout
    assert len(loaded.stdout.split(": ")[-1].strip()) > 0  # the dynamic loader's reason
    prefix = tmp_path / "conv"
    code = ("import binary_models as bm, mxnet as mx\nfrom binary_models.inference.convert import convert, "
            "save_packed\nnet = bm.QConv2D(4, 3, in_channels=4)\nnet.initialize()\nsave_packed(convert(net), %r, "
            "(1, 4, 5, 5))" % str(prefix))
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
    import cv2
    cv2.imwrite(str(tmp_path / "image.png"), np.zeros((8, 8, 3), np.uint8))
    result = subprocess.run([sys.executable, "-m", "binary_models", "predict", "--packed", str(prefix),
                             str(tmp_path / "image.png")], capture_output=True, text=True, env=env, timeout=300)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: --packed: the packed model %s uses the "
                                                                       "native operators binary_conv2d" % prefix)
    assert result.stderr.endswith(", but the native library cannot be loaded: " + loaded.stdout), result.stderr


def test_loading_and_converting_leave_no_openmp_team_in_the_calling_thread(tmp_path):
    """After native.load(), mx.nd.array of a batch and convert()'s copy run in the calling thread without an
    OpenMP team of their own (one would make libgomp sleep at every barrier of the dense stages: 2 threads
    then hardly beat 1). Counted in a fresh process with two OpenMP threads: the process's threads before and
    after; without the library loaded, the same copy adds a thread (the check can fail)."""
    script = r'''
import os, sys, numpy as np, mxnet as mx
import binary_models as bm
from binary_models.inference import native
count = lambda: len(os.listdir("/proc/self/task"))
mx.nd.zeros((1,)).wait_to_read()
if sys.argv[1] == "load":
    native.load()
net = bm.get_model("binary_densenet28", classes=10)
net.initialize()
net(mx.nd.zeros((1, 3, 32, 32))).wait_to_read()
before = count()
batch = mx.nd.array(np.random.rand(16, 3, 112, 112).astype("float32"))  # beyond MXNet's 200000-element copy
batch.wait_to_read()
if sys.argv[1] == "load":
    bm.convert(net)(mx.nd.zeros((1, 3, 32, 32))).wait_to_read()
print(count() - before)
'''
    env = dict(os.environ, OMP_NUM_THREADS="2")
    added = {mode: int(subprocess.run([sys.executable, "-c", script, mode], env=env, check=True, capture_output=True,
                                      text=True).stdout.split()[-1]) for mode in ("plain", "load")}
    assert added["plain"] >= 1  # MXNet's copy made a team in the calling thread
    assert added["load"] == 0


def test_set_caller_threads_returns_the_previous_count_and_sets_the_new_one():
    """set_caller_threads is omp_set_num_threads for the calling thread: each call returns what the one before
    set (after load(): 1)."""
    native.load()
    first = native.set_caller_threads(3)
    try:
        assert first == 1
        assert native.set_caller_threads(2) == 3
    finally:
        native.set_caller_threads(first)
    assert native.set_caller_threads(first) == first
