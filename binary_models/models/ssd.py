"""SSD detectors with binary backbones (BinaryDenseNet section 5.3, Table 8), on GluonCV's own SSD.

GluonCV's :class:`gluoncv.model_zoo.ssd.SSD` (anchor generator, class/box predictors, decoders, NMS) is
used unchanged; this module only supplies its ``features``: a BinaryDenseNet or MeliusNet backbone whose
feature maps at strides 16 and 32 (the ends of its third and fourth stages) feed the head, followed by
SSD's extra layers, each halving the resolution, down to 1x1.

Which layers are binary (sign of the input, sign of the weights):
  * the backbone's 3x3 convolutions of the Dense and Improvement blocks, exactly as in classification;
  * with ``binary_extras=True`` also the 3x3 stride-2 convolution of every extra layer (BN -> sign -> 3x3).
Full precision: the backbone's stem and 1x1 transition convolutions (as in the papers), the BatchNorm +
ReLU on each tapped map, the extra layers' 1x1 convolutions (and by default their 3x3 ones), and SSD's
3x3 class and box predictors. The paper does not state the head's precision; full precision is GluonCV's.

Registered names follow GluonCV's ``ssd_{size}_{base}_{dataset}``: ``_voc`` (20 classes), ``_coco``
(80 classes) and ``_custom`` (``classes=[...]``). :func:`get_ssd_model` also builds any other data shape
(e.g. ``ssd_128_binary_densenet28_custom``) with the SSD paper's anchor scales.
"""
import re

import mxnet as mx
from mxnet.gluon import HybridBlock, nn

from .. import model_zoo
from ..model_zoo import get_model, register_model
from .common import DenseStageNet, binary_conv_unit

# Aspect ratios per output layer: GluonCV's presets for SSD300/SSD512 (SSD paper section 2.2 / 3.1).
ASPECT_RATIOS = [[1, 2, 0.5]] + [[1, 2, 0.5, 3, 1.0 / 3]] * 3 + [[1, 2, 0.5]] * 2
# data shape: anchor sizes (len = output layers + 1) per dataset, in pixels of the data shape; the
# values of GluonCV's ssd_300_vgg16_atrous_* and ssd_512_resnet50_v1_* presets. '_custom' uses VOC's.
ANCHOR_SIZES = {
    300: {"voc": (30, 60, 111, 162, 213, 264, 315), "coco": (21, 45, 99, 153, 207, 261, 315)},
    512: {"voc": (51.2, 102.4, 189.4, 276.4, 363.52, 450.6, 492),
          "coco": (51.2, 133.12, 215.04, 296.96, 378.88, 460.8, 542.72)},
}
# data shape: channels of the four extra layers (SSD300: the SSD paper's; SSD512: GluonCV's ResNet SSD;
# other shapes: SSD512's).
EXTRA_FILTERS = {300: (512, 256, 256, 256), 512: (512, 512, 256, 256)}
# The networks of the issue: (data shape, backbone). BinaryDenseNet Table 8 reports 37 and 45 at 512.
REGISTERED_NETWORKS = (
    (512, "binary_densenet37"), (512, "binary_densenet45"), (512, "binary_densenet28"),
    (300, "binary_densenet28"), (512, "meliusnet22"), (512, "meliusnet29"),
)
DATASETS = ("voc", "coco", "custom")
# Other data shapes: the SSD paper's scales (section 2.2), s_k = 0.2 + 0.14 (k - 1) of the image for the
# six maps (0.2 ... 0.9) and 1.04 closing the sequence. On the coarse grids of small inputs (8x8 at 128)
# they give each object several matching anchors; SSD512's sizes scaled down (0.1 ...) give about one.
PAPER_SCALES = (0.2, 0.34, 0.48, 0.62, 0.76, 0.9, 1.04)
REFERENCE_SHAPE = 512  # whose extra-layer widths other data shapes use


def voc_classes():
    from gluoncv.data import VOCDetection
    return VOCDetection.CLASSES


def coco_classes():
    from gluoncv.data import COCODetection
    return COCODetection.CLASSES


