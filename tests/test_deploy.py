"""deploy/'s C++ program (bm-predict): a packed model served through MXNet's C API, without Python, gives the
top-5 classes and probabilities of Python's load_packed model on the same images; a model needing none of the
native operators runs without the library; bad input exits 2 with one line."""
import json
import os
import re
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

from test_files import HOSTILE_STAGED, in_child, plant_hostile_record, tree
from test_predict import save_trained, tiny_classifier, write_images

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAM = os.path.join(REPO, "deploy", "build", "bm-predict")
DOC = os.path.join(REPO, "docs", "deploy.md")


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
    for name, symbol, weights in (("badjson", b'{"nodes": [', params), ("truncated", None, params[:len(params) // 2]),
                                  ("deep", b"[" * 100000 + b"]" * 100000, params),
                                  ("huge", b'{"nodes": [{"op": "null", "name": 1e400}]}', params),
                                  ("noop", b'{"nodes": [{"op": "null"}, 3]}', params)):
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
    (["{root}/deep", "{image}"], {}, 'error: corrupt model file {root}/deep-symbol.json: it has no "nodes" list'),
    (["{root}/huge", "{image}"], {}, "error: corrupt model file {root}/huge-symbol.json: invalid JSON: number overflow"),
    (["{root}/noop", "{image}"], {}, 'error: corrupt model file {root}/noop-symbol.json: a node has no "op"'),
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


def test_a_run_file_with_std_0_is_refused(program, packed, tmp_path):
    prefix = copy_of_pack(packed, tmp_path)
    write_json(run_file(prefix), dict(input_size=16, preprocessing=dict(std=[0])))
    result = run(program, prefix, packed["images"][0])
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "error: the normalisation's std must be positive\n"


@pytest.mark.parametrize("run_fields,labels,message", [
    (dict(class_names=["cat", "dog", "bird"]), None,
     "error: run file {run}: class_names has 3 names, the model has 10 classes"),
    (dict(class_names=["n%d" % i for i in range(11)]), None,
     "error: run file {run}: class_names has 11 names, the model has 10 classes"),
    (dict(class_names=["n%d" % i for i in range(9)] + [7]), None,
     "error: run file {run}: class_names must be a list of strings"),
    (dict(class_names="cat"), None, "error: run file {run}: class_names must be a list of strings"),
    (dict(), ["cat", "dog"], "error: --labels file {labels} has 2 names, the model has 10 classes"),
    (dict(input_size=-16), None, "error: run file {run}: input_size must be a positive integer"),
    (dict(input_size="16"), None, "error: run file {run}: input_size must be a positive integer"),
    (dict(preprocessing=dict(crop_ratio=-1)), None,
     "error: run file {run}: preprocessing.crop_ratio must be a positive number or null"),
])
def test_class_names_and_run_file_fields_that_do_not_fit_the_model_are_refused(program, packed, tmp_path, run_fields,
                                                                               labels, message):
    """Names for another number of classes would label some classes by name and others by number."""
    prefix = copy_of_pack(packed, tmp_path)
    write_json(run_file(prefix), dict(dict(input_size=16), **run_fields))
    args = []
    if labels is not None:
        (tmp_path / "labels.txt").write_text("".join(name + "\n" for name in labels))
        args = ["--labels", tmp_path / "labels.txt"]
    result = run(program, *args, prefix, packed["images"][0])
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == message.format(run=run_file(prefix), labels=tmp_path / "labels.txt") + "\n"


# A run file's field -> bm-predict's line; Python's where it words it otherwise (the program's --mean/--std flags
# share its rules, Python has no such flags).
BAD_RUN_FIELDS = [
    (dict(input_size=-16), "run file {run}: input_size must be a positive integer", None),
    (dict(input_size=0), "run file {run}: input_size must be a positive integer", None),
    (dict(input_size="16"), "run file {run}: input_size must be a positive integer", None),
    (dict(input_size=True), "run file {run}: input_size must be a positive integer", None),
    (dict(input_size=16.5), "run file {run}: input_size must be a positive integer", None),
    (dict(input_size=2000000), "run file {run}: input_size must be a positive integer", None),
    (dict(preprocessing="imagenet"), "run file {run}: preprocessing must be an object", None),
    (dict(preprocessing=[16]), "run file {run}: preprocessing must be an object", None),
    (dict(preprocessing=dict(input_size=-3)), "run file {run}: preprocessing.input_size must be a positive integer",
     None),
    (dict(preprocessing=dict(crop_ratio=-1)), "run file {run}: preprocessing.crop_ratio must be a positive number or "
                                              "null", None),
    (dict(preprocessing=dict(crop_ratio=0)), "run file {run}: preprocessing.crop_ratio must be a positive number or "
                                             "null", None),
    (dict(preprocessing=dict(crop_ratio="0.875")), "run file {run}: preprocessing.crop_ratio must be a positive "
                                                   "number or null", None),
    (dict(preprocessing=dict(grayscale="yes")), "run file {run}: preprocessing.grayscale must be true or false", None),
    (dict(preprocessing=dict(mean=[])), "run file {run}: preprocessing.mean must be a number or a list of numbers",
     None),
    (dict(preprocessing=dict(mean=[0.5, "0.5", 0.5])), "run file {run}: preprocessing.mean must be a number or a "
                                                       "list of numbers", None),
    (dict(preprocessing=dict(std=None)), "run file {run}: preprocessing.std must be a number or a list of numbers",
     None),
    (dict(preprocessing=dict(std=[0])), "the normalisation's std must be positive",
     "run file {run}: preprocessing.std must be positive"),
    (dict(preprocessing=dict(std=[0.2, -0.2, 0.2])), "the normalisation's std must be positive",
     "run file {run}: preprocessing.std must be positive"),
    (dict(preprocessing=dict(mean=[0.5, 0.5])), "--mean and --std need 3 values (or 1) for this model's input",
     "run file {run}: preprocessing.mean and preprocessing.std need 3 values (or 1) for this model's input"),
    (dict(class_names=["cat", "dog", "bird"]), "run file {run}: class_names has 3 names, the model has 10 classes",
     None),
    (dict(class_names=["n%d" % i for i in range(11)]), "run file {run}: class_names has 11 names, the model has 10 "
                                                       "classes", None),
    (dict(class_names=["n%d" % i for i in range(9)] + [7]), "run file {run}: class_names must be a list of strings",
     None),
    (dict(class_names="cat"), "run file {run}: class_names must be a list of strings", None),
]


@pytest.mark.parametrize("fields,program_line,python_line", BAD_RUN_FIELDS,
                         ids=[str(i) for i in range(len(BAD_RUN_FIELDS))])
def test_python_predict_refuses_the_run_files_the_program_refuses_in_its_words(program, packed, tmp_path, capsys,
                                                                               fields, program_line, python_line):
    """The run file convert wrote with one field made bad: both readers refuse it, before any output."""
    from binary_models.commands import predict as predict_command
    from binary_models.commands.cli import run_script
    prefix = copy_of_pack(packed, tmp_path)
    with open(run_file(prefix)) as f:
        record = json.load(f)
    write_json(run_file(prefix), dict(record, **fields))
    result = run(program, prefix, packed["images"][0])
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "error: %s\n" % program_line.format(run=run_file(prefix))
    with pytest.raises(SystemExit) as exit_info:
        run_script(predict_command.main, ["--packed", prefix, packed["images"][0]])
    out, err = capsys.readouterr()
    assert (exit_info.value.code, out) == (2, "")
    assert err == "error: %s\n" % (python_line or program_line).format(run=run_file(prefix))


def test_run_file_fields_of_the_other_kinds_the_program_accepts_python_accepts(program, packed, tmp_path, capsys):
    """A whole-number float input size, a crop ratio of null (stretch), one mean and std for every channel."""
    from binary_models.commands import predict as predict_command
    prefix = copy_of_pack(packed, tmp_path)
    with open(run_file(prefix)) as f:
        record = json.load(f)
    write_json(run_file(prefix), dict(record, input_size=16.0, preprocessing=dict(crop_ratio=None, mean=0.5,
                                                                                  std=[0.25])))
    result = run(program, "--json", prefix, packed["images"][0])
    assert result.returncode == 0, result.stderr
    assert predict_command.main(["--json", "--packed", prefix, packed["images"][0]]) == 0
    python = json.loads(capsys.readouterr().out)
    expected = [(e["class"], round(e["probability"], 4)) for e in json.loads(result.stdout)[0]["top"]]
    assert [(e["class"], round(e["probability"], 4)) for e in python[0]["top"]] == expected


def test_class_names_of_the_models_length_name_every_class(program, packed, tmp_path):
    prefix = copy_of_pack(packed, tmp_path)
    write_json(run_file(prefix), dict(input_size=16, class_names=["n%d" % i for i in range(10)]))
    result = run(program, "--json", "--top", "10", prefix, packed["images"][0])
    assert result.returncode == 0, result.stderr
    assert [e["name"] for e in json.loads(result.stdout)[0]["top"]] == ["n%d" % e["class"]
                                                                       for e in json.loads(result.stdout)[0]["top"]]


# ---- OMP_NUM_THREADS, read by libmxnet.so while it loads (before main) --------------------------------------

@pytest.mark.parametrize("value", ["lots", "4x", "4,2", "0", "-1", "99999999999", "5000", "1.5"])
def test_an_omp_num_threads_that_is_not_a_thread_count_is_refused_before_mxnet_loads(program, packed, value):
    result = run(program, packed["prefix"], packed["images"][0], env=dict(OMP_NUM_THREADS=value))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == ("error: OMP_NUM_THREADS must be a whole number of threads from 1 to 4096, got '%s'\n"
                             % value)


@pytest.mark.parametrize("value", ["1", "2", ""])
def test_a_thread_count_or_an_empty_omp_num_threads_runs(program, packed, value):
    result = run(program, "--json", packed["prefix"], packed["images"][0], env=dict(OMP_NUM_THREADS=value))
    assert result.returncode == 0, result.stderr
    assert_same_as_python(result.stdout, load_packed(packed["prefix"]), transforms.imagenet_preprocessing(16))


@pytest.mark.parametrize("value", ["lots", "4x", "4,2", "0", "-1", "99999999999", "5000", "1.5", " 4", "\u0664",
                                   "4\n2"])
@pytest.mark.parametrize("python_args", [["-m", "binary_models", "predict", "--packed"],
                                         ["-c", "import binary_models"]], ids=["bm-predict", "import"])
def test_python_refuses_the_omp_num_threads_the_program_refuses_with_its_line(program, packed, value, python_args):
    """bm predict, and any program whose first import is binary_models: before mxnet loads (which aborts on a
    non-number and hangs on a huge count)."""
    env = dict(os.environ, OMP_NUM_THREADS=value)
    result = run(program, packed["prefix"], packed["images"][0], env=env)
    assert (result.returncode, result.stdout) == (2, "")
    args = python_args + ([packed["prefix"], packed["images"][0]] if "predict" in python_args else [])
    python = subprocess.run([sys.executable] + args, capture_output=True, text=True, env=env, timeout=120)
    assert (python.returncode, python.stdout, python.stderr) == (2, "", result.stderr)


def test_import_binary_models_gives_an_empty_omp_num_threads_every_core():
    python = subprocess.run([sys.executable, "-c", "import os, binary_models; print(os.environ['OMP_NUM_THREADS'])"],
                            capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS=""), timeout=120)
    assert (python.returncode, python.stdout) == (0, "%d\n" % os.cpu_count()), python.stderr


# ---- the pair record: SHA-256 of both files, and names only in its own folder ------------------------------

def copy_of_pack(packed, folder):
    """The packed model's files, run file and pair record copied into ``folder``; returns the new prefix."""
    prefix = str(folder / "tiny")
    for suffix in ("-symbol.json", "-0000.params", "-run.json", ".pair.json"):
        shutil.copy(packed["prefix"] + suffix, prefix + suffix)
    return prefix


def flip_last_byte(path):
    with open(path, "r+b") as f:
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 0x01]))


