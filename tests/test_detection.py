"""Detection: the SSD networks, the VOC-format checks, train_ssd.py and detect.py on a synthetic VOC set."""
import glob
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import mxnet as mx
from mxnet import nd

import binary_models as bm
from binary_models.commands import cli, synthetic_voc, train_ssd
from binary_models.train import detection as ssd_training
from binary_models.data import voc
from binary_models.nn.layers import QConv2D
from binary_models.models import ssd
from binary_models.train.regularization import walk_blocks

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = sorted(voc.SHAPE_HUES)
# The thin, small configuration that trains in about a minute on two CPU cores (the registered
# networks keep the paper's SSD512 configuration).
THIN_BACKBONE = dict(growth=16, init_channels=16, stem="7x7")
THIN = dict(THIN_BACKBONE, extra_filters=[128, 128, 64, 64])
THIN_FLAGS = ["--growth", "16", "--init-channels", "16", "--stem", "7x7", "--extra-filters", "128,128,64,64"]
DATA_SHAPE = 128
EPOCHS = 12
LR = 0.004
MIN_MAP = 0.2  # measured: 0.42-0.62 (seeds 1, 2); an untrained net scores about 0.005


def thin_run_flags(synthetic, out):
    """train_ssd.py's flags for the thin network on the synthetic set."""
    return ["--network", "binary_densenet28", "--data-shape", str(DATA_SHAPE), "--dataset", synthetic,
            "--batch-size", "8", "--num-workers", "1", "--save-prefix", out, "--no-progress"] + THIN_FLAGS




def run_train_ssd(argv):
    """train_ssd.py's command line run in this process, as ``run_script`` runs it: the exit status."""
    try:
        cli.run_script(train_ssd.main, argv)
    except SystemExit as exit_:
        return exit_.code
    return 0


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return voc.make_synthetic_voc(str(tmp_path_factory.mktemp("synthetic_voc")), num_train=48, num_val=24)


def copy_with_annotation(synthetic, tmp_path, edit):
    """A copy of the synthetic set whose first training annotation is changed by ``edit(root_element)``."""
    root = str(tmp_path / "voc")
    shutil.copytree(synthetic, root)
    first = voc.read_split(root, "train")[0]
    path = os.path.join(root, "Annotations", first + ".xml")
    tree = ET.parse(path)
    edit(tree.getroot())
    tree.write(path)
    return root, path


# ---- networks -----------------------------------------------------------------------------------------
def test_every_registered_ssd_is_found_by_both_get_model_functions():
    from gluoncv.model_zoo import model_zoo as gluoncv_zoo
    names = ssd.get_detection_model_list()
    backbones = ("binary_densenet28", "binary_densenet37", "binary_densenet45", "meliusnet22", "meliusnet29",
                 "meliusnet42", "meliusnet59", "resnet_e18", "resnet_e34")
    expected = {"ssd_%d_%s_%s" % (shape, base, dataset) for shape in (300, 512) for base in backbones
                for dataset in ("voc", "coco", "custom")}
    assert set(names) == expected == set(ssd.REGISTERED_SSDS)
    assert expected <= set(gluoncv_zoo._models)
    assert not expected & set(bm.get_model_list()), "detectors stay out of the classifier list"


@pytest.mark.parametrize("name, get_model, kwargs, num_classes", [
    ("ssd_512_binary_densenet37_voc", bm.get_model, {}, 20),
    ("ssd_512_meliusnet22_coco", None, {"pretrained_base": True}, 80),
    ("ssd_300_binary_densenet28_custom", None, {"classes": ["cat", "dog"]}, 2),
])
def test_registered_ssd_has_the_dataset_classes(name, get_model, kwargs, num_classes):
    from gluoncv.model_zoo import get_model as gluoncv_get_model
    net = (get_model or gluoncv_get_model)(name, **kwargs)  # pretrained_base=True downloads nothing
    assert net.num_classes == num_classes
    assert all(p.predictor._channels % (num_classes + 1) == 0 for p in net.class_predictors)


