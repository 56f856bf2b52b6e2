"""The sweep of bad command-line input: every flag of train_imagenet.py, detection/train_ssd.py,
detection/detect.py and ``python -m binary_models.stats|voc|predict|demo`` given a bad value exits with status 2
and ONE line ``error: ...`` naming the flag (or file), before any data is read or model trained; bad data files
(a cut-off or mismatched RecordIO file, a bad index, empty image folders, bad VOC annotations) the same; a
NaN loss stops training with the last good checkpoint kept."""
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest
import mxnet as mx

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from binary_models.commands import cli, demo, detect, predict, stats, synthetic_voc, train_imagenet, train_ssd  # noqa: E402
from binary_models.data import datasets, voc  # noqa: E402

# Each command's own flags come after these, so that a bad value that slipped through fails fast (a short
# run, a missing file) instead of passing.
COMMANDS = {
    "train_imagenet": (train_imagenet.main, ["--model", "meliusnet22", "--data-dir", "{tmp}/no_data",
                                            "--num-epochs", "1", "--save-dir", "{tmp}/run"]),
    "train_ssd": (train_ssd.main, ["--dataset", "{tmp}/no_dataset", "--save-prefix", "{tmp}/"]),
    "detect": (detect.main, ["--params", "{tmp}/none.params", "{tmp}/none.jpg"]),
    "stats": (stats.main, ["meliusnet22"]),
    "voc": (synthetic_voc.main, ["--train", "1", "--val", "1", "--size", "32"]),  # the rows give the folder
    "predict": (predict.main, ["--params", "{tmp}/none.params", "{tmp}/none.jpg"]),
    "demo": (demo.main, ["--output", "{tmp}/demo"]),
}