def append_a_space(path):
    with open(path, "a") as f:
        f.write(" ")


def unlist_params(prefix):
    with open(prefix + ".pair.json") as f:
        record = json.load(f)
    del record["files"]["tiny-0000.params"]
    write_json(prefix + ".pair.json", record)


@pytest.mark.parametrize("damage", [
    lambda prefix: flip_last_byte(prefix + "-0000.params"),  # still a parameter file: only the SHA-256 tells
    lambda prefix: append_a_space(prefix + "-symbol.json"),  # still the same graph
    unlist_params,
], ids=["flipped-params-byte", "changed-symbol", "params-not-in-record"])
def test_a_file_that_is_not_the_one_recorded_in_the_pair_record_is_refused_as_python_refuses_it(
        program, packed, tmp_path, damage):
    prefix = copy_of_pack(packed, tmp_path)
    damage(prefix)
    with pytest.raises(ValueError) as python_error:
        load_packed(prefix)
    result = run(program, prefix, packed["images"][0])
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "error: %s\n" % python_error.value
    assert "the pair record " + prefix + ".pair.json" in result.stderr


@pytest.mark.parametrize("staged", HOSTILE_STAGED, ids=[str(i) for i in range(len(HOSTILE_STAGED))])
def test_a_pair_record_naming_files_outside_its_folder_is_refused_and_nothing_is_moved(program, packed, tmp_path,
                                                                                       capsys, staged):
    """The program and ``bm predict --packed`` refuse each hostile record with the same line."""
    from binary_models.commands import predict as predict_command
    from binary_models.commands.cli import run_script
    (tmp_path / "pack").mkdir()
    prefix = copy_of_pack(packed, tmp_path / "pack")
    plant_hostile_record(tmp_path, prefix, [prefix + "-0000.params", prefix + "-symbol.json"], staged)
    before = tree(tmp_path)
    result = run(program, prefix, packed["images"][0])
    assert tree(tmp_path) == before
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith("error: pair record %s.pair.json: " % prefix), result.stderr
    assert result.stderr.endswith(" is not the name of a file in its folder\n") and result.stderr.count("\n") == 1
    with pytest.raises(SystemExit) as exit_info:
        run_script(predict_command.main, ["--packed", prefix, packed["images"][0]])
    assert tree(tmp_path) == before
    assert (exit_info.value.code, capsys.readouterr()) == (2, ("", result.stderr))


