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
import functools
import os
import re
import warnings

import mxnet as mx
from mxnet.gluon import HybridBlock, nn

from .. import registry
from ..nn.normalization import default_norm, make_norm
from ..registry import register_model
from .common import StagedNet, binary_conv_unit
from ..errors import UsageError

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
DATASETS = ("voc", "coco", "custom")
# The backbones of the registered detectors: each classification family's members (BinaryDenseNet Table 8
# reports binary_densenet37/45 at 512).
BACKBONES = ("binary_densenet28", "binary_densenet37", "binary_densenet45", "meliusnet22", "meliusnet29",
             "meliusnet42", "meliusnet59", "resnet_e18", "resnet_e34")
# Every registered detector: ssd_{data shape}_{backbone}_{dataset} for the presets' two data shapes. Other
# shapes are built by get_ssd_model.
REGISTERED_SSDS = tuple("ssd_%d_%s_%s" % (shape, backbone, dataset) for shape in sorted(ANCHOR_SIZES)
                        for backbone in BACKBONES for dataset in DATASETS)
SSD_NAME = re.compile(r"^ssd_(\d+)_(.+)_(%s)$" % "|".join(DATASETS))

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
    (GluonCV's ``FeatureExpander`` with BatchNorm, or the model's ``norm_layer``). ``binary``: the 3x3 conv is
    BN -> sign -> binary 3x3 conv (the backbone's unit), with no ReLU before its BN, since a sign after a ReLU
    would be constant."""
    layer = nn.HybridSequential(prefix="")
    layer.add(nn.Conv2D(channels, 1, use_bias=False), make_norm(channels))
    if binary:
        layer.add(binary_conv_unit(channels, strides=2, in_channels=channels))
    else:
        layer.add(nn.Activation("relu"), nn.Conv2D(channels, 3, strides=2, padding=1, use_bias=False))
    layer.add(make_norm(channels), nn.Activation("relu"))
    return layer


def build_backbone(backbone, **backbone_kwargs):
    """The classifier ``backbone`` (a registered name) as a detection backbone: a :class:`StagedNet`."""
    factory = registry.factory_of(backbone)
    if factory is None:
        raise UsageError("unknown SSD backbone %r; this package's backbones: %s"
                         % (backbone, ", ".join(registry.model_names())))
    net = factory(**backbone_kwargs)
    if not isinstance(net, StagedNet):
        raise UsageError("SSD backbone %r has no feature taps (only StagedNet models: BinaryDenseNet, MeliusNet, "
                         "ResNet-E)" % backbone)
    return net


class StagedFeatures(HybridBlock):
    """SSD features from a :class:`StagedNet` backbone (BinaryDenseNet, MeliusNet, ResNet-E): the maps its
    :meth:`~StagedNet.feature_taps` name, each through BN + ReLU (a new one where the backbone has none),
    then one map per extra layer.

    ``self.base`` is the backbone's ``features`` sequence, so its parameters keep the names of a
    classification checkpoint (see :meth:`load_backbone`); the global pool after them is never run. Built
    inside the detector's name scope (GluonCV's SSD calls the ``features`` factory there), every parameter
    name starts with the detector's prefix, as GluonCV's ``save_params`` requires."""

    def __init__(self, backbone, extra_filters, binary_extras=False, **backbone_kwargs):
        super().__init__()
        self.backbone = backbone
        with self.name_scope():
            net = build_backbone(backbone, **backbone_kwargs)
            self.taps = net.feature_taps()
            self.base = net.features
            for tap in self.taps:
                if not tap.normalized:  # 'stride16_norm': the name of checkpoints before feature_taps
                    norm = nn.HybridSequential(prefix="")
                    norm.add(make_norm(tap.channels), nn.Activation("relu"))
                    setattr(self, "stride%d_norm" % tap.stride, norm)
            self.extras = nn.HybridSequential(prefix="")
            for channels in extra_filters:
                self.extras.add(extra_layer(channels, binary_extras))

    def hybrid_forward(self, F, x):
        maps, taps = [], {tap.index: tap for tap in self.taps}
        for index in range(max(taps) + 1):
            x = self.base[index](x)
            if index in taps:
                tap = taps[index]
                maps.append(x if tap.normalized else getattr(self, "stride%d_norm" % tap.stride)(x))
        x = maps[-1]
        for layer in self.extras:
            x = layer(x)
            maps.append(x)
        return maps

    def load_pretrained_backbone(self, root=None, ctx=None):
        """GluonCV's ``pretrained_base=True``: load the backbone's classification weights from
        ``{root}/{backbone}.params`` (where ``pretrained=True`` finds them). When the file is missing, warn
        naming it and keep the random weights: nothing is downloaded. Returns whether it loaded."""
        path = registry.pretrained_path(self.backbone, root)
        if not os.path.isfile(path):
            warnings.warn("pretrained_base=True: no weights for the backbone %r at %s, so it starts from random "
                          "weights. binary_models downloads nothing: train %s with train_imagenet.py and copy its "
                          ".params there (or pass root=..., or backbone_params=PATH)"
                          % (self.backbone, path, self.backbone), stacklevel=2)
            return False
        self.load_backbone(path, ctx or mx.cpu())
        return True

    def load_backbone(self, path, ctx=mx.cpu()):
        """Load the ``features.*`` parameters of a classification checkpoint of the backbone (saved by
        ``train_imagenet.py`` with ``save_parameters``) into ``self.base``; the classifier's ``output.*``
        is dropped. Raises ``ValueError`` naming missing, unexpected or mismatched parameters."""
        saved = mx.nd.load(path)
        if not isinstance(saved, dict):
            raise UsageError("%s holds no named parameters" % path)
        params = self.base._collect_params_with_prefix("features")
        missing = sorted(set(params) - set(saved))
        unexpected = sorted(k for k in set(saved) - set(params) if not k.startswith("output."))
        if missing or unexpected:
            raise UsageError("%s is not a %s checkpoint: %s" % (path, self.backbone, "; ".join(
                "%s %s" % (what, ", ".join(keys[:5]) + (" ..." if len(keys) > 5 else ""))
                for what, keys in (("missing", missing), ("unexpected", unexpected)) if keys)))
        for key, param in params.items():
            try:
                param._load_init(saved[key], ctx, cast_dtype=True)
            except AssertionError as err:
                raise UsageError("%s does not fit %s: %s" % (path, self.backbone, err))


def feature_map_sizes(features, data_shape):
    """Side lengths of the feature maps ``features`` gives for a square input of ``data_shape`` pixels
    (symbolic shape inference; nothing is computed)."""
    outputs = features(mx.sym.var("data"))
    _, shapes, _ = mx.sym.Group(outputs).infer_shape(data=(1, 3, data_shape, data_shape))
    return [shape[2] for shape in shapes]


@functools.lru_cache(maxsize=64)
def _anchor_steps(backbone, data_shape, extra_filters, backbone_options):
    """``data_shape / map size`` of each output map (GluonCV's 16, 32, ..., 512 for SSD512), from a
    throwaway copy of the features (the detector builds its own inside its name scope) with plain BatchNorm:
    the sizes do not depend on the normalisation, and every MXNet norm layer traces symbolically."""
    with default_norm():
        features = StagedFeatures(backbone, extra_filters, **dict(backbone_options))
    return tuple(data_shape / size for size in feature_map_sizes(features, data_shape))


def anchor_sizes(data_shape, dataset):
    """The anchor sizes of ``data_shape`` in pixels: the preset's, else the SSD paper's scales."""
    if data_shape in ANCHOR_SIZES:
        return list(ANCHOR_SIZES[data_shape]["coco" if dataset == "coco" else "voc"])
    return [s * data_shape for s in PAPER_SCALES]


def build_ssd(backbone, data_shape, classes, dataset="custom", extra_filters=None, binary_extras=False,
              pretrained_base=False, ctx=None, root=None, **backbone_kwargs):
    """GluonCV's SSD with a binary ``backbone`` for ``data_shape`` x ``data_shape`` inputs.

    Anchor sizes and extra-layer widths are the presets' for 300 and 512; other shapes use the SSD paper's
    scales and SSD512's widths. Anchor steps are ``data_shape / map size`` of each output map (for 512:
    GluonCV's 16, 32, ..., 512). ``backbone_kwargs`` (``stem``, ``growth``, ...) go to the backbone.
    ``pretrained_base``: load the backbone from ``{root}/{backbone}.params`` (see
    :meth:`StagedFeatures.load_pretrained_backbone`). The normalisation layers are those of the active
    :func:`~binary_models.normalization.norm_config`."""
    from gluoncv.model_zoo.ssd import SSD
    extra_filters = tuple(extra_filters or EXTRA_FILTERS.get(data_shape, EXTRA_FILTERS[REFERENCE_SHAPE]))
    steps = _anchor_steps(backbone, data_shape, extra_filters, tuple(sorted(backbone_kwargs.items())))

    def make_features(**_gluoncv_defaults):
        # GluonCV's SSD calls this inside its name scope, passing its own defaults (pretrained=False,
        # norm_layer=BatchNorm, ...); the model factory's norm_config and these arguments are what apply.
        features = StagedFeatures(backbone, extra_filters, binary_extras, **backbone_kwargs)
        if pretrained_base:
            features.load_pretrained_backbone(root, ctx)
        return features
    return SSD(None, data_shape, features=make_features, num_filters=None, sizes=anchor_sizes(data_shape, dataset),
               ratios=ASPECT_RATIOS, steps=list(steps), classes=list(classes), pretrained=False)


def ssd_name(data_shape, backbone, dataset):
    """GluonCV's naming: ``ssd_512_binary_densenet37_voc``."""
    return "ssd_%d_%s_%s" % (data_shape, backbone, dataset)


def _dataset_classes(dataset, classes):
    if dataset == "custom":
        if not classes:
            raise UsageError("a _custom SSD needs classes=[...] (the names of its foreground classes)")
        return list(classes)
    if classes is not None:
        raise UsageError("a _%s SSD has the %s classes; use the _custom network for others" % (dataset, dataset))
    return list(voc_classes() if dataset == "voc" else coco_classes())


def _ssd_builder(name):
    """The function building ``ssd_{data_shape}_{backbone}_{dataset}`` (``classes`` only for ``_custom``)."""
    match = SSD_NAME.match(name)
    if not match:
        raise UsageError("%r is not an SSD name (ssd_{data shape}_{backbone}_{%s})" % (name, "|".join(DATASETS)))
    data_shape, backbone, dataset = int(match.group(1)), match.group(2), match.group(3)

    def build(classes=None, backbone_params=None, transfer=None, **kwargs):
        if transfer is not None:
            if backbone_params:
                raise UsageError("%s: give transfer= or backbone_params=, not both (transfer loads the whole "
                                 "detector)" % name)
            return transferred_ssd(data_shape, backbone, dataset, transfer, classes, **kwargs)
        net = build_ssd(backbone, data_shape, _dataset_classes(dataset, classes), dataset, **kwargs)
        if backbone_params:
            net.features.load_backbone(backbone_params, kwargs.get("ctx") or mx.cpu())
        return net
    build.__name__ = build.__qualname__ = name
    build.__doc__ = ("SSD%d with a %s backbone for %s (BinaryDenseNet section 5.3). ``pretrained_base=True``: "
                     "the backbone's weights from ``{root}/%s.params`` (a warning names the path when it is "
                     "missing; nothing is downloaded); ``backbone_params``: a classification checkpoint of the "
                     "backbone to start from.%s"
                     % (data_shape, backbone, "custom classes" if dataset == "custom" else dataset.upper(), backbone,
                        " ``transfer='voc'`` or ``'coco'``: start from that detector's trained weights "
                        "(``{root}/%s.params``) with the class predictors reset to ``classes``, reusing the "
                        "weights of the classes both have (GluonCV's ``transfer``)."
                        % ssd_name(data_shape, backbone, "{transfer}") if dataset == "custom" else ""))
    return build


def transferred_ssd(data_shape, backbone, dataset, transfer, classes, pretrained_base=False, **kwargs):
    """GluonCV's ``transfer=`` of a ``_custom`` detector: the ``_{transfer}`` detector with its trained weights
    (``pretrained=True``: ``{root}/ssd_{shape}_{backbone}_{transfer}.params``), then ``reset_class(classes)``
    reusing the predictor weights of the classes both have. ``pretrained_base`` is moot (all is loaded)."""
    if dataset != "custom":
        raise UsageError("transfer= is for the _custom detectors (it resets the classes); %s has the %s classes"
                         % (ssd_name(data_shape, backbone, dataset), dataset))
    trained = [d for d in DATASETS if d != "custom"]
    if transfer not in trained:
        raise UsageError("transfer must be one of %s (the detector whose weights to start from), got %r"
                         % (", ".join(map(repr, trained)), transfer))
    classes = _dataset_classes("custom", classes)
    trained_name = ssd_name(data_shape, backbone, transfer)
    path = registry.pretrained_path(trained_name, kwargs.get("root"))
    if not os.path.isfile(path):
        raise FileNotFoundError("transfer=%r: no weights for %s at %s. binary_models downloads nothing: train it "
                                "(detection/train_ssd.py --network %s --data-shape %d --dataset %s) and put its "
                                ".params there (or pass root=...)"
                                % (transfer, trained_name, path, backbone, data_shape, transfer))
    net = get_ssd_model(trained_name, pretrained=True, **kwargs)
    net.reset_class(classes, reuse_weights=[c for c in classes if c in net.classes])
    return net


for _name in REGISTERED_SSDS:
    register_model(_ssd_builder(_name), kind="detection")


def get_detection_model_list():
    """Names of the registered SSD networks."""
    return registry.model_names(kind="detection")


def is_ssd_name(name):
    """True for ``ssd_{shape}_{backbone}_{dataset}`` with one of this package's backbones."""
    match = SSD_NAME.match(name.lower())
    return bool(match) and match.group(2) in registry.model_names()


def get_ssd_model(name, **kwargs):
    """This package's SSD called ``name``: a registered one, or ``ssd_{shape}_{backbone}_{dataset}`` for any of
    this package's backbones at any data shape (e.g. ``ssd_128_binary_densenet28_custom``; see
    :func:`build_ssd` for its anchors)."""
    key = name.lower()
    if not is_ssd_name(key):
        raise UsageError("%r is not an SSD of this package: ssd_{data shape}_{backbone}_{%s} with a backbone of %s"
                         % (name, "|".join(DATASETS), ", ".join(registry.model_names())))
    factory = registry.factory_of(key) or registry.model_factory(_ssd_builder(key), kind="detection")
    return factory(**kwargs)
