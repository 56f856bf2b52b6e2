"""python -m binary_models.predict: top classes equal to the softmax of the model's own outputs on inputs
preprocessed independently here, for trained (--params) and packed (--packed) models, ImageNet-style and digits
preprocessing, class names, JSON, PNGs, batches, and one-line errors."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import mxnet as mx

import binary_models as bm
from binary_models.commands import predict
from binary_models.commands import convert as convert_command
from binary_models.inference import convert
from binary_models.commands.cli import run_script
from binary_models.storage import write_run_file

from test_convert import trained_like

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(stem="thumbnail", growth=16, init_channels=16)  # binary_densenet28 with 23 thin binary convs
SIZE = 16
IMAGENET_MEAN, IMAGENET_STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def tiny_classifier(classes=10, size=SIZE):
    """binary_densenet28 (thumbnail stem, growth 16) with random weights and BatchNorm statistics, its output
    layer scaled so that the softmax is spread over several classes (not one-hot). Seeded: the weights do
    not depend on the tests that ran before."""
    mx.random.seed(0)
    net = trained_like(bm.get_model("binary_densenet28", classes=classes, **TINY), (1, 3, size, size))
    net.output.weight.set_data(net.output.weight.data() * 0.05)
    return net


def save_trained(folder, net, classes=10, size=SIZE, **run_fields):
    """``folder/imagenet-binary_densenet28-best.params`` and the run file train_imagenet.py writes beside it."""
    os.makedirs(folder, exist_ok=True)
    params = os.path.join(folder, "imagenet-binary_densenet28-best.params")
    net.save_parameters(params)
    write_run_file(os.path.join(folder, "imagenet-binary_densenet28-run.json"), "binary_densenet28",
                   dict(TINY, classes=classes), size, classes, **dict(dict(dataset="imagenet"), **run_fields))
    return params


def write_images(folder, rng, shapes=((30, 40), (37, 23), (18, 18))):
    """Smooth random colour images of several sizes and aspect ratios, PNG and JPEG."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i, (h, w) in enumerate(shapes):
        image = cv2.GaussianBlur(rng.randint(0, 256, (h, w, 3)).astype(np.uint8), (5, 5), 2)
        paths.append(os.path.join(folder, "image%d.%s" % (i, "png" if i % 2 == 0 else "jpg")))
        cv2.imwrite(paths[-1], image)
    return paths


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("predict"))
    net = tiny_classifier()
    return dict(net=net, params=save_trained(os.path.join(root, "run"), net),
                images=write_images(os.path.join(root, "images"), np.random.RandomState(0)), root=root)


