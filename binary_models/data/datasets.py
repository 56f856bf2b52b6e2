"""Classification data for ``train_imagenet.py``: ImageNet as RecordIO (MXNet's ``ImageRecordIter``) or as
an image folder (Gluon transforms, as in GluonCV's script), and the embedded digits data set.

Every source returns a :class:`ClassificationData`: loaders that yield GluonCV-style batches, a
``batch_fn(batch, ctx)`` that splits a batch over devices, and the sizes the training loop needs.
Training data is sharded by ``(part_index, num_parts)`` for MXNet's distributed kvstore.
The digits' arrays are in :mod:`.digits`.
"""
import collections
import contextlib
import logging
import mmap
import os
import struct
import sys
import time

import numpy as np
import mxnet as mx
from mxnet import gluon
from mxnet.gluon.data import DataLoader, Dataset
from mxnet.gluon.data.sampler import Sampler

from ..errors import UsageError, error_line, warnings_held_until_success
from .digits import DIGITS_CLASSES, DIGITS_SIZE, digits_datasets
from .transforms import MEAN_RGB, STD_RGB, imagenet_preprocessing, validation_transform

JITTER = 0.4    # colour jitter of brightness, contrast and saturation
LIGHTING = 0.1  # AlexNet-style PCA lighting noise

ClassificationData = collections.namedtuple(
    "ClassificationData", "train val batch_fn num_train classes input_size start_epoch")
ClassificationData.__doc__ = """Training and validation batches of one worker. ``start_epoch(epoch, first=0)``
readies ``train`` for an epoch from its batch ``first`` (its order is a function of the seed and the epoch, so a
resumed run replays it); ``num_train`` is the number of training samples of this worker."""


class ShardSampler(Sampler):
    """Samples ``part_index``'s share of a dataset: every epoch a permutation seeded by ``(seed, epoch)``
    (the same on every worker), of which each of ``num_parts`` workers takes every ``num_parts``-th index.
    Each shard is balanced across classes, and a resumed run replays the same order."""

    def __init__(self, length, num_parts=1, part_index=0, seed=0, shuffle=True):
        self.length, self.num_parts, self.part_index = length, num_parts, part_index
        self.seed, self.shuffle, self.epoch, self.skip = seed, shuffle, 0, 0

    def set_epoch(self, epoch, skip=0):
        """Sample ``epoch``'s order, from its ``skip``-th index on (a run continued mid-epoch)."""
        self.epoch, self.skip = epoch, skip

    def __iter__(self):
        order = (np.random.RandomState(self.seed + self.epoch).permutation(self.length) if self.shuffle
                 else np.arange(self.length))
        return iter(order[self.part_index::self.num_parts][self.skip:len(self)].tolist())

    def __len__(self):
        return self.length // self.num_parts


def _split_batch(data, label, ctx):
    return (gluon.utils.split_and_load(data, ctx_list=ctx, batch_axis=0, even_split=False),
            gluon.utils.split_and_load(label, ctx_list=ctx, batch_axis=0, even_split=False))


def _loader_data(train_set, val_set, batch_size, num_workers, shard, seed, classes, input_size):
    sampler = ShardSampler(len(train_set), shard[1], shard[0], seed)
    if len(sampler) < batch_size:
        raise UsageError("the training set has %d samples for this worker, fewer than one batch of %d"
                         % (len(sampler), batch_size))
    train = DataLoader(train_set, batch_size=batch_size, sampler=sampler, last_batch="discard",
                       num_workers=num_workers)
    val = DataLoader(val_set, batch_size=batch_size, shuffle=False, last_batch="keep", num_workers=num_workers)
    return ClassificationData(train, val, lambda batch, ctx: _split_batch(batch[0], batch[1], ctx),
                              len(sampler), classes, input_size,
                              lambda epoch, first=0: sampler.set_epoch(epoch, first * batch_size))


def digits_data(batch_size, size=DIGITS_SIZE, shard=(0, 1), seed=0, **unused):
    """The embedded digits as :class:`ClassificationData` (in memory: no loader processes needed)."""
    train_set, val_set = digits_datasets(size)
    return _loader_data(train_set, val_set, batch_size, 0, shard, seed, DIGITS_CLASSES, size)


def _require(path, what):
    path = os.path.expanduser(path)
    if not os.path.exists(path):
        raise UsageError("%s not found: %s" % (what, path), what)
    return path


