"""QuickNet (larq-zoo's ``larq_zoo.sota.QuickNet*``; Bannink et al., 2021, "Larq Compute Engine", section 5):
a ResNet-like binary network built for fast inference.

Each variant is one row of ``QUICKNET_SPEC``: binary 3x3 convs per section and the sections' widths. The layers
follow larq-zoo's source:

- stem: 3x3 s2 conv (width/4) -> BN -> ReLU -> depthwise 3x3 s2 -> BN (no scale, no shift) -> 1x1 conv -> BN;
- residual block: sign -> binary 3x3 conv -> ReLU -> BN, plus the identity (the ReLU comes *before* the BN);
- transition (where the width changes): ReLU -> MaxPool 2/1 -> fixed blur (depthwise [1 2 1]^2/16, stride 2) ->
  full-precision 1x1 conv -> BN;
- head: ReLU -> global average pool -> FC (no BN).

Two differences from larq-zoo, neither changing a parameter count: the binary convs pad with -1 instead of +1
(both are values a bit holds; the packed kernel is exact for either, and this package's kernels pad with -1), and
larq-zoo's weight clip at 1.25 (a Keras constraint) is left to training: the gradient cancelling at 1.25 is
kept (``grad_cancel=1.25``).
"""
import numpy as np
from mxnet import init
from mxnet.gluon import HybridBlock, nn

from ..nn.layers import QConv2D
from ..nn.normalization import make_norm
from ..registry import register_model
from .common import StagedNet, family_stem

QUICKNET_LAYER_DEFAULTS = dict(grad_cancel=1.25)  # larq-zoo: SteSign(clip_value=1.25) on inputs and weights

# name: (binary convs per section, section widths) -- larq-zoo's QuickNetSmall/QuickNet/QuickNetLarge factories.
QUICKNET_SPEC = {
    "quicknet_small": ((4, 4, 4, 4), (32, 64, 256, 512)),
    "quicknet": ((4, 4, 4, 4), (64, 128, 256, 512)),
    "quicknet_large": ((6, 8, 12, 6), (64, 128, 256, 512)),
}

# larq-zoo's docstrings: ImageNet top-1 (%) and memory (MB) of its trained weights; no paper gives OPs.
QUICKNET_REPORTED = {
    "quicknet_small": dict(top1=59.4, size_mb=4.00),
    "quicknet": dict(top1=63.3, size_mb=4.17),
    "quicknet_large": dict(top1=66.9, size_mb=5.40),
}

# name -> (paper OPs, size MB, source) for the statistics table (stats.paper_numbers).
PAPER_NUMBERS = {name: (None, row["size_mb"], "larq-zoo docstring") for name, row in QUICKNET_REPORTED.items()}

# Trainable parameters of larq-zoo's models at 224x224 with 1000 classes: its docstrings' "Parameters"
# (12,655,688 / 13,234,088 / 23,342,248) count larq's summary columns, which include the fixed blur kernels
# (9 per channel entering a transition) and the moving statistics of the stem's scale-less BN (2 x width/4);
# both are subtracted here.
LARQ_TRAINABLE_PARAMS = {"quicknet_small": 12_652_504, "quicknet": 13_230_024, "quicknet_large": 23_338_184}

BLUR_KERNEL = np.outer([1, 2, 1], [1, 2, 1]) / 16.0  # Zhang (2019), anti-aliased pooling, as larq-zoo


def blur_pool(channels):
    """The fixed depthwise 3x3 [1 2 1]^2/16 blur with stride 2 of larq-zoo's transitions (not trained)."""
    conv = nn.Conv2D(channels, 3, strides=2, padding=1, groups=channels, in_channels=channels, use_bias=False,
                     weight_initializer=init.Constant(np.tile(BLUR_KERNEL, (channels, 1, 1, 1))))
    conv.weight.grad_req = "null"
    return conv


def quicknet_stem(channels):
    """larq-zoo's stem: 3x3 s2 conv (``channels``/4) -> BN -> ReLU -> depthwise 3x3 s2 -> BN without scale and
    shift -> 1x1 conv (``channels``) -> BN; stride 4 like the other stems, without pooling."""
    quarter = channels // 4
    stem = nn.HybridSequential(prefix="stem_")
    with stem.name_scope():
        stem.add(nn.Conv2D(quarter, 3, strides=2, padding=1, use_bias=False), make_norm(quarter),
                 nn.Activation("relu"),
                 nn.Conv2D(quarter, 3, strides=2, padding=1, groups=quarter, in_channels=quarter, use_bias=False),
                 nn.BatchNorm(in_channels=quarter, scale=False, center=False),
                 nn.Conv2D(channels, 1, use_bias=False), make_norm(channels))
    return stem


class QuickNetBlock(HybridBlock):
    """sign -> binary 3x3 conv -> ReLU -> BN, added to the identity (larq-zoo's ``residual_block``)."""

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.body = nn.HybridSequential(prefix="")
            self.body.add(QConv2D(channels, 3, padding=1, in_channels=channels), nn.Activation("relu"),
                          make_norm(channels, residual_end=True))

    def hybrid_forward(self, F, x):
        return x + self.body(x)


def transition(in_channels, channels, strides=2):
    """ReLU -> MaxPool 2/1 -> blur with stride 2 -> full-precision 1x1 conv -> BN (larq-zoo's ``transition_block``;
    ``strides=1`` keeps the resolution: no pooling, no blur)."""
    block = nn.HybridSequential()
    with block.name_scope():
        block.add(nn.Activation("relu"))
        if strides > 1:
            block.add(nn.MaxPool2D(2, 1), blur_pool(in_channels))
        block.add(nn.Conv2D(channels, 1, use_bias=False, in_channels=in_channels), make_norm(channels))
    return block


class QuickNet(StagedNet):
    """QuickNet with ``blocks`` binary convs in the sections of ``widths``; a transition starts each section
    whose width differs from the previous one (stride 2 except in the first section)."""

    def __init__(self, blocks, widths, stem="quicknet", classes=1000, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.features.add(family_stem(stem, widths[0], {"quicknet": quicknet_stem}))
            channels = widths[0]
            for section, (count, width) in enumerate(zip(blocks, widths)):
                if width != channels:
                    self.features.add(transition(channels, width, strides=1 if section == 0 else 2))
                    channels = width
                self.features.add(*(QuickNetBlock(width) for _ in range(count)))
                self.end_stage(width)
            self.add_head(classes, norm=False)


def _quicknet(name, **kwargs):
    blocks, widths = QUICKNET_SPEC[name]
    return QuickNet(blocks, widths, **kwargs)


@register_model(layer_defaults=QUICKNET_LAYER_DEFAULTS)
def quicknet_small(**kwargs):
    """QuickNetSmall: sections (4,4,4,4) at widths 32/64/256/512; larq-zoo: 59.4% top-1, 4.00 MB."""
    return _quicknet("quicknet_small", **kwargs)


@register_model(layer_defaults=QUICKNET_LAYER_DEFAULTS)
def quicknet(**kwargs):
    """QuickNet: sections (4,4,4,4) at widths 64/128/256/512; larq-zoo: 63.3% top-1, 4.17 MB."""
    return _quicknet("quicknet", **kwargs)


@register_model(layer_defaults=QUICKNET_LAYER_DEFAULTS)
def quicknet_large(**kwargs):
    """QuickNetLarge: sections (6,8,12,6) at widths 64/128/256/512; larq-zoo: 66.9% top-1, 5.40 MB."""
    return _quicknet("quicknet_large", **kwargs)