def reference_input(path, size=SIZE, crop_ratio=0.875):
    """The validation input computed here: MXNet's decoder and mx.image.resize_short, then crop, scaling and
    normalisation in NumPy."""
    image = mx.image.resize_short(mx.image.imread(path), int(round(size / crop_ratio)), interp=1).asnumpy()
    h, w = image.shape[:2]
    y0, x0 = (h - size) // 2, (w - size) // 2
    crop = image[y0:y0 + size, x0:x0 + size].astype(np.float32) / 255
    return ((crop - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1).astype(np.float32)


def reference_top(net, x, k=5):
    """Classes and softmax probabilities of ``net(x)``, best first."""
    logits = net(mx.nd.array(x[None])).asnumpy()[0].astype(np.float64)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    order = np.argsort(-p, kind="stable")[:k]
    return [int(c) for c in order], p[order]


def predict_json(args, capsys):
    assert predict.main(args + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def assert_matches(results, expected):
    for result, (classes, probabilities) in zip(results, expected):
        assert [e["class"] for e in result["top"]] == classes, result["image"]
        np.testing.assert_allclose([e["probability"] for e in result["top"]], probabilities, rtol=1e-5, atol=1e-7)


def test_top5_equals_the_softmax_of_the_float_model_on_independently_preprocessed_images(trained, capsys):
    results = predict_json(["--params", trained["params"]] + trained["images"], capsys)
    expected = [reference_top(trained["net"], reference_input(path)) for path in trained["images"]]
    assert max(p[0] for _, p in expected) < 0.9  # spread probabilities: the comparison means something
    assert [r["image"] for r in results] == trained["images"]
    assert_matches(results, expected)


def test_json_has_the_c_program_schema(trained, capsys):
    results = predict_json(["--params", trained["params"], "--top", "3", trained["images"][0]], capsys)
    assert len(results) == 1 and set(results[0]) == {"image", "latency_ms", "top"}
    assert set(results[0]["latency_ms"]) == {"forward", "preprocessing"}
    assert all(v > 0 for v in results[0]["latency_ms"].values())
    top = results[0]["top"]
    assert len(top) == 3 and all(set(e) == {"class", "name", "probability"} for e in top)
    assert [e["name"] for e in top] == [str(e["class"]) for e in top]  # 10 classes of no known data set
    probabilities = [e["probability"] for e in top]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1 + 1e-9


def test_a_batch_gives_the_results_of_single_images(trained, capsys):
    single = predict_json(["--params", trained["params"]] + trained["images"], capsys)
    batched = predict_json(["--params", trained["params"], "--batch-size", "2"] + trained["images"], capsys)
    assert_matches(batched, [([e["class"] for e in r["top"]], [e["probability"] for e in r["top"]]) for r in single])


def test_packed_model_from_the_convert_command_predicts_what_the_trained_model_does(trained, tmp_path, capsys):
    prefix = str(tmp_path / "packed" / "tiny")
    assert convert_command.main(["--params", trained["params"], "--output", prefix]) == 0
    capsys.readouterr()
    run = json.load(open(prefix + "-run.json"))
    assert run["model"] == "binary_densenet28" and run["classes"] == 10 and run["input_size"] == SIZE
    assert run["preprocessing"] == dict(input_size=SIZE, crop_ratio=0.875, grayscale=False,
                                        mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))
    packed = predict_json(["--packed", prefix] + trained["images"], capsys)
    expected = [reference_top(trained["net"], reference_input(path)) for path in trained["images"]]
    assert_matches(packed, expected)


def test_text_output_lists_the_model_latency_and_top_classes(trained, capsys):
    assert predict.main(["--params", trained["params"], trained["images"][0]]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("binary_densenet28 (parameters %s): 10 classes, input 3x16x16" % trained["params"])
    assert lines[1].startswith("%s: forward " % trained["images"][0]) and " ms, preprocessing " in lines[1]
    classes, probabilities = reference_top(trained["net"], reference_input(trained["images"][0]))
    assert [line.split()[1] for line in lines[2:]] == [str(c) for c in classes]
    assert [float(line.split()[2]) for line in lines[2:]] == pytest.approx(probabilities, abs=6e-5)


def test_imagenet_class_names_for_1000_classes_and_a_classes_file_otherwise(tmp_path, capsys, rng):
    from gluoncv.data import ImageNet1kAttr
    net = tiny_classifier(classes=1000)
    params = save_trained(str(tmp_path / "big"), net, classes=1000)
    image = write_images(str(tmp_path / "images"), rng, shapes=((24, 24),))
    top = predict_json(["--params", params] + image, capsys)[0]["top"]
    imagenet = ImageNet1kAttr().classes
    assert [e["name"] for e in top] == [imagenet[e["class"]] for e in top]
    names = tmp_path / "names.txt"
    names.write_text("".join("class-%d\n" % i for i in range(1000)))
    top = predict_json(["--params", params, "--classes-file", str(names)] + image, capsys)[0]["top"]
    assert [e["name"] for e in top] == ["class-%d" % e["class"] for e in top]


def digits_statistics_here(size):
    """The digits training split's mean and std, computed here from scikit-learn's data (80/20, seed 0)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    train = train_test_split(digits.images, digits.target, test_size=0.2, random_state=0,
                             stratify=digits.target)[0] / 16.0
    resized = np.stack([cv2.resize(x.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
                        for x in train])
    return resized.mean(), resized.std()


def test_digits_model_reads_grayscale_and_uses_the_digits_normalisation(tmp_path, capsys):
    from sklearn.datasets import load_digits
    size = 8
    net = tiny_classifier(size=size)
    params = save_trained(str(tmp_path / "digits"), net, size=size, dataset="digits")
    paths = []
    for i, digit in enumerate(load_digits().images[:3]):  # 8x8 grayscale PNGs: no resize, lossless
        paths.append(str(tmp_path / ("digit%d.png" % i)))
        cv2.imwrite(paths[-1], np.round(digit * 255 / 16).astype(np.uint8))
    results = predict_json(["--params", params] + paths, capsys)
    mean, std = digits_statistics_here(size)
    expected = []
    for path in paths:
        gray = cv2.imread(path, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255
        expected.append(reference_top(net, np.repeat(((gray - mean) / std)[None], 3, axis=0).astype(np.float32)))
    assert_matches(results, expected)
    assert all(e["name"] == str(e["class"]) for r in results for e in r["top"])  # the digits' names


def test_output_dir_gets_one_png_per_image(trained, tmp_path, capsys):
    out = tmp_path / "pngs"
    results = predict_json(["--params", trained["params"], "--output-dir", str(out)] + trained["images"], capsys)
    written = sorted(os.listdir(str(out)))
    assert written == sorted("image%d_prediction.png" % i for i in range(3))  # no temporary files left
    for result in results:
        with open(result["output"], "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        assert cv2.imread(result["output"]).shape[1] > 400


@pytest.fixture(scope="module")
def bad_inputs(trained, tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    (root / "notes.png").write_text("not an image")
    (root / "names.txt").write_text("a\nb\n")
    other = bm.get_model("binary_densenet28", stem="thumbnail", growth=8, init_channels=16, classes=10)
    other.initialize()
    other(mx.nd.zeros((1, 3, SIZE, SIZE)))
    other.save_parameters(str(root / "other.params"))
    return str(root)


@pytest.mark.parametrize("args,message", [
    (["--params", "{params}", "{root}/missing.png"], "error: image not found: {root}/missing.png"),
    (["--params", "{params}", "{root}/notes.png"], "error: cannot read image {root}/notes.png: "),
    (["--params", "{root}/none.params", "{image}"], "error: --model is needed: no run file beside"),
    (["--model", "binary_densenet28", "--params", "{root}/none.params", "{image}"], "error: --params not found: "),
    (["--model", "nosuchnet", "--params", "{params}", "{image}"], "error: unknown model 'nosuchnet'"),
    (["--params", "{root}/other.params", "--run", "{run}", "{image}"], "error: --params {root}/other.params does not "
                                                                       "match the model: "),
    (["--packed", "{root}/nothing", "{image}"], "error: --packed: no packed model at {root}/nothing"),
    (["--params", "{params}", "--classes-file", "{root}/names.txt", "{image}"], "error: --classes-file "
                                                                                "{root}/names.txt has 2 names, the "
                                                                                "model predicts 10 classes"),
    (["--params", "{params}", "--run", "{root}/none.json", "{image}"], "error: --run not found: {root}/none.json"),
    (["--params", "{params}", "--top", "0", "{image}"], "error: argument --top: must be an integer >= 1, got 0"),
])
def test_bad_input_exits_2_with_one_line(trained, bad_inputs, args, message, capsys):
    fill = dict(params=trained["params"], root=bad_inputs, image=trained["images"][0],
                run=trained["params"].replace("best.params", "run.json"))
    with pytest.raises(SystemExit) as exit_info:
        run_script(predict.main, [a.format(**fill) for a in args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(message.format(**fill)) and err.count("\n") == 1, err


def test_command_line_exit_status(trained, tmp_path):
    result = subprocess.run([sys.executable, "-m", "binary_models.predict", "--params", trained["params"],
                             str(tmp_path / "missing.jpg")], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr == "error: image not found: %s\n" % (tmp_path / "missing.jpg")