class SkipUnreadable(Dataset):
    """An image folder dataset (``items`` of ``(path, label)``) whose unreadable images (not an image, empty,
    cut short before the image data) are logged with their path and replaced by the next readable one, so
    that one bad file never stops an epoch. ``logger``: where the skip is reported. A loader's worker process
    was forked before the training set its logger up: there the line goes to stderr and is appended to
    ``log_file``, the training's log."""

    def __init__(self, dataset, logger="binary_models", log_file=None):
        self._dataset, self._logger, self._log_file = dataset, logger, log_file
        self._pid = os.getpid()

    def _report(self, message):
        if os.getpid() == self._pid or not self._log_file:
            logging.getLogger(self._logger).warning(message)
            return
        line = "%s %s\n" % (time.strftime("%Y-%m-%d %H:%M:%S"), message)  # as training.setup_logger formats
        sys.stderr.write(line)
        with contextlib.suppress(OSError), open(self._log_file, "a") as f:
            f.write(line)

    def __len__(self):
        return len(self._dataset)

    def __getitem__(self, idx):
        for index in (idx + offset for offset in range(len(self))):
            index %= len(self)
            try:
                return self._dataset[index]
            except (mx.MXNetError, OSError, ValueError) as err:
                self._report("skipping unreadable image %s (%s); using the next one"
                             % (self._dataset.items[index][0], error_line(err)))
        raise UsageError("no image of %d can be read" % len(self))


def check_class_folders(dataset, folder, flag):
    """Raise :class:`UsageError` naming ``folder`` when ``dataset`` (an ``ImageFolderDataset`` of it) has no
    class folders, no images, or a class folder without images."""
    if not dataset.synsets:
        raise UsageError("%s %s has no class folders (it needs one sub-folder of images per class)" % (flag, folder),
                         flag)
    counts = collections.Counter(label for _, label in dataset.items)
    empty = [name for label, name in enumerate(dataset.synsets) if not counts[label]]
    if len(empty) == len(dataset.synsets):
        raise UsageError("%s %s: its class folders hold no images (.jpg, .jpeg or .png)" % (flag, folder), flag)
    if empty:
        raise UsageError("%s %s: class folder%s %s hold%s no images (.jpg, .jpeg or .png)" % (
            flag, folder, "s" if len(empty) > 1 else "", ", ".join(empty[:5]) + (", ..." if len(empty) > 5 else ""),
            "" if len(empty) > 1 else "s"), flag)


def image_folder_data(data_dir, batch_size, input_size=224, crop_ratio=0.875, num_workers=4, shard=(0, 1),
                      seed=0, log_file=None):
    """ImageNet laid out as ``data_dir/{train,val}/<class>/<image>`` (GluonCV's ``ImageNet`` dataset), with
    GluonCV's augmentation: random resized crop, flip, colour jitter, lighting, mean/std normalisation;
    resize to ``input_size / crop_ratio`` and centre crop for validation. Unreadable images are skipped and
    reported in ``log_file`` too (:class:`SkipUnreadable`)."""
    from gluoncv.data import ImageNet
    from mxnet.gluon.data.vision import transforms
    root = _require(data_dir, "--data-dir")
    for split in ("train", "val"):
        if not os.path.isdir(os.path.join(root, split)):
            raise UsageError("data_dir %s folder not found: %s" % (split, os.path.join(root, split)), "data_dir")
    train_transform = transforms.Compose([
        transforms.RandomResizedCrop(input_size), transforms.RandomFlipLeftRight(),
        transforms.RandomColorJitter(brightness=JITTER, contrast=JITTER, saturation=JITTER),
        transforms.RandomLighting(LIGHTING), transforms.ToTensor(), transforms.Normalize(MEAN_RGB, STD_RGB)])
    val_transform = validation_transform(imagenet_preprocessing(input_size, crop_ratio))
    with warnings_held_until_success():  # "Ignoring notes.txt": no warning before "... hold no images"
        train_set, val_set = ImageNet(root, train=True), ImageNet(root, train=False)
        for dataset, split in ((train_set, "train"), (val_set, "val")):
            check_class_folders(dataset, os.path.join(root, split), "--data-dir")
        if train_set.synsets != val_set.synsets:
            raise UsageError("data_dir: train/ and val/ have different class folders", "data_dir")
    return _loader_data(SkipUnreadable(train_set, log_file=log_file).transform_first(train_transform),
                        SkipUnreadable(val_set, log_file=log_file).transform_first(val_transform),
                        batch_size, num_workers, shard, seed, len(train_set.synsets), input_size)


RECORD_MAGIC = 0xced7230a  # dmlc-core's RecordIO: every record starts with it and (flag << 29 | length)
RECORD_LENGTH_BITS = 29