def test_a_pair_record_may_name_plain_temporaries_in_its_folder(program, packed, tmp_path):
    """What files.replace_together writes for files staged beside their targets (checkpoints): plain names."""
    prefix = copy_of_pack(packed, tmp_path)
    os.rename(prefix + "-0000.params", str(tmp_path / ".tiny-0000.params.abcdefgh.1.tmp"))
    with open(prefix + ".pair.json") as f:
        record = json.load(f)
    record["staged"] = {"tiny-0000.params": ".tiny-0000.params.abcdefgh.1.tmp"}
    write_json(prefix + ".pair.json", record)
    result = run(program, "--json", prefix, packed["images"][0])
    assert result.returncode == 0, result.stderr
    assert os.path.isfile(prefix + "-0000.params")
    assert not os.path.exists(str(tmp_path / ".tiny-0000.params.abcdefgh.1.tmp"))


# ---- docs/deploy.md shows what the program prints -----------------------------------------------------------

def doc_block(name, text=None):
    """The fenced block between <!-- name:begin --> and <!-- name:end --> in docs/deploy.md."""
    match = re.search(r"(<!-- %s:begin -->\n```[a-z]*\n)(.*?)(```\n<!-- %s:end -->)" % (name, name),
                      text or open(DOC).read(), re.S)
    assert match, "docs/deploy.md has no %s block" % name
    return match