def test_custom_ssd_without_classes_and_voc_ssd_with_classes_are_refused():
    with pytest.raises(ValueError, match="classes"):
        bm.get_model("ssd_512_binary_densenet37_custom")
    with pytest.raises(ValueError, match="_custom"):
        bm.get_model("ssd_512_binary_densenet37_voc", classes=["a"])


@pytest.mark.parametrize("backbone", ["binary_densenet37", "meliusnet22"])
def test_head_reads_the_backbone_maps_at_strides_16_and_32(backbone):
    features = bm.get_model("ssd_512_%s_voc" % backbone).features
    _, shapes, _ = mx.sym.Group(features(mx.sym.var("data"))).infer_shape(data=(1, 3, 512, 512))
    assert [s[2] for s in shapes] == [32, 16, 8, 4, 2, 1]  # 512/16, 512/32, then the extra layers
    widths = bm.get_model(backbone).widths
    assert [s[1] for s in shapes[:2]] == widths[2:]  # the ends of the third and fourth stages


def test_ssd512_anchors_are_gluoncvs_and_other_shapes_use_the_ssd_papers_scales():
    net = bm.get_model("ssd_512_binary_densenet45_voc")
    assert [g._sizes[0] for g in net.anchor_generators] == list(ssd.ANCHOR_SIZES[512]["voc"][:-1])
    assert ssd.anchor_sizes(128, "custom") == pytest.approx([0.2 * 128, 0.34 * 128, 0.48 * 128, 0.62 * 128,
                                                             0.76 * 128, 0.9 * 128, 1.04 * 128])


def count_binary_convs(block):
    return sum(isinstance(b, QConv2D) and b.is_binary for b in walk_blocks(block))


def test_only_backbone_convs_are_binary_unless_binary_extras():
    backbone = bm.get_model("binary_densenet28")
    net = bm.get_model("ssd_300_binary_densenet28_voc")
    assert count_binary_convs(net) == count_binary_convs(net.features.base) == count_binary_convs(backbone)
    assert count_binary_convs(net.features.extras) == 0
    assert count_binary_convs(net.class_predictors) == count_binary_convs(net.box_predictors) == 0
    with_extras = bm.get_model("ssd_300_binary_densenet28_voc", binary_extras=True)
    assert count_binary_convs(with_extras.features.extras) == 4


def test_layer_options_reach_the_backbone_and_binary_extras():
    net = bm.get_model("ssd_300_binary_densenet28_voc", binary_extras=True, bits_a=2, grad_cancel=1.0)
    configs = {(b.config.bits_a, b.config.grad_cancel) for b in walk_blocks(net) if isinstance(b, QConv2D)}
    assert configs == {(2, 1.0)}


def thin_ssd(**kwargs):
    return ssd.get_ssd_model("ssd_%d_binary_densenet28_custom" % DATA_SHAPE, classes=CLASSES, **dict(THIN, **kwargs))


def thin_ssd_of(name, data_shape=64, **kwargs):
    """The registered detector ``name`` with the thin backbone, initialised by a forward pass."""
    net = bm.get_model(name, **dict(THIN, **kwargs))
    net.initialize(mx.init.Xavier())
    net(nd.zeros((1, 3, data_shape, data_shape)))
    return net


def save_classifier(path, name="binary_densenet28", **kwargs):
    net = bm.get_model(name, **dict(THIN_BACKBONE, **kwargs))
    net.initialize(mx.init.Xavier())
    net(nd.zeros((1, 3, 64, 64)))
    net.save_parameters(str(path))
    return net


def test_backbone_params_load_a_classification_checkpoint(tmp_path):
    classifier = save_classifier(tmp_path / "classifier.params")
    net = thin_ssd(backbone_params=str(tmp_path / "classifier.params"))
    stem_weight = net.features.base[0][0].weight.data().asnumpy()
    np.testing.assert_array_equal(stem_weight, classifier.features[0][0].weight.data().asnumpy())
    final_bn = net.features.taps[-1].index - 1  # the classifier head's BatchNorm feeds the stride-32 map
    np.testing.assert_array_equal(net.features.base[final_bn].running_var.data().asnumpy(),
                                  classifier.features[final_bn].running_var.data().asnumpy())