def _read_index(idx, idx_flag):
    """The offsets of an ``MXIndexedRecordIO`` index (lines ``key<TAB>offset``)."""
    if not os.path.isfile(idx):
        raise UsageError("%s %s is not a file" % (idx_flag, idx))
    offsets = []
    with open(idx, "rb") as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            try:
                key, offset = (int(field) for field in fields)
            except ValueError:
                key = offset = -1
            if offset < 0:
                raise UsageError("%s %s: line %d is %r, not 'index<TAB>offset' (a RecordIO index written by im2rec "
                                 "or MXIndexedRecordIO)" % (idx_flag, idx, number, line.decode("latin-1").strip()[:60]))
            offsets.append(offset)
    if not offsets:
        raise UsageError("%s %s lists no records" % (idx_flag, idx))
    return offsets


def check_record_file(rec, idx, rec_flag="--rec", idx_flag="--rec-idx"):
    """Check a RecordIO file against its index before MXNet opens them (a cut-off ``.rec`` crashes
    ``ImageRecordIter``, at worst with a segmentation fault): every indexed record starts with RecordIO's
    magic number and ends inside the file. Raises :class:`UsageError` naming the file; returns the number
    of records."""
    offsets = _read_index(idx, idx_flag)
    if not os.path.isfile(rec):
        raise UsageError("%s %s is not a file" % (rec_flag, rec))
    size = os.path.getsize(rec)
    if size == 0:
        raise UsageError("%s %s is empty; %s lists %d records" % (rec_flag, rec, idx, len(offsets)))
    with open(rec, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        for offset in offsets:
            if offset + 8 > size:
                raise UsageError("%s %s is cut short: %s lists a record at byte %d, the file has %d bytes"
                                 % (rec_flag, rec, idx, offset, size))
            magic, header = struct.unpack_from("<II", data, offset)
            if magic != RECORD_MAGIC:
                raise UsageError("%s %s has no record at byte %d, where %s lists one (a corrupt file, or the "
                                 "index of another file)" % (rec_flag, rec, offset, idx))
            end = offset + 8 + (header & ((1 << RECORD_LENGTH_BITS) - 1))
            if end > size:
                raise UsageError("%s %s is cut short: its record at byte %d ends at byte %d, the file has %d bytes"
                                 % (rec_flag, rec, offset, end, size))
    return len(offsets)


def record_data(rec_train, rec_train_idx, rec_val, rec_val_idx, batch_size, classes, input_size=224,
                crop_ratio=0.875, num_workers=4, shard=(0, 1), seed=0):
    """ImageNet as RecordIO files read by MXNet's ``ImageRecordIter`` with GluonCV's augmentation (random
    resized crop 0.08-1, aspect 3/4-4/3, flip, colour jitter, PCA lighting); the training records are split
    into ``shard[1]`` parts."""
    paths = [_require(p, flag) for p, flag in ((rec_train, "--rec-train"), (rec_train_idx, "--rec-train-idx"),
                                                (rec_val, "--rec-val"), (rec_val_idx, "--rec-val-idx"))]
    num_records = check_record_file(paths[0], paths[1], "--rec-train", "--rec-train-idx")
    check_record_file(paths[2], paths[3], "--rec-val", "--rec-val-idx")
    num_train = num_records // shard[1]
    if num_train < batch_size:
        raise UsageError("the training set has %d records for this worker, fewer than one batch of %d"
                         % (num_train, batch_size))
    mean = dict(mean_r=MEAN_RGB[0] * 255, mean_g=MEAN_RGB[1] * 255, mean_b=MEAN_RGB[2] * 255,
                std_r=STD_RGB[0] * 255, std_g=STD_RGB[1] * 255, std_b=STD_RGB[2] * 255)
    shape = (3, input_size, input_size)
    train = mx.io.ImageRecordIter(
        path_imgrec=paths[0], path_imgidx=paths[1], preprocess_threads=max(num_workers, 1), shuffle=True,
        batch_size=batch_size, data_shape=shape, rand_mirror=True, random_resized_crop=True,
        max_aspect_ratio=4. / 3., min_aspect_ratio=3. / 4., max_random_area=1, min_random_area=0.08,
        brightness=JITTER, saturation=JITTER, contrast=JITTER, pca_noise=LIGHTING, seed=seed,
        num_parts=shard[1], part_index=shard[0], **mean)
    val = mx.io.ImageRecordIter(
        path_imgrec=paths[2], path_imgidx=paths[3], preprocess_threads=max(num_workers, 1), shuffle=False,
        batch_size=batch_size, resize=int(round(input_size / crop_ratio)), data_shape=shape, **mean)
    return ClassificationData(train, val, lambda batch, ctx: _split_batch(batch.data[0], batch.label[0], ctx),
                              num_train, classes, input_size, lambda epoch, first=0: _skip(train, first))


def _skip(records, batches):
    """Rewind ``records`` (an ``ImageRecordIter``) and read past its first ``batches`` batches."""
    records.reset()
    for _ in range(batches):
        records.next()