def extra_layer(channels, binary=False):
    """One SSD extra layer: a full-precision 1x1 conv -> BN -> ReLU, then a 3x3 stride-2 conv -> BN -> ReLU
    (GluonCV's ``FeatureExpander`` with BatchNorm). ``binary``: the 3x3 conv is BN -> sign -> binary 3x3
    conv (the backbone's unit), with no ReLU before its BN, since a sign after a ReLU would be constant."""
    layer = nn.HybridSequential(prefix="")
    layer.add(nn.Conv2D(channels, 1, use_bias=False), nn.BatchNorm())
    if binary:
        layer.add(binary_conv_unit(channels, strides=2))
    else:
        layer.add(nn.Activation("relu"), nn.Conv2D(channels, 3, strides=2, padding=1, use_bias=False))
    layer.add(nn.BatchNorm(), nn.Activation("relu"))
    return layer


class DenseStageFeatures(HybridBlock):
    """SSD features from a :class:`DenseStageNet` (BinaryDenseNet, MeliusNet): the backbone's map at
    stride 16 (end of stage 3) through a new BN + ReLU, its map at stride 32 (end of stage 4) through the
    classifier's own final BN + ReLU, then one map per extra layer.

    ``self.base`` is the backbone's ``features`` sequence, so its parameters keep the names of a
    classification checkpoint (see :meth:`load_backbone`); the global pool after them is never run."""

    def __init__(self, backbone, extra_filters, binary_extras=False, **backbone_kwargs):
        super().__init__()
        net = get_model(backbone, **backbone_kwargs)
        if not isinstance(net, DenseStageNet):
            raise ValueError("SSD backbone %r is not a BinaryDenseNet/MeliusNet-style network" % backbone)
        self.backbone = backbone
        self._stride16_index = net.stage_ends[2]
        self._last_index = net.stage_ends[3] + 2  # the classifier head's BN and ReLU
        with self.name_scope():
            self.base = net.features
            self.stride16_norm = nn.HybridSequential(prefix="")
            self.stride16_norm.add(nn.BatchNorm(), nn.Activation("relu"))
            self.extras = nn.HybridSequential(prefix="")
            for channels in extra_filters:
                self.extras.add(extra_layer(channels, binary_extras))

    def hybrid_forward(self, F, x):
        maps = []
        for index in range(self._last_index + 1):
            x = self.base[index](x)
            if index == self._stride16_index:
                maps.append(self.stride16_norm(x))
        maps.append(x)
        for layer in self.extras:
            x = layer(x)
            maps.append(x)
        return maps

    def load_backbone(self, path, ctx=mx.cpu()):
        """Load the ``features.*`` parameters of a classification checkpoint of the backbone (saved by
        ``train_imagenet.py`` with ``save_parameters``) into ``self.base``; the classifier's ``output.*``
        is dropped. Raises ``ValueError`` naming missing, unexpected or mismatched parameters."""
        saved = mx.nd.load(path)
        if not isinstance(saved, dict):
            raise ValueError("%s holds no named parameters" % path)
        params = self.base._collect_params_with_prefix("features")
        missing = sorted(set(params) - set(saved))
        unexpected = sorted(k for k in set(saved) - set(params) if not k.startswith("output."))
        if missing or unexpected:
            raise ValueError("%s is not a %s checkpoint: %s" % (path, self.backbone, "; ".join(
                "%s %s" % (what, ", ".join(keys[:5]) + (" ..." if len(keys) > 5 else ""))
                for what, keys in (("missing", missing), ("unexpected", unexpected)) if keys)))
        for key, param in params.items():
            try:
                param._load_init(saved[key], ctx, cast_dtype=True)
            except AssertionError as err:
                raise ValueError("%s does not fit %s: %s" % (path, self.backbone, err))


def feature_map_sizes(features, data_shape):
    """Side lengths of the feature maps ``features`` gives for a square input of ``data_shape`` pixels
    (symbolic shape inference; nothing is computed)."""
    outputs = features(mx.sym.var("data"))
    _, shapes, _ = mx.sym.Group(outputs).infer_shape(data=(1, 3, data_shape, data_shape))
    return [shape[2] for shape in shapes]


def anchor_sizes(data_shape, dataset):
    """The anchor sizes of ``data_shape`` in pixels: the preset's, else the SSD paper's scales."""
    if data_shape in ANCHOR_SIZES:
        return list(ANCHOR_SIZES[data_shape]["coco" if dataset == "coco" else "voc"])
    return [s * data_shape for s in PAPER_SCALES]


