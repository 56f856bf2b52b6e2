"""Parts shared by the model families: stems, dense blocks, transitions, channel shuffle, head, and the
base class whose ``feature_taps`` is the backbone contract of detection."""
import collections

from mxnet.gluon import HybridBlock, nn

from ..nn.layers import QConv2D
from ..nn.normalization import make_norm
from ..errors import UsageError

STEMS = ("grouped", "7x7", "thumbnail")


class GroupedConv2D(nn.Conv2D):
    """``nn.Conv2D`` with ``groups`` whose output, and the gradient it sends back, are in MXNet's default
    (NCHW) memory layout.

    For a grouped convolution with few input channels per group (4 and 8 in the grouped stem), oneDNN in
    MXNet 1.9.1 picks layouts for its output and for its input's gradient that the BatchNorm, ReLU and
    pooling around it then run through their slow generic code: at batch 8 the stem's conv + BatchNorm took
    1.7 s of a training step forward, and each of the two BatchNorms before the grouped convs 0.22 s
    backward, instead of a few ms. Reshaping the output to its own shape reorders it once; a whole-axis
    ``slice_axis`` of the input does the same for the gradient (its backward writes a fresh NCHW array,
    where a reshape or an elementwise op keep the layout). Both are free on arrays already in the default
    layout. :func:`~binary_models.convert` turns them off (``default_layout``): inference has no gradient,
    and the operators after the stem take NCHW anyway."""

    default_layout = True

    def hybrid_forward(self, F, x, weight, bias=None):
        if not self.default_layout:
            return super().hybrid_forward(F, x, weight, bias)
        out = super().hybrid_forward(F, F.slice_axis(x, axis=1, begin=0, end=None), weight, bias)
        return F.reshape(out, shape=(0, 0, 0, 0))


def float_conv(channels, kernel_size, groups=1, **kwargs):
    """A full-precision conv without bias: :class:`GroupedConv2D` when grouped, else ``nn.Conv2D``."""
    return (GroupedConv2D if groups > 1 else nn.Conv2D)(channels, kernel_size, groups=groups, use_bias=False,
                                                         **kwargs)


def make_stem(kind, channels=64):
    """The full-precision first layers.

    'grouped':   MeliusNet section 3.3 / Fig. 2b: 3x3 s2 -> 32, 3x3 g4 -> 32, 3x3 g8 -> ``channels``,
                 each followed by BN + ReLU, then MaxPool 3/2 (0.69e8 instead of 1.18e8 OPs at 224x224).
    '7x7':       the classic 7x7 s2 conv with ``channels`` outputs, BN, ReLU, MaxPool 3/2 (Fig. 2a).
    'thumbnail': one 3x3 s1 conv, BN, ReLU, no pooling: for inputs of about 32x32 pixels.
    (BN: the normalisation :func:`~binary_models.normalization.make_norm` makes.)
    """
    stem = nn.HybridSequential(prefix="stem_")
    with stem.name_scope():
        if kind == "grouped":
            for width, groups, stride in ((32, 1, 2), (32, 4, 1), (channels, 8, 1)):
                stem.add(float_conv(width, 3, strides=stride, padding=1, groups=groups),
                         make_norm(width), nn.Activation("relu"))
            stem.add(nn.MaxPool2D(3, 2, 1))
        elif kind == "7x7":
            stem.add(nn.Conv2D(channels, 7, strides=2, padding=3, use_bias=False), make_norm(channels),
                     nn.Activation("relu"), nn.MaxPool2D(3, 2, 1))
        elif kind == "thumbnail":
            stem.add(nn.Conv2D(channels, 3, strides=1, padding=1, use_bias=False), make_norm(channels),
                     nn.Activation("relu"))
        else:
            raise UsageError("unknown stem %r; allowed: %s" % (kind, ", ".join(map(repr, STEMS))))
    return stem


def family_stem(kind, channels, own):
    """``own[kind](channels)`` for a family's own stems (``own``: name -> function), else :func:`make_stem`; an
    unknown ``kind`` raises, listing both."""
    if kind in own:
        return own[kind](channels)
    if kind not in STEMS:
        raise UsageError("unknown stem %r; allowed: %s" % (kind, ", ".join(map(repr, tuple(own) + STEMS))))
    return make_stem(kind, channels)


