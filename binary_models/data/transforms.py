"""How an image becomes a classification model's input at validation and inference time.

One description, :class:`Preprocessing`, and one function, :func:`validation_transform`, serve
``train_imagenet.py``'s validation on image folders, ``bm predict`` and (through the run
file that ``bm convert`` writes beside a packed model) the C++ program in ``deploy/``,
which calls the same MXNet operators through the C API:

- ImageNet-style models (GluonCV's ``train_imagenet.py`` validation): the RGB image's shorter side resized to
  ``round(input_size / crop_ratio)`` (bilinear), the centre ``input_size`` square cropped, scaled to [0, 1]
  and normalised with ImageNet's per-channel mean and standard deviation.
- Models trained on the embedded digits (``--dataset digits``): the image read as grayscale, stretched to
  ``input_size`` x ``input_size`` (no crop: the digits fill their frame), scaled to [0, 1], normalised with the
  digits training split's mean and standard deviation, and repeated over 3 channels. Like scikit-learn's
  digits, the digit should be light on a dark background.
"""
import collections

import mxnet as mx

from .digits import digits_statistics

CROP_RATIO = 0.875
# ImageNet statistics (GluonCV's train_imagenet.py), RGB.
MEAN_RGB = (0.485, 0.456, 0.406)
STD_RGB = (0.229, 0.224, 0.225)

_Preprocessing = collections.namedtuple("Preprocessing", "input_size crop_ratio grayscale mean std")


class Preprocessing(_Preprocessing):
    """What :func:`validation_transform` does: the square ``input_size``; ``crop_ratio`` (None: stretch to
    the square without cropping); ``grayscale`` (decode one channel, repeat it over 3); ``mean`` and ``std``
    of the normalisation after scaling to [0, 1] (one value per decoded channel)."""

    def as_dict(self):
        """JSON-ready form, the ``preprocessing`` entry of a packed model's run file."""
        return dict(input_size=self.input_size, crop_ratio=self.crop_ratio, grayscale=self.grayscale,
                    mean=list(self.mean), std=list(self.std))


def imagenet_preprocessing(input_size=224, crop_ratio=CROP_RATIO):
    """GluonCV's ImageNet validation preprocessing."""
    return Preprocessing(int(input_size), float(crop_ratio), False, MEAN_RGB, STD_RGB)


def digits_preprocessing(input_size):
    """The embedded digits' preprocessing at ``input_size`` (its statistics are the training split's)."""
    mean, std = digits_statistics(input_size)
    return Preprocessing(int(input_size), None, True, (mean,), (std,))


def preprocessing_of(record, input_size=None, crop_ratio=None):
    """The preprocessing of the model a run file ``record`` describes: its own ``preprocessing`` entry when it
    has one, else that of its ``dataset`` at its ``input_size``; ``input_size`` and ``crop_ratio`` override."""
    if record.get("preprocessing"):
        recorded = dict(record["preprocessing"])
        recorded.update({k: v for k, v in dict(input_size=input_size, crop_ratio=crop_ratio).items() if v})
        return Preprocessing(int(recorded["input_size"]), recorded["crop_ratio"], bool(recorded["grayscale"]),
                             tuple(recorded["mean"]), tuple(recorded["std"]))
    size = input_size or record.get("input_size") or 224
    if record.get("dataset") == "digits":
        return digits_preprocessing(size)
    return imagenet_preprocessing(size, crop_ratio or record.get("crop_ratio") or CROP_RATIO)


def validation_transform(preprocessing):
    """A callable: decoded HWC uint8 image (``read_image``) -> float32 (3, size, size) model input."""
    from mxnet.gluon.data.vision import transforms
    size = preprocessing.input_size
    if preprocessing.crop_ratio is None:
        steps = [transforms.Resize((size, size))]
    else:
        steps = [transforms.Resize(int(round(size / preprocessing.crop_ratio)), keep_ratio=True),
                 transforms.CenterCrop(size)]
    compose = transforms.Compose(steps + [transforms.ToTensor(),
                                          transforms.Normalize(preprocessing.mean, preprocessing.std)])
    if not preprocessing.grayscale:
        return compose
    return lambda image: mx.nd.repeat(compose(image), repeats=3, axis=0)


def read_image(path, preprocessing):
    """The image file decoded by MXNet (OpenCV) as HWC uint8: RGB, or one gray channel for a grayscale
    preprocessing. Raises ``mx.MXNetError`` or ``OSError`` when it cannot be read."""
    return mx.image.imread(path, flag=0 if preprocessing.grayscale else 1)
