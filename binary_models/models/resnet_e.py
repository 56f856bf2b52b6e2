"""ResNet-E ("extra shortcut", BinaryDenseNet section 4.1) and Bi-RealNet: one binary 3x3 conv per block,
each with its own shortcut; the downsampling shortcut is AvgPool 2x2 -> full-precision 1x1 conv -> BN.

Bi-RealNet18 (Liu et al., 2018; larq-zoo's ``BiRealNet``) differs from ResNetE18 in exactly what MeliusNet
section 4.1 says ("a single ReLU layer and a single BatchNorm") plus its training-time quantizers: its stem
has no ReLU (7x7 s2 -> BN -> MaxPool), its head no BN and no ReLU (pool -> FC), its activations use
ApproxSign's backward and its weights are scaled by mean |W| per output channel ("magnitude-aware sign",
``scaling='channel'``). Same convs, same shortcuts, so both count 1.63e8 OPs at 224x224.
"""
from mxnet.gluon import HybridBlock, nn

from ..nn.layers import QConv2D
from ..nn.normalization import make_norm
from ..registry import register_model
from .common import StagedNet, family_stem

# name: (binary convs per stage, default stem, head BN -> ReLU) -- BinaryDenseNet Table 7 (ResNetE18 = 4,4,4,4;
# Bi-RealNet34 = 2x(3,4,6,3)); Bi-RealNet18 as larq-zoo's BiRealNet.
RESNET_E_SPEC = {
    "resnet_e18": ((4, 4, 4, 4), "7x7", True),
    "resnet_e34": ((6, 8, 12, 6), "7x7", True),
    "birealnet18": ((4, 4, 4, 4), "bireal", False),
}
WIDTHS = (64, 128, 256, 512)
BIREAL_LAYER_DEFAULTS = dict(activation="approx_sign", scaling="channel")  # larq-zoo: approx_sign, magnitude_aware_sign

# Bi-Real Net (Liu et al., 2018) Table 4 / ReActNet Table 2: 56.4% top-1, 1.68e9 BOPs, 1.39e8 FLOPs, 1.63e8 OPs.
# larq-zoo's BiRealNet at 224x224, 1000 classes: 10,985,472 binary + 704,040 trainable float parameters.
BIREAL_REPORTED = dict(top1=56.4, ops=1.63e8)
LARQ_TRAINABLE_PARAMS = {"birealnet18": 11_689_512}
PAPER_NUMBERS = {"birealnet18": (BIREAL_REPORTED["ops"], None, "Bi-Real Net Table 4, ReActNet Table 2")}


class ResNetEBlock(HybridBlock):
    """sign -> binary 3x3 conv -> BN, plus the shortcut (identity, or the full-precision downsampling).
    The BN ends the residual branch: GluonCV's ``last_gamma`` starts its gamma at zero."""

    def __init__(self, channels, strides=1, downsample=False, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.body = nn.HybridSequential(prefix="")
            self.body.add(QConv2D(channels, 3, strides=strides, padding=1), make_norm(channels, residual_end=True))
            self.downsample = None
            if downsample:
                self.downsample = nn.HybridSequential(prefix="down_")
                if strides > 1:
                    # ceil_mode: an odd side n gives ceil(n / 2), as the body's padded 3x3 conv (SSD300's 75x75)
                    self.downsample.add(nn.AvgPool2D(strides, strides, ceil_mode=True))
                self.downsample.add(nn.Conv2D(channels, 1, use_bias=False), make_norm(channels))

    def hybrid_forward(self, F, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.body(x) + shortcut


class ResNetE(StagedNet):
    """ResNet-E/Bi-RealNet with ``blocks`` binary convs per stage at widths 64/128/256/512, the 7x7 stem
    by default (the original), and the head BN -> ReLU -> pool -> FC (MeliusNet section 4.1: "a single
    ReLU layer and a single BatchNorm" more than Bi-RealNet)."""

    def __init__(self, blocks, stem="7x7", classes=1000, head_norm=True, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.features.add(family_stem(stem, WIDTHS[0], {"bireal": bireal_stem}))
            for stage, (count, width) in enumerate(zip(blocks, WIDTHS)):
                for i in range(count):
                    first = i == 0 and stage > 0
                    self.features.add(ResNetEBlock(width, strides=2 if first else 1, downsample=first))
                self.end_stage(width)
            self.add_head(classes, norm=head_norm, relu=head_norm)


def bireal_stem(channels):
    """Bi-RealNet's stem: 7x7 s2 conv -> BN -> MaxPool 3/2, no ReLU (larq-zoo's BiRealNet)."""
    stem = nn.HybridSequential(prefix="stem_")
    with stem.name_scope():
        stem.add(nn.Conv2D(channels, 7, strides=2, padding=3, use_bias=False), make_norm(channels),
                 nn.MaxPool2D(3, 2, 1))
    return stem


def _resnet_e(name, **kwargs):
    blocks, stem, head_norm = RESNET_E_SPEC[name]
    return ResNetE(blocks, **dict(dict(stem=stem, head_norm=head_norm), **kwargs))


@register_model
def resnet_e18(**kwargs):
    """ResNetE18 (BinaryDenseNet Tables 3, 6, 7): 4 binary convs per stage; 1.63e8 OPs with the 7x7
    stem, 1.14e8 with the grouped stem (MeliusNet Table 2)."""
    return _resnet_e("resnet_e18", **kwargs)


@register_model
def resnet_e34(**kwargs):
    """ResNetE34 / Bi-RealNet34: (6,8,12,6) binary convs per stage; 1.93e8 OPs with the 7x7 stem,
    1.43e8 with the grouped stem (MeliusNet Table 2)."""
    return _resnet_e("resnet_e34", **kwargs)


@register_model(layer_defaults=BIREAL_LAYER_DEFAULTS)
def birealnet18(**kwargs):
    """Bi-RealNet18 (Liu et al., 2018, Table 4: 56.4% top-1, 1.63e8 OPs), as larq-zoo's BiRealNet: ResNetE18's
    convs and shortcuts without the stem's ReLU and the head's BN + ReLU, ApproxSign activations and weights
    scaled per output channel (see the module docstring)."""
    return _resnet_e("birealnet18", **kwargs)
