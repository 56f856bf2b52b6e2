"""The networks of Tang, Hua and Wang (2017), "How to train a compact binary neural network with high
accuracy?": every layer but the first is binary, including the last one, which a learnable ``Scale``
follows (section 3.3); PReLU replaces ReLU (3.1); activations use m=2 binarizations (3.4).

Each binary layer is binary conv -> PReLU -> BatchNorm (Algorithm 1), so that BatchNorm sits before every
binary layer. The layer lists are the Caffe originals the paper starts from (BVLC AlexNet with its grouped
convs, and the ImageNet NIN of Lin et al.); the paper gives only the changes of the "expanded" NIN.
"""
from mxnet import init
from mxnet.gluon import HybridBlock, nn

from ..nn.layers import QConv2D, QDense, Scale
from ..nn.normalization import make_norm
from ..registry import register_model
from .common import make_stem

TANG_LAYER_DEFAULTS = dict(binarizations=2)  # Tang et al. Table 5: 2-bit (m=2) activations


def prelu(channels):
    return nn.PReLU(alpha_initializer=init.Constant(0.25), in_channels=channels)


def binary_layer(channels, kernel=None, stride=1, pad=0, groups=1):
    """Binary conv (or dense when ``kernel`` is None) -> PReLU -> BatchNorm."""
    layer = QDense(channels) if kernel is None else QConv2D(channels, kernel, stride, pad, groups=groups)
    return layer, prelu(channels), make_norm(channels)


def caffe_pool():
    """Caffe's max pooling 3/2, which rounds the output size up."""
    return nn.MaxPool2D(3, 2, ceil_mode=True)


def first_layer(stem, channels, kernel=11, stride=4):
    """The full-precision first layer: the original conv -> PReLU -> BN, or one of the shared stems."""
    if stem != "original":
        return (make_stem(stem, channels),)
    return nn.Conv2D(channels, kernel, stride, use_bias=False), prelu(channels), make_norm(channels)


class TangNIN(HybridBlock):
    """Binary Network-in-Network. ``expanded=True`` (the paper's best, Table 5: 1.23 MB): the first two
    cccp layers get 128 instead of 96 channels and the first four cccp layers 3x3 instead of 1x1 kernels.
    The last layer (1024 -> classes, binary) is followed by global average pooling and ``Scale``."""

    def __init__(self, expanded=True, stem="original", classes=1000, **kwargs):
        super().__init__(**kwargs)
        cccp_width, cccp_kernel = (128, 3) if expanded else (96, 1)
        pad = cccp_kernel // 2
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="")
            self.features.add(*first_layer(stem, 96))
            self.features.add(*binary_layer(cccp_width, cccp_kernel, pad=pad),
                              *binary_layer(cccp_width, cccp_kernel, pad=pad), caffe_pool())
            self.features.add(*binary_layer(256, 5, pad=2), *binary_layer(256, cccp_kernel, pad=pad),
                              *binary_layer(256, cccp_kernel, pad=pad), caffe_pool())
            self.features.add(*binary_layer(384, 3, pad=1), *binary_layer(384, 1), *binary_layer(384, 1),
                              caffe_pool())
            self.features.add(*binary_layer(1024, 3, pad=1), *binary_layer(1024, 1))
            self.output = nn.HybridSequential(prefix="")
            self.output.add(QConv2D(classes, 1), nn.GlobalAvgPool2D(), nn.Flatten(), Scale())

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


class BinaryAlexNet(HybridBlock):
    """Tang et al.'s binary AlexNet (Table 6: 7.43 MB): BVLC AlexNet (grouped conv2/4/5) with every layer
    but conv1 binary, the last FC followed by ``Scale``; no LRN, no dropout."""

    def __init__(self, stem="original", classes=1000, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="")
            self.features.add(*first_layer(stem, 96), caffe_pool())
            self.features.add(*binary_layer(256, 5, pad=2, groups=2), caffe_pool())
            self.features.add(*binary_layer(384, 3, pad=1), *binary_layer(384, 3, pad=1, groups=2),
                              *binary_layer(256, 3, pad=1, groups=2), caffe_pool())
            self.features.add(*binary_layer(4096), *binary_layer(4096))
            self.output = nn.HybridSequential(prefix="")
            self.output.add(QDense(classes), Scale())

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


@register_model(layer_defaults=TANG_LAYER_DEFAULTS)
def tang_nin(**kwargs):
    """Tang et al.'s expanded binary NIN with 2 activation binarizations (Table 5: 1.23 MB, 51.4% top-1)."""
    return TangNIN(**kwargs)


@register_model(layer_defaults=TANG_LAYER_DEFAULTS)
def binary_alexnet(**kwargs):
    """Tang et al.'s binary AlexNet with 2 activation binarizations (Table 6: 7.43 MB, 46.6% top-1)."""
    return BinaryAlexNet(**kwargs)