# (command, its flags, what the one error line must contain)
ROWS = [
    ("train_imagenet", ["--batch-size", "-4"], "argument --batch-size: must be an integer >= 1, got -4"),
    ("train_imagenet", ["--batch-size", "0"], "argument --batch-size"),
    ("train_imagenet", ["--num-epochs", "0"], "argument --num-epochs"),
    ("train_imagenet", ["--lr", "0"], "argument --lr: must be a number > 0"),
    ("train_imagenet", ["--lr", "-1"], "argument --lr"),
    ("train_imagenet", ["--lr", "nan"], "argument --lr"),
    ("train_imagenet", ["--resume-epoch", "5"], "--resume-epoch 5 must be below --num-epochs 1"),
    ("train_imagenet", ["--mixup", "--mixup-alpha", "-1"], "argument --mixup-alpha"),
    ("train_imagenet", ["--mixup-off-epoch", "5"], "--mixup-off-epoch 5"),
    ("train_imagenet", ["--input-size", "0"], "argument --input-size"),
    ("train_imagenet", ["--input-size", "3", "--stem", "thumbnail"],
     "--input-size 3 is too small for meliusnet22: it needs at least 8"),
    ("train_imagenet", ["--input-size", "20"], "--input-size 20 is too small for meliusnet22: it needs at least 29"),
    ("train_imagenet", ["--dataset", "digits", "--input-size", "7"], "--input-size 7 is too small for meliusnet22"),
    ("train_imagenet", ["--dtype", "float16"], "--dtype float16 needs GPUs"),
    ("train_imagenet", ["--dtype", "float64"], "argument --dtype: invalid choice"),
    ("train_imagenet", ["--num-gpus", "1"], "--num-gpus 1: no GPU is available"),
    ("train_imagenet", ["--num-gpus", "-1"], "argument --num-gpus"),
    ("train_imagenet", ["--save-dir", "{tmp}/a_file"], "--save-dir {tmp}/a_file is a file"),
    ("train_imagenet", ["--crop-ratio", "1.5"], "argument --crop-ratio"),
    ("train_imagenet", ["-j", "-1"], "--num-data-workers"),
    ("train_imagenet", ["--warmup-epochs", "2", "--num-epochs", "2"], "--warmup-epochs 2 must be below --num-epochs 2"),
    ("train_imagenet", ["--warmup-lr", "-1"], "argument --warmup-lr"),
    ("train_imagenet", ["--lr-decay-epoch", "10,x"], "argument --lr-decay-epoch"),
    ("train_imagenet", ["--lr-decay-epoch", "0,10"], "argument --lr-decay-epoch"),
    ("train_imagenet", ["--lr-decay-period", "-1"], "argument --lr-decay-period"),
    ("train_imagenet", ["--lr-decay", "0"], "argument --lr-decay"),
    ("train_imagenet", ["--lr-mode", "exp"], "argument --lr-mode: invalid choice"),
    ("train_imagenet", ["--momentum", "2"], "argument --momentum"),
    ("train_imagenet", ["--wd", "-1"], "argument --wd"),
    ("train_imagenet", ["--hard-weight", "2"], "argument --hard-weight"),
    ("train_imagenet", ["--temperature", "0"], "argument --temperature"),
    ("train_imagenet", ["--seed", "-1"], "argument --seed"),
    ("train_imagenet", ["--optimizer", "lamb"], "argument --optimizer: invalid choice"),
    ("train_imagenet", ["--log-interval", "-1"], "argument --log-interval"),
    ("train_imagenet", ["--save-frequency", "-1"], "argument --save-frequency"),
    ("train_imagenet", ["--binarizations", "0"], "argument --binarizations"),
    ("train_imagenet", ["--clip-threshold", "0"], "argument --clip-threshold"),
    ("train_imagenet", ["--bipolar-reg", "-1"], "argument --bipolar-reg"),
    ("train_imagenet", ["--bits", "9"], "argument --bits: invalid choice"),
    ("train_imagenet", ["--classes", "0"], "argument --classes"),
    ("train_imagenet", ["--teacher-params", "t.params"], "--teacher-params needs --teacher"),
    ("train_imagenet", ["--dataset", "digits", "--use-rec"], "--use-rec"),
    ("train_imagenet", ["--model", "nosuchnet"], "nosuchnet"),
    ("train_ssd", ["--batch-size", "-2"], "argument --batch-size: must be an integer >= 1, got -2"),
    ("train_ssd", ["--batch-size", "0"], "argument --batch-size"),
    ("train_ssd", ["--val-interval", "0"], "argument --val-interval"),
    ("train_ssd", ["--save-interval", "-1"], "argument --save-interval"),
    ("train_ssd", ["--data-shape", "16"], "argument --data-shape: must be an integer >= 32, got 16"),
    ("train_ssd", ["--gpus", "abc"], "argument --gpus"),
    ("train_ssd", ["--gpus", "0,0"], "argument --gpus"),
    ("train_ssd", ["--gpus", "0"], "--gpus 0: no GPU is available"),
    ("train_ssd", ["--epochs", "0"], "argument --epochs"),
    ("train_ssd", ["--start-epoch", "3", "--epochs", "3"], "--start-epoch 3 must be below --epochs 3"),
    ("train_ssd", ["--warmup-epochs", "5", "--epochs", "3"], "--warmup-epochs 5 must be below --epochs 3"),
    ("train_ssd", ["--extra-filters", "1,2"], "argument --extra-filters: needs 4 positive channel counts"),
    ("train_ssd", ["--growth", "0"], "argument --growth"),
    ("train_ssd", ["--init-channels", "-16"], "argument --init-channels"),
    ("train_ssd", ["--num-workers", "-1"], "--num-workers"),
    ("train_ssd", ["--lr", "-1"], "argument --lr"),
    ("train_ssd", ["--seed", "x"], "argument --seed"),
    ("train_ssd", ["--stem", "9x9"], "argument --stem: invalid choice"),
    ("train_ssd", ["--save-prefix", "{tmp}/a_file/run_"], "--save-prefix {tmp}/a_file/run_: {tmp}/a_file is a file"),
    ("detect", ["--data-shape", "-5"], "argument --data-shape: must be an integer >= 32, got -5"),
    ("detect", ["--gpus", "abc"], "argument --gpus"),
    ("detect", ["--gpus", "0"], "--gpus 0: no GPU is available"),
    ("detect", ["--gpus", "0,1"], "--gpus 0,1: detect.py uses one GPU"),
    ("detect", ["--thresh", "2"], "argument --thresh"),
    ("stats", ["--input-size", "0"], "argument --input-size"),
    ("stats", ["--input-size", "-8"], "argument --input-size"),
    ("stats", ["--input-size", "3"], "--input-size 3 is too small for meliusnet22: it needs at least 29"),
    ("stats", ["--stem", "9x9"], "argument --stem: invalid choice"),
    ("stats", ["nosuchnet"], "nosuchnet"),
    ("voc", ["{tmp}/voc", "--size", "3"], "argument --size: must be an integer >= 20, got 3"),
    ("voc", ["{tmp}/voc", "--train", "-3"], "argument --train"),
    ("voc", ["{tmp}/voc", "--val", "0"], "argument --val"),
    ("voc", ["{tmp}/a_file"], "{tmp}/a_file is a file"),
    ("predict", ["--batch-size", "0"], "argument --batch-size"),
    ("predict", ["--top", "-1"], "argument --top"),
    ("predict", ["--crop-ratio", "0"], "argument --crop-ratio"),
    ("predict", ["--input-size", "-1"], "argument --input-size"),
    ("demo", ["--epochs", "0"], "argument --epochs"),
    ("demo", ["--batch-size", "-1"], "argument --batch-size"),
    ("demo", ["--lr", "0"], "argument --lr"),
    ("demo", ["--input-size", "4"], "--input-size 4 is too small for meliusnet22"),
    ("demo", ["--output", "{tmp}/a_file"], "--output {tmp}/a_file is a file"),
]