def test_backbone_params_of_another_network_name_the_problem(tmp_path):
    save_classifier(tmp_path / "melius.params", "meliusnet22")
    with pytest.raises(ValueError, match="melius.params is not a binary_densenet28 checkpoint"):
        thin_ssd(backbone_params=str(tmp_path / "melius.params"))


def test_pretrained_base_loads_the_backbone_from_gluoncvs_place_and_warns_once_naming_a_missing_file(
        tmp_path, monkeypatch):
    import warnings
    from gluoncv.model_zoo import get_model as gluoncv_get_model
    monkeypatch.setenv("MXNET_HOME", str(tmp_path))  # GluonCV's root: $MXNET_HOME/models
    expected_path = str(tmp_path / "models" / "binary_densenet28.params")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gluoncv_get_model("ssd_300_binary_densenet28_voc", pretrained_base=True, **THIN_BACKBONE)
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert len(messages) == 1 and expected_path in messages[0] and "random weights" in messages[0]
    (tmp_path / "models").mkdir()
    classifier = save_classifier(expected_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net = gluoncv_get_model("ssd_300_binary_densenet28_voc", pretrained_base=True, **THIN_BACKBONE)
    assert not [w for w in caught if issubclass(w.category, UserWarning)]
    for key, param in net.features.base._collect_params_with_prefix("features").items():
        np.testing.assert_array_equal(param.data().asnumpy(), classifier._collect_params_with_prefix()[key].data().asnumpy())


def class_rows(predictor, num_classes):
    """A class predictor's weight as (anchors, background + classes, ...)."""
    weight = predictor.predictor.weight.data().asnumpy()
    return weight.reshape((-1, num_classes + 1) + weight.shape[1:])


def test_transfer_starts_a_custom_detector_from_the_trained_voc_one_reusing_the_shared_classes(tmp_path):
    from gluoncv.model_zoo import get_model as gluoncv_get_model
    trained = thin_ssd_of("ssd_300_binary_densenet28_voc")
    trained.save_parameters(str(tmp_path / "ssd_300_binary_densenet28_voc.params"))  # where pretrained=True looks
    classes = ["bird", "kangaroo", "aeroplane"]
    net = gluoncv_get_model("ssd_300_binary_densenet28_custom", classes=classes, pretrained_base=False,
                            transfer="voc", root=str(tmp_path), **THIN)
    assert list(net.classes) == classes
    np.testing.assert_array_equal(net.features.base[0][0].weight.data().asnumpy(),
                                  trained.features.base[0][0].weight.data().asnumpy())
    voc_classes = list(trained.classes)
    for new, old in zip(net.class_predictors, trained.class_predictors):
        new_rows, old_rows = class_rows(new, 3), class_rows(old, 20)
        np.testing.assert_array_equal(new_rows[:, 0], old_rows[:, 0])  # background
        for index, name in ((1, "bird"), (3, "aeroplane")):
            np.testing.assert_array_equal(new_rows[:, index], old_rows[:, 1 + voc_classes.index(name)])
        assert not any(np.array_equal(new_rows[:, 2], old_rows[:, c]) for c in range(21))  # kangaroo: new


@pytest.mark.parametrize("name, kwargs, error, message", [
    ("ssd_300_binary_densenet28_custom", dict(transfer="coco"), FileNotFoundError,
     "transfer='coco': no weights for ssd_300_binary_densenet28_coco at {root}"),
    ("ssd_300_binary_densenet28_custom", dict(transfer="imagenet"), ValueError, "transfer must be one of 'voc', 'coco'"),
    ("ssd_300_binary_densenet28_voc", dict(transfer="coco"), ValueError, "transfer= is for the _custom detectors"),
])
def test_transfer_that_cannot_apply_is_refused_with_the_reason(tmp_path, name, kwargs, error, message):
    with pytest.raises(error, match=message.format(root=tmp_path)):
        bm.get_model(name, classes=["cat"] if name.endswith("_custom") else None, root=str(tmp_path), **kwargs)


# ---- VOC-format data ----------------------------------------------------------------------------------
def test_synthetic_set_loads_through_gluoncv_vocdetection_with_boxes_on_the_shapes(synthetic):
    dataset = voc.voc_detection(synthetic, [("", "train")], CLASSES)
    assert len(dataset) == 48 and dataset.classes == tuple(CLASSES)
    image, label = dataset[0]
    image = image.asnumpy()
    background_like = 0
    for xmin, ymin, xmax, ymax, cls, difficult in label:
        assert difficult == 0 and 0 <= cls < len(CLASSES)
        centre = image[int((ymin + ymax) / 2), int((xmin + xmax) / 2)].astype(int)  # RGB
        hue_channel = {"circle": 0, "square": 1, "triangle": 2}[CLASSES[int(cls)]]  # red, green, blue
        background_like += int(np.argmax(centre) != hue_channel)
    assert background_like == 0


def test_voc_classes_writes_pascal_voc_that_gluoncv_reads_with_the_plain_sets_boxes(tmp_path, capsys):
    from gluoncv.data import VOCDetection
    root = str(tmp_path / "pascal")
    synthetic_voc.main([root, "--voc-classes", "--train", "5", "--val", "2", "--size", "64", "--seed", "3"])
    assert "5 + 2 images of aeroplane, bicycle, bird as Pascal VOC" in capsys.readouterr().out
    # the splits GluonCV's train_ssd.py --dataset voc reads, with GluonCV's 20 classes
    train = VOCDetection(root=root, splits=[(2007, "trainval"), (2012, "trainval")])
    test = VOCDetection(root=root, splits=[(2007, "test")])
    assert (len(train), len(test)) == (5, 2) and train.classes == VOCDetection.CLASSES
    # the same images and boxes as the plain set of that seed; circle, square, triangle (0, 1, 2) are now
    # aeroplane, bicycle, bird (VOC's classes 0, 1, 2)
    plain = voc.make_synthetic_voc(str(tmp_path / "plain"), 5, 2, 64, seed=3)
    for pascal, split in ((train, "train"), (test, "val")):
        reference = voc.voc_detection(plain, [("", split)], CLASSES)
        for (image, label), (reference_image, reference_label) in zip(pascal, reference):
            np.testing.assert_array_equal(image.asnumpy(), reference_image.asnumpy())
            np.testing.assert_array_equal(label[:, :4], reference_label[:, :4])
            assert [VOCDetection.CLASSES[int(c)] for c in label[:, 4]] == \
                [voc.VOC_NAMES[CLASSES[int(c)]] for c in reference_label[:, 4]]


@pytest.mark.parametrize("edit, problem", [
    (lambda root: [o.remove(o.find("difficult")) for o in root.iter("object")], "<difficult>"),
    (lambda root: root.find("object/bndbox/xmax").__setattr__("text", "999"), "outside the 128x128 image"),
    (lambda root: root.find("object/name").__setattr__("text", ""), "has no <name>"),
    (lambda root: root.remove(root.find("size")), "has no <size>"),
    (lambda root: [root.remove(o) for o in root.findall("object")], "has no <object>"),
])
def test_bad_annotation_is_named_with_its_problem(synthetic, tmp_path, edit, problem):
    root, path = copy_with_annotation(synthetic, tmp_path, edit)
    with pytest.raises(cli.UsageError) as error:
        voc.check_voc_split(root, "train")
    assert path in str(error.value) and problem in str(error.value)


def test_train_ssd_exits_2_naming_a_corrupt_annotation_file(synthetic, tmp_path, capsys):
    root, path = copy_with_annotation(synthetic, tmp_path,
                                      lambda r: r.find("object").remove(r.find("object/difficult")))
    assert run_train_ssd(["--dataset", root, "--network", "binary_densenet28", "--data-shape", "128"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: bad VOC annotation") and path in err and "<difficult>" in err


def test_train_ssd_exits_2_for_a_backbone_checkpoint_of_another_network(synthetic, tmp_path, capsys):
    save_classifier(tmp_path / "melius.params", "meliusnet22")
    argv = thin_run_flags(synthetic, str(tmp_path) + os.sep) + ["--backbone-params", str(tmp_path / "melius.params")]
    assert run_train_ssd(argv) == 2
    assert "melius.params is not a binary_densenet28 checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "voc", "--dataset-root", "/nonexistent/voc"], "Pascal VOC not found: /nonexistent/voc/VOC2007"),
    (["--dataset", "/nonexistent/folder"], "/nonexistent/folder: no such folder"),
    (["--dataset", "coco", "--dataset-root", "/nonexistent/coco"], "coco"),
])
def test_train_ssd_exits_2_for_a_missing_dataset(argv, message, capsys):
    assert run_train_ssd(argv) == 2
    assert message in capsys.readouterr().err


# ---- training and detection ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(synthetic, tmp_path_factory):
    """A thin binary SSD trained for a few epochs by train_ssd.py (the command of docs/detection.md)."""
    out = str(tmp_path_factory.mktemp("run")) + os.sep
    argv = thin_run_flags(synthetic, out) + [
        "--epochs", str(EPOCHS), "--lr", str(LR), "--val-interval", "2", "--save-interval", "5",
        "--log-interval", "2", "--seed", "1"]
    assert run_train_ssd(argv) == 0
    prefix = out + "ssd_%d_binary_densenet28_custom" % DATA_SHAPE
    with open(prefix + "_summary.json") as f:
        summary = json.load(f)
    with open(prefix + "_history.json") as f:
        history = json.load(f)
    return dict(prefix=prefix, summary=summary, history=history, argv=argv, out=out)


def untrained_map(synthetic):
    """The validation mAP of the thin SSD as train_ssd.py initialises it."""
    opt = train_ssd.parse_args(thin_run_flags(synthetic, ""))
    kind, train_dataset, val_dataset, classes = ssd_training.get_dataset(opt)
    net = ssd_training.build_network("ssd_%d_binary_densenet28_custom" % DATA_SHAPE, kind, classes, opt, [mx.cpu()])
    _, val_data, _ = ssd_training.get_dataloaders(net, train_dataset, val_dataset, opt, 8)
    metric = ssd_training.val_metric(kind, val_dataset, classes, opt, "")
    return ssd_training.validate(net, val_data, [mx.cpu()], metric)[1][-1]


def test_training_lowers_the_loss_and_raises_map_far_above_an_untrained_net(trained, synthetic):
    history = trained["history"]
    losses = [ce + l1 for ce, l1 in zip(history["train_crossentropy_loss"], history["train_smoothl1_loss"])]
    assert len(losses) == EPOCHS
    assert np.mean(losses[-3:]) < 0.7 * losses[0], losses
    best, baseline = trained["summary"]["best_map"], untrained_map(synthetic)
    assert best > max(MIN_MAP, 5 * baseline), (best, baseline)
    assert set(trained["summary"]["best_ap"]) == set(CLASSES)


def test_training_writes_atomic_checkpoints_curves_and_logs(trained):
    prefix, out = trained["prefix"], trained["out"]
    for suffix in ("_best.params", "_curves.png", "_train.log", "_best_map.log", "_history.json"):
        assert os.path.isfile(prefix + suffix), suffix
    final = [f for f in os.listdir(out) if f.startswith(os.path.basename(prefix) + "_%04d_" % (EPOCHS - 1))]
    stem = next(f for f in final if f.endswith(".params"))[:-len(".params")]
    # a checkpoint unit (params, states, the progress --resume auto continues from) and its pair record
    assert sorted(final) == [stem + suffix for suffix in (".pair.json", ".params", ".progress.json", ".states")]
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]
    with open(prefix + "_train.log") as f:
        log = f.read()
    assert "Speed:" in log and "mAP=" in log and all("\n%s=" % c in log for c in CLASSES)


