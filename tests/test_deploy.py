"""deploy/'s C++ program (bm-predict): a packed model served through MXNet's C API, without Python, gives the
top-5 classes and probabilities of Python's load_packed model on the same images; a model needing none of the
native operators runs without the library; bad input exits 2 with one line."""
import json
import os
import shutil
import signal
import subprocess
import sys

import cv2
import numpy as np
import pytest
import mxnet as mx
from mxnet.gluon import nn

from binary_models.commands import convert as convert_command
from binary_models.inference import convert, native
from binary_models.storage import pairs
from binary_models.data import transforms
from binary_models.inference.convert import load_packed
from binary_models.storage import run_file, write_json

from test_files import in_child
from test_predict import save_trained, tiny_classifier, write_images

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAM = os.path.join(REPO, "deploy", "build", "bm-predict")


@pytest.fixture(scope="module")
def program():
    """The program, built as `make deploy` builds it (a no-op when it is up to date)."""
    native.load()
    subprocess.run(["make", "-s", "-C", os.path.join(REPO, "deploy"), "PYTHON=" + sys.executable], check=True)
    return PROGRAM


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """A tiny binary model packed by ``python -m binary_models.convert`` (with its run file), and images of
    several sizes: PNG, JPEG and a grayscale PNG (decoded as RGB)."""
    root = tmp_path_factory.mktemp("deploy")
    params = save_trained(str(root / "run"), tiny_classifier())
    prefix = str(root / "packed" / "tiny")
    assert convert_command.main(["--params", params, "--output", prefix]) == 0
    rng = np.random.RandomState(1)
    images = write_images(str(root / "images"), rng, shapes=((30, 40), (41, 29), (16, 16), (64, 48)))
    gray = str(root / "images" / "gray.png")
    cv2.imwrite(gray, rng.randint(0, 256, (20, 26)).astype(np.uint8))
    return dict(prefix=prefix, images=images + [gray], root=str(root))


def run(program, *args, env=None):
    return subprocess.run([program] + [str(a) for a in args], capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})))


def python_top(model, path, preprocessing, k=5):
    """Classes and softmax probabilities of Python's loaded packed model on ``path``, best first."""
    x = transforms.validation_transform(preprocessing)(transforms.read_image(path, preprocessing))
    logits = model(x.expand_dims(0)).asnumpy()[0].astype(np.float64)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    order = np.argsort(-p, kind="stable")[:k]
    return [int(c) for c in order], p[order]


def assert_same_as_python(program_output, model, preprocessing):
    results = json.loads(program_output)
    for result in results:
        classes, probabilities = python_top(model, result["image"], preprocessing)
        assert [e["class"] for e in result["top"]] == classes, result["image"]
        np.testing.assert_allclose([e["probability"] for e in result["top"]], probabilities, rtol=0, atol=1e-5)
    return results


def test_cpp_top5_and_probabilities_equal_python_load_packed(program, packed):
    result = run(program, "--json", packed["prefix"], *packed["images"])
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    model = load_packed(packed["prefix"])
    results = assert_same_as_python(result.stdout, model, transforms.imagenet_preprocessing(16))
    assert [r["image"] for r in results] == packed["images"]
    assert all(r["top"][0]["probability"] < 0.9 for r in results)  # spread: the comparison means something
    assert all(r["latency_ms"]["forward"] > 0 and r["latency_ms"]["preprocessing"] > 0 for r in results)


def test_digits_preprocessing_from_the_run_file(program, packed, tmp_path):
    """The same model under a run file saying it was trained on the digits: grayscale, stretched, the
    digits' normalisation, as Python's predict does it."""
    prefix = str(tmp_path / "digits")
    for suffix in ("-symbol.json", "-0000.params"):
        shutil.copy(packed["prefix"] + suffix, prefix + suffix)
    digits = transforms.preprocessing_of(dict(dataset="digits", input_size=16))
    write_json(run_file(prefix), dict(input_size=16, preprocessing=digits.as_dict(),
                                      class_names=["digit %d" % d for d in range(10)]))
    result = run(program, "--json", prefix, *packed["images"])
    assert result.returncode == 0, result.stderr
    results = assert_same_as_python(result.stdout, load_packed(prefix), digits)
    assert all(e["name"] == "digit %d" % e["class"] for r in results for e in r["top"])


