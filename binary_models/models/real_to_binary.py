"""Real-to-Binary Net (Martinez et al., 2020, "Training binary neural networks with real-to-binary
convolutions"), as larq-zoo's ``RealToBinaryNet`` (``r2b_bnn``): ResNet-18's layout with one binary 3x3 conv per
half block and the data-driven channel scaling of section 4.3.

Half block (Fig. 1 left, scaling as Fig. 1 right): ``BN -> sign -> binary 3x3 conv``, its output multiplied per
channel by a gate computed from the BN's output (global average pool -> FC to in/8 -> ReLU -> FC to out ->
sigmoid), then PReLU, plus the shortcut (identity, or AvgPool 2x2 -> full-precision 1x1 conv -> BN). Stem 7x7
s2 -> BN -> PReLU -> MaxPool 3/2 (larq-zoo's ``first_block`` of the StrongBaseline/Real-to-Binary nets); head
pool -> FC.

Statistics: the 1.68e9 BOPs of ReActNet Table 2 are reproduced exactly; its 1.56e8 FLOPs are not (counted here:
1.38e8, Bi-RealNet18's 1.39e8 plus the gates' 0.3e6), so the OPs row reads 1.64e8 against the table's 1.83e8. The
table does not say what the other 0.18e8 FLOPs are. 65.4% top-1 (ReActNet Table 2 and abstract: ReActNet-A's
69.4% is "4.0%" above it).
"""
from mxnet.gluon import HybridBlock, nn

from ..nn.layers import QConv2D
from ..nn.normalization import make_norm
from ..registry import register_model
from .common import StagedNet, family_stem

R2B_LAYER_DEFAULTS = dict(grad_cancel=1.0)  # larq's ste_sign: clip_value 1
GATE_REDUCTION = 8  # section 4.3 / larq-zoo's scaling_r
# name: (half blocks per stage, widths): larq-zoo builds 8 blocks of 2 halves, downsampling in blocks 4, 6, 8.
REAL_TO_BINARY_SPEC = {"real_to_binary": ((4, 4, 4, 4), (64, 128, 256, 512))}
# ReActNet Table 2: 65.4% top-1, 1.68e9 BOPs, 1.56e8 FLOPs, 1.83e8 OPs.
REAL_TO_BINARY_REPORTED = dict(top1=65.4, ops=1.83e8)
PAPER_NUMBERS = {"real_to_binary": (REAL_TO_BINARY_REPORTED["ops"], None, "ReActNet Table 2; FLOPs differ, see "
                                                                         "models/real_to_binary.py")}
# larq-zoo's r2b_bnn at 224x224, 1000 classes: 10,985,472 binary + 1,001,448 trainable float parameters.
LARQ_TRAINABLE_PARAMS = {"real_to_binary": 11_986_920}


def r2b_stem(channels):
    """7x7 s2 conv -> BN -> PReLU -> MaxPool 3/2 (larq-zoo: ``first_block(use_prelu=True)``)."""
    stem = nn.HybridSequential(prefix="stem_")
    with stem.name_scope():
        stem.add(nn.Conv2D(channels, 7, strides=2, padding=3, use_bias=False), make_norm(channels),
                 nn.PReLU(in_channels=channels), nn.MaxPool2D(3, 2, 1))
    return stem


class ScalingGate(HybridBlock):
    """Section 4.3's data-driven channel scaling: pool -> FC (in/8, no bias) -> ReLU -> FC (out, no bias) ->
    sigmoid, shaped (N, out, 1, 1) to multiply the binary conv's output."""

    def __init__(self, in_channels, channels, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.reduce = nn.Dense(in_channels // GATE_REDUCTION, use_bias=False, in_units=in_channels)
            self.expand = nn.Dense(channels, use_bias=False, in_units=in_channels // GATE_REDUCTION)

    def hybrid_forward(self, F, x):
        pooled = F.Pooling(x, kernel=(1, 1), global_pool=True, pool_type="avg")  # ~30x faster than mean on CPU
        z = F.relu(self.reduce(F.flatten(pooled)))
        return F.reshape(F.sigmoid(self.expand(z)), shape=(0, 0, 1, 1))


class RealToBinaryHalfBlock(HybridBlock):
    """BN -> sign -> binary 3x3 conv, scaled by :class:`ScalingGate` of the BN's output, PReLU, + shortcut."""

    def __init__(self, in_channels, channels, strides=1, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.norm = make_norm(in_channels)
            self.conv = QConv2D(channels, 3, strides=strides, padding=1, in_channels=in_channels)
            self.gate = ScalingGate(in_channels, channels)
            self.prelu = nn.PReLU(in_channels=channels)
            self.downsample = None
            if strides > 1 or in_channels != channels:
                self.downsample = nn.HybridSequential(prefix="down_")
                if strides > 1:
                    self.downsample.add(nn.AvgPool2D(strides, strides, ceil_mode=True))
                self.downsample.add(nn.Conv2D(channels, 1, use_bias=False, in_channels=in_channels),
                                    make_norm(channels))

    def hybrid_forward(self, F, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        normalized = self.norm(x)
        scaled = F.broadcast_mul(self.conv(normalized), self.gate(normalized))
        return self.prelu(scaled) + shortcut


class RealToBinaryNet(StagedNet):
    """``blocks`` half blocks per stage at ``widths``; the first half block of stages 2-4 downsamples."""

    def __init__(self, blocks, widths, stem="r2b", classes=1000, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.features.add(family_stem(stem, widths[0], {"r2b": r2b_stem}))
            channels = widths[0]
            for stage, (count, width) in enumerate(zip(blocks, widths)):
                for i in range(count):
                    self.features.add(RealToBinaryHalfBlock(channels, width, strides=2 if stage and not i else 1))
                    channels = width
                self.end_stage(width)
            self.add_head(classes, norm=False, relu=False)


@register_model(layer_defaults=R2B_LAYER_DEFAULTS)
def real_to_binary(**kwargs):
    """Real-to-Binary Net (Martinez et al., 2020; ReActNet Table 2: 65.4% top-1, 1.83e8 OPs), larq-zoo's
    ``RealToBinaryNet``: binary weights and activations with the data-driven scaling gates."""
    blocks, widths = REAL_TO_BINARY_SPEC["real_to_binary"]
    return RealToBinaryNet(blocks, widths, **kwargs)
