"""Faults of the output folders (issue 27, causes 3, 5, 6): a folder that is a file or read-only, a full disk (a
file-size limit, as ``ulimit -f`` sets it: the OS refuses a write the way it does on a full disk), an output path
that is a folder. Each is one ``error:`` line naming the path and the OS's reason, exit status 2, nothing
half-written; predict still prints the predictions it computed.

Root writes into read-only folders: as root the commands run without CAP_DAC_OVERRIDE (``setpriv``)."""
import os
import resource
import shutil
import subprocess
import sys

import numpy as np
import pytest

from binary_models.commands import predict
from binary_models.commands.cli import run_script

from test_predict import save_trained, tiny_classifier, write_images
from test_train_imagenet import SMALL_RUN, image_folder  # noqa: F401  (a fixture)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILE_TOO_LARGE = os.strerror(27)  # EFBIG: what a write past the file-size limit gets


def bm(args, file_size_limit=None, read_only_folders_hold=False):
    """``python -m binary_models ARGS`` in a child process: under a file-size limit (bytes), or (as root)
    without the capability to write into read-only folders."""
    prefix = []
    if read_only_folders_hold and os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("root, and no setpriv to drop CAP_DAC_OVERRIDE")
        prefix = ["setpriv", "--bounding-set", "-dac_override"]

    def limit():
        if file_size_limit:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run(prefix + [sys.executable, "-m", "binary_models"] + [str(a) for a in args], cwd=REPO,
                          capture_output=True, text=True, preexec_fn=limit, timeout=600)


def expect_one_line(result, line):
    assert result.returncode == 2, result.stderr
    assert result.stderr == "error: %s\n" % line


def read_only_folder(path):
    path.mkdir()
    path.chmod(0o555)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    params = save_trained(str(root / "run"), tiny_classifier())
    images = write_images(str(root / "images"), np.random.RandomState(0))
    return dict(params=params, images=images)


# ---- predict --output-dir ------------------------------------------------------------------------------------

def test_predict_output_dir_that_is_a_file_is_refused_before_the_forward_pass(trained, tmp_path, capsys):
    (tmp_path / "out").write_text("a file")
    with pytest.raises(SystemExit) as exit_info:
        run_script(predict.main, ["--params", trained["params"], "--output-dir", str(tmp_path / "out")]
                   + trained["images"])
    out, err = capsys.readouterr()
    assert (exit_info.value.code, out) == (2, "")
    assert err == "error: --output-dir %s is a file, not a folder\n" % (tmp_path / "out")


def test_predict_read_only_output_dir_is_refused_before_the_forward_pass(trained, tmp_path):
    out = read_only_folder(tmp_path / "out")
    result = bm(["predict", "--params", trained["params"], "--output-dir", out] + trained["images"],
                read_only_folders_hold=True)
    expect_one_line(result, "--output-dir %s: cannot write there: %s" % (out, os.strerror(13)))
    assert result.stdout == "" and os.listdir(str(out)) == []


def test_predict_prints_its_predictions_when_a_png_path_is_a_folder(trained, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "image0_prediction.png").mkdir(parents=True)
    assert run_script(predict.main, ["--params", trained["params"], "--json"] + trained["images"]) == 0
    expected = capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        run_script(predict.main, ["--params", trained["params"], "--json", "--output-dir", str(out)]
                   + trained["images"])
    printed, err = capsys.readouterr()
    assert exit_info.value.code == 2
    assert err == "error: --output-dir %s: cannot write %s: %s\n" % (out, out / "image0_prediction.png",
                                                                    os.strerror(21))
    import json
    assert [r["top"] for r in json.loads(printed)] == [r["top"] for r in json.loads(expected)]
    assert os.listdir(str(out)) == ["image0_prediction.png"] and os.listdir(str(out / "image0_prediction.png")) == []


def test_predict_on_a_full_disk_prints_its_predictions_and_one_line(trained, tmp_path):
    out = tmp_path / "out"
    result = bm(["predict", "--params", trained["params"], "--output-dir", out] + trained["images"],
                file_size_limit=8192)
    expect_one_line(result, "--output-dir %s: cannot write %s: %s" % (out, out / "image0_prediction.png",
                                                                     FILE_TOO_LARGE))
    assert [line.split(":")[0] for line in result.stdout.splitlines() if not line.startswith(" ")][1:] \
        == trained["images"]  # the model's line, then each image's with its classes
    assert os.listdir(str(out)) == []  # no partial PNG, no temporary


# ---- convert --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("file_size_limit, failed", [(8192, "tiny-symbol.json"), (120000, "tiny-0000.params")],
                         ids=["at-the-symbol", "at-the-parameters"])
def test_convert_on_a_full_disk_names_the_write_the_path_and_the_reason(trained, tmp_path, file_size_limit, failed):
    """The packed symbol is 17 kB, its parameters 134 kB. MXNet cuts the symbol short without a word."""
    out = tmp_path / "packed"
    result = bm(["convert", "--params", trained["params"], "--output", out / "tiny"], file_size_limit=file_size_limit)
    expect_one_line(result, "--output %s: cannot write %s: %s" % (out / "tiny", out / failed, FILE_TOO_LARGE))
    assert os.listdir(str(out)) == []


# ---- training -------------------------------------------------------------------------------------------------

def train_args(image_folder, save_dir, *more):
    return ["train", "--data-dir", image_folder, "--num-epochs", "1", "--save-dir", save_dir] \
        + SMALL_RUN + list(more)


def test_training_into_a_read_only_save_dir_is_one_line(image_folder, tmp_path):
    save_dir = read_only_folder(tmp_path / "run")
    result = bm(train_args(image_folder, save_dir), read_only_folders_hold=True)
    expect_one_line(result, "--save-dir %s: cannot write there: %s" % (save_dir, os.strerror(13)))
    assert os.listdir(str(save_dir)) == []


def test_training_with_a_log_path_that_is_a_folder_is_one_line(image_folder, tmp_path):
    (tmp_path / "logs").mkdir()
    result = bm(train_args(image_folder, tmp_path / "run", "--logging-file", tmp_path / "logs"))
    expect_one_line(result, "--logging-file %s: cannot open the log file: %s" % (tmp_path / "logs", os.strerror(21)))
    assert os.listdir(str(tmp_path / "run")) == [] and os.listdir(str(tmp_path / "logs")) == []


def test_training_on_a_disk_full_at_the_first_checkpoint_is_one_line_and_leaves_no_partial_file(image_folder, tmp_path):
    save_dir = tmp_path / "run"
    result = bm(train_args(image_folder, save_dir), file_size_limit=200000)
    expect_one_line(result, "cannot write %s: %s" % (save_dir / "imagenet-meliusnet22-best.params", FILE_TOO_LARGE))
    assert sorted(os.listdir(str(save_dir))) == ["imagenet-meliusnet22-run.json", "train_imagenet.log"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
def test_training_whose_log_file_fills_up_warns_once_and_trains_on(image_folder, tmp_path):
    save_dir = tmp_path / "run"
    result = bm(train_args(image_folder, save_dir, "--logging-file", "/dev/full", "--max-batches", "2"))
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == ["warning: cannot write the log file /dev/full: %s; the rest of the log "
                                          "goes to the console only" % os.strerror(28)]  # not logging's tracebacks
    assert "best validation" in result.stdout  # the console kept the log
    assert "imagenet-meliusnet22-best.params" in os.listdir(str(save_dir))