def test_a_save_killed_after_its_commit_point_is_finished_by_the_program(program, packed, tmp_path):
    """save_packed killed before its first rename (after its pair record, the commit point): the old files
    are still in place, and the program finishes the renames as Python's readers do (files.finish_commit),
    so it runs the new model, not the old one."""
    prefix = str(tmp_path / "tiny")
    for suffix in ("-symbol.json", "-0000.params", "-run.json"):
        shutil.copy(packed["prefix"] + suffix, prefix + suffix)
    new = load_packed(prefix)
    bias = [p for name, p in new.collect_params().items() if name.endswith("bias")][-1]
    bias.set_data(bias.data() + mx.nd.arange(bias.data().shape[0]) * 0.5)  # another ranking than the old one

    def save_killed_at_its_first_rename():
        def die(source, target):
            os.kill(os.getpid(), signal.SIGKILL)
        pairs._move = die
        convert.save_packed(new, prefix, (1, 3, 16, 16))

    os.waitpid(in_child(save_killed_at_its_first_rename), 0)
    result = run(program, "--json", prefix, *packed["images"])
    assert result.returncode == 0, result.stderr
    assert_same_as_python(result.stdout, new, transforms.imagenet_preprocessing(16))


def test_text_output_names_the_library_and_the_latency(program, packed):
    result = run(program, "--top", "3", packed["prefix"], packed["images"][0])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == ("%s: 10 classes, input 3x16x16, crop ratio 0.875 preprocessing, native library %s"
                        % (packed["prefix"], native.library_path()))
    assert lines[1].startswith(packed["images"][0] + ": forward ") and lines[1].endswith(" ms")
    classes, probabilities = python_top(load_packed(packed["prefix"]), packed["images"][0],
                                        transforms.imagenet_preprocessing(16), k=3)
    assert [line.split()[:2] for line in lines[2:]] == [["%d." % (i + 1), str(c)] for i, c in enumerate(classes)]
    assert [float(line.split()[2]) for line in lines[2:]] == pytest.approx(probabilities, abs=6e-5)


def test_a_model_without_native_operators_runs_without_the_library(program, packed, tmp_path):
    net = nn.HybridSequential()
    net.add(nn.Conv2D(8, 3, padding=1), nn.BatchNorm(), nn.Activation("relu"), nn.GlobalAvgPool2D(), nn.Dense(4))
    net.initialize(mx.init.Xavier())
    net.hybridize()
    net(mx.nd.zeros((1, 3, 16, 16)))
    prefix = str(tmp_path / "float")
    net.export(prefix)
    write_json(run_file(prefix), dict(input_size=16))
    result = run(program, "--json", prefix, packed["images"][0], env={native.LIBRARY_ENV: "/nonexistent/lib.so"})
    assert result.returncode == 0, result.stderr
    top = assert_same_as_python(result.stdout, load_packed(prefix), transforms.imagenet_preprocessing(16))[0]["top"]
    assert len(top) == 4


@pytest.fixture(scope="module")
def broken(packed, tmp_path_factory):
    """Model files that are missing, corrupt or truncated, and an image that is not one."""
    root = tmp_path_factory.mktemp("broken")
    with open(packed["prefix"] + "-0000.params", "rb") as f:
        params = f.read()
    for name, symbol, weights in (("badjson", b'{"nodes": [', params), ("truncated", None, params[:len(params) // 2])):
        if symbol is None:
            shutil.copy(packed["prefix"] + "-symbol.json", str(root / (name + "-symbol.json")))
        else:
            (root / (name + "-symbol.json")).write_bytes(symbol)
        (root / (name + "-0000.params")).write_bytes(weights)
    (root / "notes.png").write_text("not an image")
    return str(root)


@pytest.mark.parametrize("args,env,message", [
    (["{root}/nothing", "{image}"], {}, "error: model file not found: {root}/nothing-symbol.json"),
    (["{root}/badjson", "{image}"], {}, "error: corrupt model file {root}/badjson-symbol.json: invalid JSON"),
    (["{root}/truncated", "{image}"], {}, "error: corrupt model file {root}/truncated-0000.params: "),
    (["{prefix}", "{image}"], {native.LIBRARY_ENV: "/nonexistent/lib.so"},
     "error: the model {prefix} uses binary_dense_stage, norm_pool from the native library, which is not loaded: the native "
     "library /nonexistent/lib.so does not exist"),
    (["--library", "{root}/notes.png", "{prefix}", "{image}"], {}, "error: cannot load {root}/notes.png: "),
    (["{prefix}", "{root}/notes.png"], {}, "error: cannot read image {root}/notes.png: not an image"),
    (["{prefix}", "{root}/missing.jpg"], {}, "error: image not found: {root}/missing.jpg"),
    (["--top", "x", "{prefix}", "{image}"], {}, "error: --top expects a number, got 'x'"),
])
def test_bad_input_exits_2_with_one_line(program, packed, broken, args, env, message):
    fill = dict(root=broken, prefix=packed["prefix"], image=packed["images"][0])
    result = run(program, *[a.format(**fill) for a in args], env=env)
    assert result.returncode == 2
    assert result.stderr.startswith(message.format(**fill)) and result.stderr.count("\n") == 1, result.stderr
    assert result.stdout == ""
