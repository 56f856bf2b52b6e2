"""ReActNet (Liu et al., 2020, "ReActNet: Towards Precise Binary Neural Network with Generalized Activation
Functions"): a binarised MobileNetV1 whose depthwise 3x3 + pointwise 1x1 pairs become full binary 3x3 and 1x1
convs, each with a real-valued shortcut (section 3, Fig. 2), RSign before and RPReLU after every binary conv
(section 4.2, :mod:`binary_models.nn.react`).

Block (Fig. 2 and the authors' code): ``RSign -> binary 3x3 conv (stride s) -> BN``, plus the input (AvgPool 2x2
first when s = 2), then RPReLU; then ``RSign -> binary 1x1 conv -> BN`` plus that result, then RPReLU. Where the
width doubles, the 1x1 conv is "duplicated" (Fig. 2b): two convs of the same input, each added to the same
shortcut, concatenated. Here that is one 1x1 conv of twice the outputs and the shortcut concatenated with itself:
the same weights, the same computation. Stem 3x3 s2 conv -> BN; head pool -> FC.

Binary convs scale their output by mean |W| per output channel (the authors' ``HardBinaryConv``) and pad their
binary input with -1 where the authors' PyTorch code pads with 0 (a bit holds no 0); activations use ApproxSign's
backward (their ``BinaryActivation``).
"""
from mxnet.gluon import HybridBlock, nn

from ..errors import UsageError
from ..nn.layers import QConv2D
from ..nn.normalization import make_norm
from ..nn.react import LearnableBias, RPReLU
from ..registry import register_model
from .common import StagedNet, family_stem

REACTNET_LAYER_DEFAULTS = dict(activation="approx_sign", scaling="channel")

# name: (stem width, stages of (width, stride) blocks) -- ReActNet-A is MobileNetV1's 13 blocks (section 3; the
# authors' stage_out_channel = [32, 64, 128, 128, 256, 256, 512 x 6, 1024 x 2]). Stages end at strides 4/8/16/32.
REACTNET_SPEC = {
    "reactnet_a": (32, (((64, 1), (128, 2), (128, 1)), ((256, 2), (256, 1)), ((512, 2),) + ((512, 1),) * 5,
                        ((1024, 2), (1024, 1)))),
}
# ReActNet Table 2: ReActNet-A 69.4% top-1, 4.82e9 BOPs, 0.12e8 FLOPs, 0.87e8 OPs.
REACTNET_REPORTED = {"reactnet_a": dict(top1=69.4, bops=4.82e9, flops=0.12e8, ops=0.87e8)}
PAPER_NUMBERS = {"reactnet_a": (0.87e8, None, "ReActNet Table 2")}


def rsign_conv(in_channels, channels, kernel, strides=1):
    """RSign -> binary conv -> BN: a :class:`LearnableBias` (the RSign threshold) before a binary conv whose
    sign is its input quantizer, then BatchNorm."""
    unit = nn.HybridSequential(prefix="")
    unit.add(LearnableBias(in_channels),
             QConv2D(channels, kernel, strides=strides, padding=kernel // 2, in_channels=in_channels),
             make_norm(channels, residual_end=True))
    return unit


class ReActBlock(HybridBlock):
    """One ReActNet block (the module docstring): 3x3 then 1x1 binary conv, each with a shortcut and RPReLU."""

    def __init__(self, in_channels, channels, strides=1, **kwargs):
        super().__init__(**kwargs)
        if channels not in (in_channels, 2 * in_channels):
            raise UsageError("ReActBlock: channels (%d) must be in_channels (%d) or twice that" % (channels, in_channels))
        self.duplicate = channels != in_channels
        with self.name_scope():
            self.spatial = rsign_conv(in_channels, in_channels, 3, strides)
            self.pool = nn.AvgPool2D(strides, strides, ceil_mode=True) if strides > 1 else None
            self.act_spatial = RPReLU(in_channels)
            self.pointwise = rsign_conv(in_channels, channels, 1)
            self.act_pointwise = RPReLU(channels)

    def hybrid_forward(self, F, x):
        shortcut = x if self.pool is None else self.pool(x)
        x = self.act_spatial(self.spatial(x) + shortcut)
        shortcut = F.concat(x, x, dim=1) if self.duplicate else x
        return self.act_pointwise(self.pointwise(x) + shortcut)


def reactnet_stem(channels):
    """3x3 s2 conv -> BN, no activation (the authors' ``firstconv3x3``)."""
    stem = nn.HybridSequential(prefix="stem_")
    with stem.name_scope():
        stem.add(nn.Conv2D(channels, 3, strides=2, padding=1, use_bias=False), make_norm(channels))
    return stem


class ReActNet(StagedNet):
    """ReActNet from a ``REACTNET_SPEC`` row: the stem of ``stem_width`` and ``stages`` of (width, stride) blocks."""

    def __init__(self, stem_width, stages, stem="reactnet", classes=1000, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.features.add(family_stem(stem, stem_width, {"reactnet": reactnet_stem}))
            channels = stem_width
            for blocks in stages:
                for width, strides in blocks:
                    self.features.add(ReActBlock(channels, width, strides))
                    channels = width
                self.end_stage(channels)
            self.add_head(classes, norm=False, relu=False)


@register_model(layer_defaults=REACTNET_LAYER_DEFAULTS)
def reactnet_a(**kwargs):
    """ReActNet-A (Liu et al., 2020, Table 2: 69.4% top-1, 0.87e8 OPs), MobileNetV1-based, RSign and RPReLU."""
    stem_width, stages = REACTNET_SPEC["reactnet_a"]
    return ReActNet(stem_width, stages, **kwargs)