def run_detect(argv):
    return subprocess.run([sys.executable, os.path.join(REPO, "detection", "detect.py")] + argv,
                          capture_output=True, text=True, timeout=300)


def test_best_checkpoint_reloads_and_detect_py_writes_pngs_and_prints_json(trained, synthetic, tmp_path):
    net = thin_ssd()
    net.load_parameters(trained["prefix"] + "_best.params")
    images = [os.path.join(synthetic, "JPEGImages", i + ".jpg") for i in voc.read_split(synthetic, "val")[:4]]
    out = run_detect(["--network", "ssd_%d_binary_densenet28_custom" % DATA_SHAPE, "--params",
                      trained["prefix"] + "_best.params", "--thresh", "0.1", "--output-dir", str(tmp_path)] + images)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert [r["image"] for r in result] == images
    for entry in result:
        with open(entry["output"], "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        for detection in entry["detections"]:
            assert detection["class"] in CLASSES and detection["score"] >= 0.1
            assert all(0 <= v <= 128 for v in detection["box"])
    assert any(entry["detections"] for entry in result), "the trained net finds shapes"


def test_detect_py_exits_2_for_a_custom_network_without_its_classes(trained, synthetic, tmp_path):
    params = str(tmp_path / "copy.params")
    shutil.copy(trained["prefix"] + "_best.params", params)  # no summary beside it
    image = os.path.join(synthetic, "JPEGImages", voc.read_split(synthetic, "val")[0] + ".jpg")
    out = run_detect(["--network", "ssd_%d_binary_densenet28_custom" % DATA_SHAPE, "--params", params, image])
    assert out.returncode == 2 and "needs its classes" in out.stderr


def test_resume_continues_from_a_checkpoint_with_its_trainer_states(trained):
    checkpoint = [f for f in os.listdir(trained["out"]) if f.endswith(".params") and "_0004_" in f]
    assert len(checkpoint) == 1, "--save-interval 5 saves epoch 4"
    states = trained["out"] + checkpoint[0].replace(".params", ".states")
    assert os.path.isfile(states)
    argv = list(trained["argv"])
    argv[argv.index("--epochs") + 1] = "6"
    argv[argv.index("--save-prefix") + 1] = trained["out"] + "resumed_"
    assert run_train_ssd(argv + ["--resume", trained["out"] + checkpoint[0], "--start-epoch", "5"]) == 0
    with open(trained["out"] + "resumed_ssd_%d_binary_densenet28_custom_history.json" % DATA_SHAPE) as f:
        assert len(json.load(f)["train_crossentropy_loss"]) == 1


def test_train_ssd_stopped_by_sigterm_keeps_its_last_checkpoint_and_resume_auto_continues(synthetic, tmp_path,
                                                                                         capsys, monkeypatch):
    """Detection stops at once (no mid-epoch checkpoint): exit 143, one line naming the epoch-0 checkpoint, no
    temporary or lock; --resume auto continues at epoch 1."""
    import signal
    from binary_models.data.datasets import ShardSampler
    out = str(tmp_path) + os.sep
    argv = thin_run_flags(synthetic, out) + ["--epochs", "2", "--save-interval", "1", "--max-batches", "2"]
    original, calls = ShardSampler.set_epoch, []

    def set_epoch(self, epoch, skip=0):
        calls.append(epoch)
        if epoch == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, epoch, skip)
    monkeypatch.setattr(ShardSampler, "set_epoch", set_epoch)
    assert run_train_ssd(argv) == 143
    monkeypatch.undo()
    prefix = out + "ssd_%d_binary_densenet28_custom" % DATA_SHAPE
    [first] = glob.glob(prefix + "_0000_*.params")
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "stopped by SIGTERM: kept %s (the start of epoch 1); continue with --resume auto" % first)
    assert not [n for n in os.listdir(out) if n.startswith(".") or n == "run.lock"]
    assert run_train_ssd(argv + ["--resume", "auto"]) == 0
    assert "continuing from %s (the start of epoch 1)" % first in open(prefix + "_train.log").read()
    assert glob.glob(prefix + "_0001_*.params") and len(json.load(open(prefix + "_history.json"))["val_map"]) == 2
