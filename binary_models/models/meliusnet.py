"""MeliusNet (Bethge et al., 2020): alternating Dense and Improvement blocks.

Each variant is one row of ``MELIUSNET_SPEC`` (MeliusNet Table 1): blocks per stage, the channel
reduction factors of the three transitions (written as the table writes them, out/in), and the groups of
the 1x1 downsampling convolutions.
"""
from fractions import Fraction

from ..registry import register_model
from .common import DenseBlock, DenseStageNet, binary_conv_unit
from mxnet.gluon import HybridBlock

# name: (blocks per stage, transition factors out/in, downsampling groups) -- MeliusNet Table 1.
MELIUSNET_SPEC = {
    "22": ((4, 5, 4, 4), ("160/320", "224/480", "256/480"), 1),
    "29": ((4, 6, 8, 6), ("128/320", "192/512", "256/704"), 1),
    "42": ((5, 8, 14, 10), ("160/384", "256/672", "416/1152"), 1),
    "59": ((6, 12, 24, 12), ("192/448", "320/960", "544/1856"), 1),
    # Table 1 row 5 (its name is lost in the text); the authors' code has (4,5,5,6) and 4 groups, while the
    # text says "2 or 4 groups ... for MeliusNetA and MeliusNetB, respectively". 4 groups reproduce the
    # table's 0.86e8 FLOPs (0.874e8; 2 groups give 1.05e8), so A uses 4 and B (Table 1: "/2") uses 2.
    "a": ((4, 5, 5, 6), ("160/320", "256/480", "288/576"), 4),
    "b": ((4, 6, 8, 6), ("160/320", "224/544", "320/736"), 2),
    # Table 1 prints 224/704 for C's last factor, but 10 blocks in stage 3 give 192 + 640 = 832 channels.
    # The authors' code reduces 832 -> 288 (factor 288/832); that width reproduces the table's 4.5 MB
    # (4.46 MB), while reducing to 224 gives 4.11 MB (9% off; BOPs and FLOPs fit both), so C uses 288/832.
    "c": ((3, 5, 10, 6), ("128/256", "192/448", "288/832"), 4),
}

# MeliusNet Table 1 as printed, for comparison (BOPs 1e9, FLOPs 1e8, OPs 1e8, size MB, top-1 %).
MELIUSNET_TABLE1 = {
    "meliusnet22": dict(bops=4.62e9, flops=1.35e8, ops=2.08e8, size_mb=3.9, top1=63.6),
    "meliusnet29": dict(bops=5.47e9, flops=1.29e8, ops=2.14e8, size_mb=5.1, top1=65.8),
    "meliusnet42": dict(bops=9.69e9, flops=1.74e8, ops=3.25e8, size_mb=10.1, top1=69.2),
    "meliusnet59": dict(bops=18.3e9, flops=2.45e8, ops=5.25e8, size_mb=17.4, top1=71.0),
    "meliusnet_a": dict(bops=4.85e9, flops=0.86e8, ops=1.62e8, size_mb=4.0, top1=63.4),
    "meliusnet_b": dict(bops=5.72e9, flops=1.06e8, ops=1.96e8, size_mb=5.0, top1=65.7),
    "meliusnet_c": dict(bops=4.35e9, flops=0.82e8, ops=1.50e8, size_mb=4.5, top1=64.1),
}


class ImprovementBlock(HybridBlock):
    """A binary 3x3 conv over the whole map whose ``growth`` outputs are *added* to the last ``growth``
    channels only; the other channels pass unchanged (MeliusNet section 3.2).

    Its BatchNorm comes *before* the binary conv (BN -> sign -> conv, section 3.4), so nothing scales the
    residual branch's output: GluonCV's ``last_gamma`` has nothing to zero here (a zero gamma would make
    the sign's input constant, not the branch's output zero)."""

    def __init__(self, growth=64, dilation=1, in_channels=0, **kwargs):
        super().__init__(**kwargs)
        self.growth = growth
        with self.name_scope():
            self.body = binary_conv_unit(growth, dilation, in_channels=in_channels)

    def hybrid_forward(self, F, x):
        if _whole_map_sum:
            zeros = F.zeros_like(F.slice_axis(x, axis=1, begin=0, end=-self.growth))
            return x + F.concat(zeros, self.body(x), dim=1)
        kept = F.slice_axis(x, axis=1, begin=0, end=-self.growth)
        improved = F.slice_axis(x, axis=1, begin=-self.growth, end=None) + self.body(x)
        return F.concat(kept, improved, dim=1)