def update_doc_block(name, content):
    """BM_UPDATE_DOCS=1 writes what the program printed into docs/deploy.md instead of comparing."""
    text = open(DOC).read()
    match = doc_block(name, text)
    with open(DOC, "w") as f:
        f.write(text[:match.start(2)] + content + text[match.end(2):])


NUMBER = r"(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)"


def without_timings(text):
    text = re.sub(r"forward [\d.]+ ms, preprocessing [\d.]+ ms", "forward T ms, preprocessing T ms", text)
    return re.sub(r'"latency_ms": \{"forward": [\d.]+, "preprocessing": [\d.]+\}', '"latency_ms": T', text)


def test_the_commands_of_docs_deploy_md_print_what_it_shows(program, tmp_path):
    for name in ("deploy", "native"):
        os.symlink(os.path.join(REPO, name), str(tmp_path / name))
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    env.pop("OMP_NUM_THREADS", None)
    result = subprocess.run(["bash", "-c", doc_block("try-commands").group(2)], cwd=str(tmp_path), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    printed = result.stdout.replace(REPO, "/path/to/binary-models")
    assert result.returncode == 0, printed
    if os.environ.get("BM_UPDATE_DOCS"):
        update_doc_block("try-output", printed)
    shown = doc_block("try-output").group(2)
    actual, expected = (re.split(NUMBER, without_timings(t)) for t in (printed, shown))
    assert actual[0::2] == expected[0::2], printed  # the words
    assert [float(x) for x in actual[1::2]] == pytest.approx([float(x) for x in expected[1::2]], abs=2e-4), printed
    assert "exit status 2" in printed and "1.0000" not in printed  # the refusals; a spread softmax


def test_the_usage_in_docs_deploy_md_is_the_programs_help(program):
    result = run(program, "--help")
    if os.environ.get("BM_UPDATE_DOCS"):
        update_doc_block("help", result.stdout)
    assert doc_block("help").group(2) == result.stdout


def test_the_tests_docs_deploy_md_names_exist():
    named = set(re.findall(r"`(test_\w+)`", open(DOC).read()))
    assert named and all(name in globals() for name in named), named - set(globals())
