"""The AlexNet-based binary networks of larq-zoo: XNOR-Net (Rastegari et al., 2016) and DoReFa-Net (Zhou et
al., 2016), as ``larq_zoo.literature.XNORNet`` and ``DoReFaNet``.

Each network is one row of ``ALEXNET_SPEC``: its layer list, written as small tuples that
:func:`build_layer` turns into blocks. The first group (up to the first binary layer) is the stem that ``stem=``
replaces; the last entry is the full-precision classifier. Shapes at 224x224: 56 (XNOR) or 54 (DoReFa) after the
stem, 6x6x256 before the fully connected layers.

Where these differ from larq-zoo without changing a parameter count:

- XNOR-Net's "fc6" and "fc7" are, in larq-zoo, a 6x6 valid conv and a 1x1 conv on a 1x1 map: here binary dense
  layers over the flattened 6x6x256 map (the same weights and MACs at 224x224; any input size works);
- TensorFlow's asymmetric "same" padding (one more pixel at the bottom/right) becomes symmetric padding of the
  same output size (XNOR's 11x11 s4 conv: pad 4; the "same" 3/2 max pools: pad 1);
- binary convs pad their binary input with -1 where larq pads with 0 (a 1-bit kernel holds no 0);
- XNOR-Net's weight scale is mean |W| per output channel of the latent weights, larq-zoo's of the weights clipped
  to [-1, 1] (equal under larq-zoo's weight clip, which is left to training here).
"""
from mxnet.gluon import HybridBlock, nn

from ..nn.layers import QConv2D, QDense
from ..registry import register_model
from .common import family_stem

# (kind, arguments): fp_conv (channels, kernel, stride, pad, bias), bn (scale, eps), relu, pool (pad), bconv
# (channels, kernel, pad), flatten, bdense (units), clip (0..1), fc (bias).
ALEXNET_SPEC = {
    "xnornet": (
        (("fp_conv", 96, 11, 4, 4, False), ("bn", False, 1e-5), ("relu",)),
        (("pool", 0), ("bn", False, 1e-4), ("bconv", 256, 5, 2), ("pool", 0),
         ("bn", False, 1e-4), ("bconv", 384, 3, 1), ("bn", False, 1e-4), ("bconv", 384, 3, 1),
         ("bn", False, 1e-4), ("bconv", 256, 3, 1), ("pool", 0),
         ("bn", False, 1e-4), ("flatten",), ("bdense", 4096), ("bn", False, 1e-4), ("bdense", 4096), ("bn", False, 1e-3),
         ("relu",)),
        ("fc", False)),
    "dorefanet": (
        (("fp_conv", 96, 12, 4, 0, True),),
        (("bconv", 256, 5, 2), ("bn", False, 1e-4), ("pool", 1),
         ("bconv", 384, 3, 1), ("bn", False, 1e-4), ("pool", 1),
         ("bconv", 384, 3, 1), ("bn", False, 1e-4),
         ("bconv", 256, 3, 1), ("bn", False, 1e-4), ("pool", 0), ("flatten",),
         ("bdense", 4096), ("bn", False, 1e-4), ("bdense", 4096), ("bn", False, 1e-4), ("clip",)),
        ("fc", True)),
}

# XNOR-Net: sign activations, sign weights times mean |W| per output channel (XNOR-Net section 3.2).
# DoReFa-Net W1A2: 2-bit DoReFa activations, sign weights times mean |W| of the layer (larq-zoo's
# magnitude_aware_sign_unclipped).
ALEXNET_LAYER_DEFAULTS = {"xnornet": dict(scaling="channel", grad_cancel=1.0),
                          "dorefanet": dict(bits_a=2, scaling="scalar")}

# Top-1 (%) and size (MB) of the AlexNet variants as Tang et al. Table 1 lists them (XNOR 44.2%, DoReFa with 2-bit
# activations 49.8%; 22.6 MB both). larq-zoo's own training: 44.96% and 53.39%.
ALEXNET_REPORTED = {"xnornet": dict(top1=44.2, size_mb=22.6), "dorefanet": dict(top1=49.8, size_mb=22.6)}
PAPER_NUMBERS = {name: (None, row["size_mb"], "Tang et al. Table 1") for name, row in ALEXNET_REPORTED.items()}
# larq-zoo's docstrings give 62,396,768 and 62,403,912 parameters, which count every BatchNorm's moving mean and
# variance (2 x 9,664 and 2 x 9,472); the trainable parameters are those minus them.
LARQ_TRAINABLE_PARAMS = {"xnornet": 62_377_440, "dorefanet": 62_384_968}


class Clip(HybridBlock):
    """clip(x, 0, 1): DoReFa-Net's activation before its full-precision classifier."""

    def hybrid_forward(self, F, x):
        return F.clip(x, 0, 1)


def build_layer(spec, in_channels=0):
    """The block of one ``ALEXNET_SPEC`` entry; ``in_channels``: what a binary conv receives (0: inferred)."""
    kind, args = spec[0], spec[1:]
    if kind == "fp_conv":
        channels, kernel, stride, pad, bias = args
        return nn.Conv2D(channels, kernel, strides=stride, padding=pad, use_bias=bias)
    if kind == "bn":
        scale, eps = args
        return nn.BatchNorm(scale=scale, epsilon=eps)
    if kind == "relu":
        return nn.Activation("relu")
    if kind == "pool":
        return nn.MaxPool2D(3, 2, args[0])
    if kind == "bconv":
        channels, kernel, pad = args
        return QConv2D(channels, kernel, padding=pad, in_channels=in_channels)
    if kind == "flatten":
        return nn.Flatten()
    if kind == "bdense":
        return QDense(args[0])
    if kind == "clip":
        return Clip()
    raise KeyError(kind)


class LayerListNet(HybridBlock):
    """A network from a ``(stem layers, body layers, classifier)`` row of :data:`ALEXNET_SPEC`; ``stem`` other
    than 'original' replaces the stem layers by a shared stem of the same width."""

    def __init__(self, spec, stem="original", classes=1000, **kwargs):
        super().__init__(**kwargs)
        stem_layers, body, classifier = spec
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="")
            if stem == "original":
                self.features.add(*(build_layer(layer) for layer in stem_layers))
            else:
                self.features.add(family_stem(stem, stem_layers[0][1], {}))
            channels = stem_layers[0][1]
            for layer in body:
                self.features.add(build_layer(layer, channels))
                channels = layer[1] if layer[0] == "bconv" else channels
            self.output = nn.Dense(classes, use_bias=classifier[1])

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


@register_model(layer_defaults=ALEXNET_LAYER_DEFAULTS["xnornet"])
def xnornet(**kwargs):
    """XNOR-Net (Rastegari et al., 2016) on AlexNet as larq-zoo's XNORNet: binary convs and fc6/fc7 with per-channel
    weight scales, BN before each (Tang et al. Table 1: 44.2% top-1, 22.6 MB)."""
    return LayerListNet(ALEXNET_SPEC["xnornet"], **kwargs)


@register_model(layer_defaults=ALEXNET_LAYER_DEFAULTS["dorefanet"])
def dorefanet(**kwargs):
    """DoReFa-Net W1A2 (Zhou et al., 2016) on AlexNet as larq-zoo's DoReFaNet: 1-bit scaled weights, 2-bit
    activations (Tang et al. Table 1: 49.8% top-1, 22.6 MB). No packed kernel runs 2-bit activations."""
    return LayerListNet(ALEXNET_SPEC["dorefanet"], **kwargs)
