"""BinaryDenseNet (Bethge et al., 2019): DenseNet without bottlenecks, binary 3x3 convs of 64 channels.

Each variant is one row of ``BINARY_DENSENET_SPEC`` (BinaryDenseNet Table 7): layers per stage and the
reduction rates of the three transitions (full-precision downsampling with MaxPool -> ReLU -> 1x1 conv).
"""
from ..registry import register_model
from .common import DenseBlock, DenseStageNet

# depth: (layers per stage, reduction rates) -- BinaryDenseNet Table 7 (growth 64, 64 first-conv channels).
BINARY_DENSENET_SPEC = {
    28: ((6, 6, 6, 5), (2.7, 2.7, 2.2)),
    37: ((6, 8, 12, 6), (3.3, 3.3, 4)),
    45: ((6, 12, 14, 8), (2.7, 3.3, 4)),
}
# BinaryDenseNet37-dilated (section 5.1): stages 2-4 keep the stride-8 resolution and dilate instead
# (dilation 1, 1, 2, 4 as in the authors' code).
DILATION = (1, 1, 2, 4)


def dense_unit(in_channels, growth, dilation):
    """One BinaryDenseNet layer: a DenseBlock."""
    return (DenseBlock(growth, dilation, in_channels=in_channels),)


class BinaryDenseNet(DenseStageNet):
    """BinaryDenseNet (section 4): ``blocks`` dense layers per stage, widths reduced by ``rates``."""

    def __init__(self, blocks, rates, dilated=False, stem="grouped", classes=1000, **kwargs):
        super().__init__(dense_unit, blocks, rates, dilation=DILATION if dilated else (1, 1, 1, 1), stem=stem,
                         classes=classes, **kwargs)


def _binary_densenet(depth, **kwargs):
    blocks, rates = BINARY_DENSENET_SPEC[depth]
    return BinaryDenseNet(blocks, rates, **kwargs)


@register_model
def binary_densenet28(**kwargs):
    """BinaryDenseNet28: layers (6,6,6,5), reduction 2.7/2.7/2.2, ~4.0 MB (Tables 6-7)."""
    return _binary_densenet(28, **kwargs)


@register_model
def binary_densenet37(**kwargs):
    """BinaryDenseNet37: layers (6,8,12,6), reduction 3.3/3.3/4, ~5.1 MB (Tables 6-7)."""
    return _binary_densenet(37, **kwargs)


@register_model
def binary_densenet37_dilated(**kwargs):
    """BinaryDenseNet37-dilated: BinaryDenseNet37 with dilation (1,1,2,4) instead of the last two
    downsamplings (Table 6: 63.7% top-1)."""
    return _binary_densenet(37, dilated=True, **kwargs)


@register_model
def binary_densenet45(**kwargs):
    """BinaryDenseNet45: layers (6,12,14,8), reduction 2.7/3.3/4, 7.4 MB (Tables 6-7)."""
    return _binary_densenet(45, **kwargs)
