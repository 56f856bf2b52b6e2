"""The embedded digits: scikit-learn's 1,797 real 8x8 handwritten digits (they ship inside scikit-learn, so
nothing is downloaded), for machines without ImageNet. A fixed stratified split (80% train, 20% validation,
seed 0), upscaled (default 32x32), replicated to 3 channels so that every ImageNet model accepts them, and
normalised with the training set's mean and standard deviation. Used with ``stem='thumbnail'``.
"""
import cv2
import numpy as np
from mxnet.gluon.data import ArrayDataset

DIGITS_CLASSES = 10
DIGITS_SIZE = 32
VAL_FRACTION = 0.2
SPLIT_SEED = 0


def _digits_split(size):
    """``(x_train, y_train, x_val, y_val)``: the digits in [0, 1] resized to ``size`` (float32 NHW)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    images = np.stack([cv2.resize(img.astype(np.float32) / 16.0, (size, size), interpolation=cv2.INTER_LINEAR)
                       for img in digits.images])
    x_train, x_val, y_train, y_val = train_test_split(images, digits.target, test_size=VAL_FRACTION,
                                                      random_state=SPLIT_SEED, stratify=digits.target)
    return x_train, y_train, x_val, y_val


def digits_statistics(size=DIGITS_SIZE):
    """``(mean, std)`` of the digits training split at ``size``: the normalisation of every digits input."""
    x_train = _digits_split(size)[0]
    return float(x_train.mean()), float(x_train.std())


def digits_arrays(size=DIGITS_SIZE):
    """``(x_train, y_train, x_val, y_val)``: float32 NCHW images (3 channels, ``size`` pixels), int labels."""
    x_train, y_train, x_val, y_val = _digits_split(size)
    mean, std = x_train.mean(), x_train.std()
    to_nchw = lambda x: np.repeat(((x - mean) / std)[:, None], 3, axis=1).astype(np.float32)
    return to_nchw(x_train), y_train.astype(np.int32), to_nchw(x_val), y_val.astype(np.int32)


def digits_datasets(size=DIGITS_SIZE):
    """``(train, val)`` Gluon ``ArrayDataset``s of the digits split (see the module docstring)."""
    x_train, y_train, x_val, y_val = digits_arrays(size)
    return ArrayDataset(x_train, y_train), ArrayDataset(x_val, y_val)