def row_id(row):
    command, argv, _ = row
    return "%s %s" % (command, " ".join(a.replace("{tmp}/", "") for a in argv))


def run_command(main, argv, capsys):
    """``main(argv)`` as the command line runs it: ``(exit status, stdout, stderr)``."""
    try:
        status = cli.run_script(main, argv)
    except SystemExit as exit_:
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def expect_one_error_line(status, err, fragment):
    assert status == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert fragment in err, err


@pytest.mark.parametrize("command, argv, fragment", ROWS, ids=[row_id(r) for r in ROWS])
def test_bad_flag_exits_2_with_one_line_naming_it(command, argv, fragment, tmp_path, capsys):
    main, base = COMMANDS[command]
    (tmp_path / "a_file").write_text("not a folder\n")
    fill = lambda args: [a.format(tmp=tmp_path) for a in args]
    status, _, err = run_command(main, fill(base + argv), capsys)
    expect_one_error_line(status, err, fragment.format(tmp=tmp_path))
    assert not os.path.exists(tmp_path / "run") and not os.path.exists(tmp_path / "voc"), "nothing is written"


def test_the_sweep_covers_every_command_line():
    assert set(command for command, _, _ in ROWS) == set(COMMANDS)
    assert len(ROWS) >= 40


# ---- data files ------------------------------------------------------------------------------------------
def write_records(prefix, count=6, size=16):
    """``prefix.rec`` + ``prefix.idx``: ``count`` random JPEG images of two classes."""
    rng = np.random.RandomState(0)
    record = mx.recordio.MXIndexedRecordIO(prefix + ".idx", prefix + ".rec", "w")
    for i in range(count):
        image = rng.randint(0, 255, size=(size, size, 3)).astype(np.uint8)
        record.write_idx(i, mx.recordio.pack_img(mx.recordio.IRHeader(0, float(i % 2), i, 0), image, quality=90))
    record.close()
    return prefix


def cut(path, size):
    with open(path, "r+b") as f:
        f.truncate(size)


@pytest.fixture
def records(tmp_path):
    """train and val RecordIO files, and the flags that read them."""
    train, val = write_records(str(tmp_path / "train")), write_records(str(tmp_path / "val"))
    flags = ["--model", "meliusnet22", "--stem", "thumbnail", "--input-size", "16", "--use-rec", "--classes", "2",
             "--batch-size", "2", "--num-epochs", "1", "-j", "0", "--no-progress", "--save-dir", str(tmp_path / "run"),
             "--rec-train", train + ".rec", "--rec-train-idx", train + ".idx", "--rec-val", val + ".rec",
             "--rec-val-idx", val + ".idx"]
    return dict(train=train, flags=flags, size=os.path.getsize(train + ".rec"))


def test_records_written_here_pass_the_check(records):
    assert datasets.check_record_file(records["train"] + ".rec", records["train"] + ".idx") == 6