def reduced_channels(channels, rate):
    """Width after a transition that divides ``channels`` by ``rate``, kept a multiple of 32
    (the rounding of the authors' code: ``round((c // rate) / 32) * 32``)."""
    return int(round((channels // rate) / 32)) * 32


class ChannelShuffle(HybridBlock):
    """ShuffleNet's channel shuffle: (N, g*c, H, W) -> (N, c*g, H, W) interleaving the ``groups``."""

    def __init__(self, groups, **kwargs):
        super().__init__(**kwargs)
        self.groups = groups

    def hybrid_forward(self, F, x):
        x = F.reshape(x, shape=(0, -4, self.groups, -1, -2))
        return F.reshape(F.swapaxes(x, 1, 2), shape=(0, -3, -2))


def binary_conv_unit(channels, dilation=1, strides=1, in_channels=0):
    """BN -> sign -> binary 3x3 conv (MeliusNet section 3.4's layer order; the sign is QConv2D's).
    ``in_channels``: the input's channels (0: inferred at the first call, as in Gluon)."""
    unit = nn.HybridSequential(prefix="")
    unit.add(make_norm(in_channels), QConv2D(channels, 3, strides=strides, padding=dilation, dilation=dilation))
    return unit


class DenseBlock(HybridBlock):
    """Computes ``growth`` new channels with a binary 3x3 conv and concatenates them to its input
    (BinaryDenseNet section 4; MeliusNet section 3.1)."""

    def __init__(self, growth=64, dilation=1, in_channels=0, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.body = binary_conv_unit(growth, dilation, in_channels=in_channels)

    def hybrid_forward(self, F, x):
        return F.concat(x, self.body(x), dim=1)


class Transition(HybridBlock):
    """BN -> MaxPool 2/2 -> ReLU -> [ChannelShuffle(16)] -> full-precision 1x1 conv (MeliusNet section 3.3,
    BinaryDenseNet section 4.2). The shuffle is added only when the conv is grouped, with 16 groups as in
    the authors' code; ``pool=False`` keeps the resolution (dilated BinaryDenseNet)."""

    SHUFFLE_GROUPS = 16

    def __init__(self, channels, groups=1, pool=True, in_channels=0, **kwargs):
        super().__init__(**kwargs)
        self.body = nn.HybridSequential(prefix="")
        with self.name_scope():
            self.body.add(make_norm(in_channels))
            if pool:
                self.body.add(nn.MaxPool2D(2, 2))
            self.body.add(nn.Activation("relu"))
            if groups > 1:
                self.body.add(ChannelShuffle(self.SHUFFLE_GROUPS))
            self.body.add(float_conv(channels, 1, groups=groups))

    def hybrid_forward(self, F, x):
        return self.body(x)


FeatureTap = collections.namedtuple("FeatureTap", "stride index normalized channels")
FeatureTap.__doc__ = """A feature map a detection head reads: at ``stride``, available after ``features[index]``;
``normalized``: it has been through BatchNorm + ReLU already (else the head adds them); ``channels`` wide."""


class StagedNet(HybridBlock):
    """What every classifier here shares, and the backbone contract of detection: ``features`` (stem,
    stages, then the head's BN -> ReLU -> global average pool -> flatten, like GluonCV's models) and
    ``output`` (the full-precision FC). Subclasses add the stem and stages to ``features`` inside
    ``with self.name_scope()``, call :meth:`end_stage` after each stage and :meth:`add_head` last.

    :meth:`feature_taps` says where SSD reads the maps at strides 16 and 32 (ends of the third and fourth
    stages; the latter through the head's own BN + ReLU), so any family can be a detection backbone."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.stage_ends, self.widths = [], []
        self.head_norm_end = None
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="")

    def end_stage(self, channels):
        """Mark the end of a stage whose output has ``channels`` channels."""
        self.stage_ends.append(len(self.features) - 1)
        self.widths.append(channels)

    def add_head(self, classes, norm=True, relu=True, use_bias=True):
        """BN -> ReLU -> global average pool -> full-precision FC (the authors' head; the pool follows the
        final map size, so any input size works). ``norm=False`` leaves out the BN (larq-zoo's QuickNet:
        ReLU -> pool), ``relu=False`` the ReLU too (Bi-RealNet, Real-to-Binary, ReActNet: pool -> FC)."""
        if not (isinstance(classes, int) and classes >= 1):
            raise UsageError("classes must be an integer >= 1, got %r" % (classes,))
        if norm:
            self.features.add(make_norm(self.widths[-1]))
        if relu:
            self.features.add(nn.Activation("relu"))
        if norm and relu:
            self.head_norm_end = len(self.features) - 1
        self.features.add(nn.GlobalAvgPool2D(), nn.Flatten())
        self.output = nn.Dense(classes, use_bias=use_bias)

    def feature_taps(self):
        """The maps a detection head reads: stride 16 (end of stage 3) and stride 32 (end of stage 4, after the
        head's BN + ReLU where the head has them), as :class:`FeatureTap`s."""
        last = (FeatureTap(32, self.head_norm_end, True, self.widths[3]) if self.head_norm_end is not None
                else FeatureTap(32, self.stage_ends[3], False, self.widths[3]))
        return [FeatureTap(16, self.stage_ends[2], False, self.widths[2]), last]

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


class DenseStageNet(StagedNet):
    """The network shape shared by BinaryDenseNet and MeliusNet: stem, four stages of units that each add
    ``growth`` channels, transitions that reduce the width by ``rates`` between stages, and the head.

    ``make_unit(in_channels, growth, dilation)`` returns the blocks of one unit (a DenseBlock, or a DenseBlock
    and an ImprovementBlock)."""

    def __init__(self, make_unit, blocks, rates, downsample_groups=1, dilation=(1, 1, 1, 1), growth=64,
                 init_channels=64, stem="grouped", classes=1000, **kwargs):
        super().__init__(**kwargs)
        if len(rates) != len(blocks) - 1:
            raise UsageError("need one reduction rate per transition: %d stages, %d rates" % (len(blocks), len(rates)))
        for name, value in (("growth", growth), ("init_channels", init_channels)):
            if not (isinstance(value, int) and value >= 1):
                raise UsageError("%s must be an integer >= 1, got %r" % (name, value))
        with self.name_scope():
            self.features.add(make_stem(stem, init_channels))
            channels = init_channels
            for stage, count in enumerate(blocks):
                if stage > 0:
                    reduced = reduced_channels(channels, rates[stage - 1])
                    self.features.add(Transition(reduced, downsample_groups, pool=dilation[stage] == 1,
                                                 in_channels=channels))
                    channels = reduced
                for _ in range(count):
                    self.features.add(*make_unit(channels, growth, dilation[stage]))
                    channels += growth
                self.end_stage(channels)
            self.add_head(classes)
