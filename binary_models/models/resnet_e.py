"""ResNet-E ("extra shortcut", BinaryDenseNet section 4.1) and Bi-RealNet: one binary 3x3 conv per block,
each with its own shortcut; the downsampling shortcut is AvgPool 2x2 -> full-precision 1x1 conv -> BN."""
from mxnet.gluon import HybridBlock, nn

from ..nn.layers import QConv2D
from ..nn.normalization import make_norm
from ..registry import register_model
from .common import StagedNet, make_stem

# depth: binary convs per stage (BinaryDenseNet Table 7: ResNetE18 = 4,4,4,4; Bi-RealNet34 = 2x(3,4,6,3)).
RESNET_E_SPEC = {18: (4, 4, 4, 4), 34: (6, 8, 12, 6)}
WIDTHS = (64, 128, 256, 512)


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

    def __init__(self, blocks, stem="7x7", classes=1000, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.features.add(make_stem(stem, WIDTHS[0]))
            for stage, (count, width) in enumerate(zip(blocks, WIDTHS)):
                for i in range(count):
                    first = i == 0 and stage > 0
                    self.features.add(ResNetEBlock(width, strides=2 if first else 1, downsample=first))
                self.end_stage(width)
            self.add_head(classes)


@register_model
def resnet_e18(**kwargs):
    """ResNetE18 (BinaryDenseNet Tables 3, 6, 7): 4 binary convs per stage; 1.63e8 OPs with the 7x7
    stem, 1.14e8 with the grouped stem (MeliusNet Table 2)."""
    return ResNetE(RESNET_E_SPEC[18], **kwargs)


@register_model
def resnet_e34(**kwargs):
    """ResNetE34 / Bi-RealNet34: (6,8,12,6) binary convs per stage; 1.93e8 OPs with the 7x7 stem,
    1.43e8 with the grouped stem (MeliusNet Table 2)."""
    return ResNetE(RESNET_E_SPEC[34], **kwargs)