@pytest.mark.parametrize("damage, fragment", [
    (lambda r: cut(r["train"] + ".rec", (r["size"] - 40) // 4 * 4 + 1), "--rec-train {train}.rec is cut short"),
    (lambda r: cut(r["train"] + ".rec", 0), "--rec-train {train}.rec is empty"),
    (lambda r: open(r["train"] + ".idx", "a").write("7\tseven\n"), "--rec-train-idx {train}.idx: line 7"),
    (lambda r: open(r["train"] + ".idx", "w").close(), "--rec-train-idx {train}.idx lists no records"),
    (lambda r: open(r["train"] + ".idx", "a").write("6\t13\n"), "--rec-train {train}.rec has no record at byte 13"),
], ids=["rec cut at an unaligned byte", "empty rec", "idx line not key-offset", "empty idx", "idx of another rec"])
def test_bad_record_file_exits_2_naming_it(records, damage, fragment, capsys):
    damage(records)
    status, _, err = run_command(train_imagenet.main, records["flags"], capsys)
    expect_one_error_line(status, err, fragment.format(**records))


def test_rec_cut_at_a_4_byte_boundary_exits_2_instead_of_crashing_mxnet(records):
    """The cut that made ImageRecordIter segfault: in a process of its own, in case it still does."""
    cut(records["train"] + ".rec", (records["size"] - 40) // 4 * 4)
    result = subprocess.run([sys.executable, os.path.join(REPO, "train_imagenet.py")] + records["flags"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert error_lines == [line for line in result.stderr.splitlines() if "Traceback" in line or "error" in line]
    assert len(error_lines) == 1 and "--rec-train %s.rec is cut short" % records["train"] in error_lines[0]


def write_folder(root, classes, per_class, size=16):
    rng = np.random.RandomState(0)
    for name in classes:
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i in range(per_class):
            cv2.imwrite(os.path.join(root, name, "%d.jpg" % i), rng.randint(0, 255, (size, size, 3)).astype(np.uint8))


@pytest.mark.parametrize("make, fragment", [
    (lambda d: [os.makedirs(os.path.join(d, s)) for s in ("train", "val")],
     "--data-dir {d}/train has no class folders"),
    (lambda d: open(os.path.join(d, "train"), "w").close() or write_folder(os.path.join(d, "val"), "ab", 1),
     "--data-dir train folder not found: {d}/train"),
    (lambda d: [write_folder(os.path.join(d, s), "ab", 0) for s in ("train", "val")],
     "--data-dir {d}/train: its class folders hold no images"),
    (lambda d: write_folder(os.path.join(d, "train"), "ab", 2) or write_folder(os.path.join(d, "train"), "c", 0)
     or write_folder(os.path.join(d, "val"), "abc", 1), "--data-dir {d}/train: class folder c holds no images"),
], ids=["empty train and val folders", "train is not a folder", "class folders without images",
        "one class folder without images"])
def test_bad_image_folder_exits_2_naming_it(make, fragment, tmp_path, capsys):
    data_dir = str(tmp_path / "data")
    os.makedirs(data_dir)
    make(data_dir)
    status, _, err = run_command(train_imagenet.main, ["--model", "meliusnet22", "--data-dir", data_dir, "--stem",
                                                       "thumbnail", "--input-size", "16", "--save-dir",
                                                       str(tmp_path / "run")], capsys)
    expect_one_error_line(status, err, fragment.format(d=data_dir))


# ---- VOC annotations ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_voc(tmp_path_factory):
    return voc.make_synthetic_voc(str(tmp_path_factory.mktemp("voc")), num_train=4, num_val=2, size=32)


def set_text(path, values):
    """Set the text of the first element of each ``{xpath: text}`` in the XML file ``path``."""
    tree = ET.parse(path)
    for xpath, text in values.items():
        tree.getroot().find(xpath).text = text
    tree.write(path)


@pytest.mark.parametrize("damage, fragment", [
    (lambda a, j: set_text(a, {"size/width": "inf", "object/bndbox/xmax": "inf"}), "{a}: <size> <width> is 'inf'"),
    (lambda a, j: set_text(a, {"object/bndbox/xmax": "nan"}), "{a}: object 1"),
    (lambda a, j: set_text(a, {"size/width": "64", "size/height": "64"}), "{a}: <size> is 64x64, but the image"),
    (lambda a, j: set_text(a, {"object/bndbox/xmin": "20", "object/bndbox/xmax": "10"}), "{a}: object 1"),
    (lambda a, j: open(j, "wb").write(b"not a jpeg"), "{j}: is not a readable image"),
    (lambda a, j: open(a, "w").write("<annotation><size>"), "{a}: is not well-formed XML"),
], ids=["inf width and xmax", "nan xmax", "size not the image's", "xmax before xmin", "corrupt jpeg", "cut xml"])
def test_bad_voc_file_exits_2_naming_it(small_voc, damage, fragment, tmp_path, capsys):
    root = str(tmp_path / "voc")
    shutil.copytree(small_voc, root)
    first = voc.read_split(root, "train")[0]
    annotation = os.path.join(root, "Annotations", first + ".xml")
    image = os.path.join(root, "JPEGImages", first + ".jpg")
    damage(annotation, image)
    status, _, err = run_command(train_ssd.main, ["--dataset", root, "--data-shape", "64"], capsys)
    assert status == 2 and err.startswith("error: bad VOC annotation"), err
    assert fragment.format(a=annotation, j=image) in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("kwargs, argument", [
    (dict(size=3), "size 3"), (dict(num_train=-3), "num_train"), (dict(num_val=0), "num_val")])
def test_synthetic_voc_api_refuses_sizes_that_make_bad_boxes(kwargs, argument, tmp_path):
    with pytest.raises(ValueError, match=argument):
        voc.make_synthetic_voc(str(tmp_path), **kwargs)
    assert not os.listdir(tmp_path)


def test_smallest_synthetic_size_writes_valid_boxes(tmp_path):
    root = voc.make_synthetic_voc(str(tmp_path), num_train=30, num_val=1, size=voc.SYNTHETIC_MIN_SIZE, seed=1)
    assert voc.check_voc_split(root, "train")


# ---- non-finite losses -------------------------------------------------------------------------------------
def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    """A run resumed from a good checkpoint with a learning rate that blows the weights up."""
    import binary_models as bm
    save_dir = str(tmp_path / "run")
    os.makedirs(save_dir)
    best = os.path.join(save_dir, "imagenet-meliusnet22-best.params")
    net = bm.get_model("meliusnet22", stem="thumbnail", classes=10)
    net.initialize(mx.init.Xavier())
    net(mx.nd.zeros((1, 3, 8, 8)))
    net.save_parameters(best)
    with open(best, "rb") as f:
        good = f.read()
    flags = ["--model", "meliusnet22", "--dataset", "digits", "--input-size", "8", "--batch-size", "256",
             "--log-interval", "1", "--no-progress", "--save-dir", save_dir, "--num-epochs", "2", "--resume-epoch", "1",
             "--resume-params", best, "--lr", "1e30"]
    status, _, err = run_command(train_imagenet.main, flags, capsys)
    expect_one_error_line(status, err, "the last good checkpoint is %s" % best)
    assert re.search(r"error: the training loss is (nan|inf|-inf) at epoch 1 batch \d+;", err), err
    with open(best, "rb") as f:
        assert f.read() == good, "the best checkpoint is kept"
    assert sorted(os.listdir(save_dir)) == ["imagenet-meliusnet22-best.params", "imagenet-meliusnet22-run.json",
                                            "train_imagenet.log"], \
        "no checkpoint of the diverged weights, and the run's lock is released"


def test_nan_loss_stops_ssd_training(tmp_path, capsys):
    root = voc.make_synthetic_voc(str(tmp_path / "voc"), num_train=4, num_val=2, size=64)
    flags = ["--network", "binary_densenet28", "--data-shape", "64", "--dataset", root, "--batch-size", "2",
             "--num-workers", "0", "--save-prefix", str(tmp_path / "run_"), "--no-progress", "--growth", "16",
             "--init-channels", "16", "--stem", "7x7", "--extra-filters", "32,32,16,16", "--epochs", "2",
             "--lr", "1e30"]
    status, _, err = run_command(train_ssd.main, flags, capsys)
    expect_one_error_line(status, err, "no checkpoint was written yet")
    assert re.search(r"error: the training loss is (nan|inf|-inf) at epoch 0 batch \d+;", err), err
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".params")]


class Run:
    """A TrainingRun over a small dense net, writing into ``folder``."""

    def __init__(self, folder, save_frequency=1):
        from binary_models.train.loop import RunFiles, TrainingRun
        prefix = os.path.join(folder, "net")
        self.files = RunFiles(prefix, "-", history=prefix + "-history.json", curves=prefix + "-curves.png",
                              summary=prefix + "-summary.json", log=prefix + ".log")
        self.run = TrainingRun(self.files, dict(model="dense", model_kwargs={}, input_size=1, classes=2),
                               ("loss", "score"), "score", num_epochs=3, save_frequency=save_frequency,
                               progress=False)
        self.net = mx.gluon.nn.Dense(2, in_units=3)
        self.net.initialize()


def test_training_run_names_the_newest_checkpoint_when_the_loss_turns_nan(tmp_path):
    from binary_models.train.loop import TrainingDiverged
    run = Run(str(tmp_path))
    run.run.end_epoch(0, {"loss": 1.0, "score": 0.5}, run.net)
    run.run.check_loss(0.7, 1, 0)
    with pytest.raises(TrainingDiverged, match="loss is inf at epoch 1 batch 3; the last good checkpoint is %s"
                       % re.escape(run.files.checkpoint("0") + ".params")):
        run.run.check_loss(float("inf"), 1, 3)


def test_training_run_never_saves_non_finite_weights(tmp_path):
    from binary_models.train.loop import TrainingDiverged
    run = Run(str(tmp_path))
    run.run.end_epoch(0, {"loss": 1.0, "score": 0.5}, run.net)
    saved = sorted(os.listdir(tmp_path))
    run.net.weight.set_data(run.net.weight.data() * float("nan"))
    with pytest.raises(TrainingDiverged, match="parameter .*weight is not finite at the end of epoch 1; the last "
                                               "good checkpoint is"):
        run.run.end_epoch(1, {"loss": 0.5, "score": 0.9}, run.net)
    assert "run.lock" in saved  # held while the run lives, removed when it stops; nothing else changed
    assert sorted(os.listdir(tmp_path)) == [name for name in saved if name != "run.lock"]


def cyclic_packed_model(root):
    """A model file whose graph has a cycle (its first layer reads the last one's output)."""
    import json
    net = mx.gluon.nn.HybridSequential()
    net.add(mx.gluon.nn.Dense(4), mx.gluon.nn.Dense(3))
    net.initialize()
    net.hybridize()
    net(mx.nd.zeros((1, 5)))
    prefix = os.path.join(root, "cyclic")
    net.export(prefix)
    with open(prefix + "-symbol.json") as f:
        graph = json.load(f)
    layers = [i for i, node in enumerate(graph["nodes"]) if node["op"] == "FullyConnected"]
    graph["nodes"][layers[0]]["inputs"][0] = [layers[1], 0, 0]
    with open(prefix + "-symbol.json", "w") as f:
        json.dump(graph, f)
    image = os.path.join(root, "image.png")
    cv2.imwrite(image, np.zeros((20, 20, 3), np.uint8))
    return ["predict", "--packed", prefix, image]


def text_only_class_folders(root):
    for split in ("train", "val"):
        for name in ("a", "b"):
            os.makedirs(os.path.join(root, split, name))
            with open(os.path.join(root, split, name, "notes.txt"), "w") as f:
                f.write("not an image\n")
    return ["train", "--model", "meliusnet22", "--data-dir", root, "--save-dir", os.path.join(root, "run")]


@pytest.mark.parametrize("make, fragment", [
    (cyclic_packed_model, "error: the model cannot run on 224x224 inputs: "),
    (text_only_class_folders, "error: --data-dir {root}/train: its class folders hold no images"),
], ids=["cyclic-graph", "text-only-class-folders"])
def test_mxnet_warnings_do_not_come_before_the_error_line(make, fragment, tmp_path):
    """MXNet warns (UserWarning) about what it then fails on: the error stands alone."""
    args = make(str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "binary_models"] + args, capture_output=True, text=True,
                            cwd=REPO, timeout=300)
    assert result.returncode == 2
    assert result.stderr.startswith(fragment.format(root=tmp_path)) and result.stderr.count("\n") == 1, result.stderr


def test_warnings_held_until_success_issues_them_after_a_success_and_drops_them_after_an_error():
    import warnings
    from binary_models.errors import warnings_held_until_success
    with pytest.warns(UserWarning, match="kept"):
        with warnings_held_until_success():
            warnings.warn("kept", UserWarning)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(ValueError):
            with warnings_held_until_success():
                warnings.warn("dropped", UserWarning)
                raise ValueError("the error")
    assert [str(w.message) for w in seen] == []