# Whether ImprovementBlocks add [0 | body(x)] to the whole map (see use_whole_map_sum).
_whole_map_sum = False


def use_whole_map_sum(enabled=True):
    """Compute ImprovementBlocks as ``x + concat(0, body(x))`` instead of ``concat(x[:-growth], x[-growth:] +
    body(x))``: the same values (``x + 0`` is ``x``; -0.0 becomes +0.0, of the same sign) and gradients, but
    on the CPU the output stays in oneDNN's blocked layout, where the slices' output was plain NCHW, so that
    the next DenseBlock's BatchNorm ran oneDNN's plain-layout code (about 8x slower per call) and its input
    was reordered to and fro: 8 % of a MeliusNet22 training step (docs/native.md, Training). The training
    commands turn it on for CPU runs. Off, a BatchNorm after it rounds as the converted model's folded
    thresholds do (plain layout), so the float-emulated model at inference equals the converted one to the
    bit up to its float convolutions. Graphs built (hybridized) afterwards use it. Returns the previous
    setting."""
    global _whole_map_sum
    previous, _whole_map_sum = _whole_map_sum, bool(enabled)
    return previous


def melius_unit(in_channels, growth, dilation):
    """One MeliusNet unit: DenseBlock (+growth channels) then ImprovementBlock."""
    return (DenseBlock(growth, dilation, in_channels=in_channels),
            ImprovementBlock(growth, dilation, in_channels=in_channels + growth))


class MeliusNet(DenseStageNet):
    """MeliusNet (section 3): ``blocks`` Dense+Improvement units per stage, transitions that scale the
    width by ``factors`` (out/in), 1x1 downsampling convs with ``downsample_groups`` groups."""

    def __init__(self, blocks, factors, downsample_groups=1, stem="grouped", classes=1000, **kwargs):
        rates = [1 / Fraction(f) for f in factors]
        super().__init__(melius_unit, blocks, rates, downsample_groups, stem=stem, classes=classes, **kwargs)


def _meliusnet(variant, **kwargs):
    blocks, factors, groups = MELIUSNET_SPEC[variant]
    return MeliusNet(blocks, factors, groups, **kwargs)


@register_model
def meliusnet22(**kwargs):
    """MeliusNet22: blocks (4,5,4,4), 3.9 MB, 2.08e8 OPs (Table 1)."""
    return _meliusnet("22", **kwargs)


@register_model
def meliusnet29(**kwargs):
    """MeliusNet29: blocks (4,6,8,6), 5.1 MB, 2.14e8 OPs (Table 1)."""
    return _meliusnet("29", **kwargs)


@register_model
def meliusnet42(**kwargs):
    """MeliusNet42: blocks (5,8,14,10), 10.1 MB, 3.25e8 OPs (Table 1)."""
    return _meliusnet("42", **kwargs)


@register_model
def meliusnet59(**kwargs):
    """MeliusNet59: blocks (6,12,24,12), 17.4 MB, 5.25e8 OPs (Table 1)."""
    return _meliusnet("59", **kwargs)


@register_model
def meliusnet_a(**kwargs):
    """MeliusNetA: blocks (4,5,5,6), 4 downsampling groups, 4.0 MB, 1.62e8 OPs (Table 1; see the spec
    comment for the groups the text contradicts)."""
    return _meliusnet("a", **kwargs)


@register_model
def meliusnet_b(**kwargs):
    """MeliusNetB: blocks (4,6,8,6), 2 downsampling groups, 5.0 MB, 1.96e8 OPs (Table 1)."""
    return _meliusnet("b", **kwargs)


@register_model
def meliusnet_c(**kwargs):
    """MeliusNetC: blocks (3,5,10,6), 4 downsampling groups, 4.5 MB, 1.50e8 OPs (Table 1; the last
    factor is 288/832, see the spec comment)."""
    return _meliusnet("c", **kwargs)