def build_ssd(backbone, data_shape, classes, dataset="custom", extra_filters=None, binary_extras=False,
              **backbone_kwargs):
    """GluonCV's SSD with a binary ``backbone`` for ``data_shape`` x ``data_shape`` inputs.

    Anchor sizes and extra-layer widths are the presets' for 300 and 512; other shapes use the SSD paper's
    scales and SSD512's widths. Anchor steps are ``data_shape / map size`` of each output map (for 512:
    GluonCV's 16, 32, ..., 512). ``backbone_kwargs`` (``stem``, ``growth``, ...) go to the backbone."""
    from gluoncv.model_zoo.ssd import SSD
    if extra_filters is None:
        extra_filters = EXTRA_FILTERS.get(data_shape, EXTRA_FILTERS[REFERENCE_SHAPE])
    features = DenseStageFeatures(backbone, extra_filters, binary_extras, **backbone_kwargs)
    steps = [data_shape / size for size in feature_map_sizes(features, data_shape)]
    return SSD(None, data_shape, features=lambda **_: features, num_filters=None,
               sizes=anchor_sizes(data_shape, dataset), ratios=ASPECT_RATIOS, steps=steps,
               classes=list(classes), pretrained=False)


def ssd_name(data_shape, backbone, dataset):
    """GluonCV's naming: ``ssd_512_binary_densenet37_voc``."""
    return "ssd_%d_%s_%s" % (data_shape, backbone, dataset)


def _dataset_classes(dataset, classes):
    if dataset == "custom":
        if not classes:
            raise ValueError("a _custom SSD needs classes=[...] (the names of its foreground classes)")
        return list(classes)
    if classes is not None:
        raise ValueError("a _%s SSD has the %s classes; use the _custom network for others" % (dataset, dataset))
    return list(voc_classes() if dataset == "voc" else coco_classes())


def ssd_factory(data_shape, backbone, dataset, register=False):
    """The GluonCV-style factory of ``ssd_{data_shape}_{backbone}_{dataset}`` (``classes`` only for
    ``_custom``): registered (``register``, kind 'detection') or only wrapped by
    :func:`~binary_models.model_zoo.model_factory` for its layer options and GluonCV arguments."""
    def factory(classes=None, backbone_params=None, **kwargs):
        net = build_ssd(backbone, data_shape, _dataset_classes(dataset, classes), dataset, **kwargs)
        if backbone_params:
            net.features.load_backbone(backbone_params)
        return net
    factory.__name__ = factory.__qualname__ = ssd_name(data_shape, backbone, dataset)
    factory.__doc__ = ("SSD%d with a %s backbone for %s (BinaryDenseNet section 5.3). ``backbone_params``: "
                       "a classification checkpoint of the backbone to start from; GluonCV's "
                       "``pretrained_base`` is ignored (nothing is downloaded)."
                       % (data_shape, backbone, "custom classes" if dataset == "custom" else dataset.upper()))
    return register_model(factory, kind="detection") if register else model_zoo.model_factory(factory)


DETECTION_MODELS = {}
for _shape, _backbone in REGISTERED_NETWORKS:
    for _dataset in DATASETS:
        _name = ssd_name(_shape, _backbone, _dataset)
        DETECTION_MODELS[_name] = globals()[_name] = ssd_factory(_shape, _backbone, _dataset, register=True)


def get_detection_model_list():
    """Names of the registered SSD networks."""
    return model_zoo.get_model_list(kind="detection")


SSD_NAME = re.compile(r"^ssd_(\d+)_(.+)_(%s)$" % "|".join(DATASETS))


def get_ssd_model(name, **kwargs):
    """The SSD called ``name``: a registered one (this package's or GluonCV's), or
    ``ssd_{shape}_{backbone}_{dataset}`` for any BinaryDenseNet/MeliusNet backbone at any data shape
    (e.g. ``ssd_128_binary_densenet28_custom``; see :func:`build_ssd` for its anchors)."""
    key = name.lower()
    match = SSD_NAME.match(key)
    if key in DETECTION_MODELS or not match or match.group(2) not in model_zoo.get_model_list():
        return get_model(name, **kwargs)
    return ssd_factory(int(match.group(1)), match.group(2), match.group(3))(**kwargs)
