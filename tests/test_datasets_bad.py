"""Unreadable images in an image folder: reported with their path and skipped, never a traceback mid-epoch."""
import logging
import os
import sys

import cv2
import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from binary_models.commands import train_imagenet  # noqa: E402
from binary_models.commands import cli  # noqa: E402
from binary_models.data import datasets  # noqa: E402

CLASSES = ("a", "b", "c")


def write_folder(root, per_class, size=16):
    rng = np.random.RandomState(0)
    for name in CLASSES:
        os.makedirs(os.path.join(root, name))
        for i in range(per_class):
            cv2.imwrite(os.path.join(root, name, "%d.jpg" % i), rng.randint(0, 255, (size, size, 3)).astype(np.uint8))


@pytest.fixture
def folder(tmp_path):
    """train/ (4 images per class) and val/ (2 per class) with an unreadable image in each."""
    root = str(tmp_path / "data")
    write_folder(os.path.join(root, "train"), 4)
    write_folder(os.path.join(root, "val"), 2)
    with open(os.path.join(root, "train", "b", "1.jpg"), "wb") as f:
        f.write(b"not a jpeg at all")
    open(os.path.join(root, "val", "c", "0.jpg"), "w").close()  # empty
    return root


def test_unreadable_image_is_logged_and_replaced_by_the_next(folder, caplog):
    from gluoncv.data import ImageNet
    dataset = datasets.SkipUnreadable(ImageNet(folder, train=True))
    bad = [i for i, (path, _) in enumerate(dataset._dataset.items) if path.endswith(os.path.join("b", "1.jpg"))][0]
    with caplog.at_level(logging.WARNING, logger="binary_models"):
        image, label = dataset[bad]
    assert image.shape == (16, 16, 3) and label == dataset._dataset.items[bad + 1][1]
    assert "skipping unreadable image %s (" % os.path.join(folder, "train", "b", "1.jpg") in caplog.text
    assert "Invalid image file" in caplog.text


def test_folder_of_only_unreadable_images_is_an_error(tmp_path):
    from gluoncv.data import ImageNet
    os.makedirs(str(tmp_path / "train" / "a"))
    open(str(tmp_path / "train" / "a" / "0.jpg"), "w").close()
    with pytest.raises(cli.UsageError, match="no image of 1 can be read"):
        datasets.SkipUnreadable(ImageNet(str(tmp_path), train=True))[0]


@pytest.mark.parametrize("workers", ["0", "1"], ids=["in_process", "loader_worker"])
def test_training_on_a_folder_with_unreadable_images_finishes_and_logs_them(folder, tmp_path, capsys, workers):
    """Also from a loader's worker process, forked before the training's log file was opened."""
    save_dir = str(tmp_path / "run")
    argv = ["--model", "meliusnet22", "--stem", "thumbnail", "--input-size", "16", "--crop-ratio", "1",
            "--data-dir", folder, "--batch-size", "4", "-j", workers, "--num-epochs", "1", "--log-interval", "0",
            "--no-progress", "--save-dir", save_dir]
    try:
        status = cli.run_script(train_imagenet.main, argv)
    except SystemExit as exit_:
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 0, err
    with open(os.path.join(save_dir, "train_imagenet.log")) as f:
        log = f.read()
    for path in (os.path.join(folder, "train", "b", "1.jpg"), os.path.join(folder, "val", "c", "0.jpg")):
        assert "skipping unreadable image %s" % path in log
    assert "Traceback" not in err and os.path.isfile(os.path.join(save_dir, "summary.json"))
