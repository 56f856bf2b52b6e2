"""GluonCV's own scripts, call by call in their order, on every binary classifier and every registered SSD family.

The scripts are GluonCV's (not part of this repository; docs/detection.md runs them unchanged through
``python -m binary_models.run``):

- ``scripts/classification/imagenet/train_imagenet.py``: ``get_model(name, ctx=, pretrained=, classes=,
  [norm_layer=gluoncv.nn.GroupNorm], [last_gamma=True])``, ``cast``, ``initialize(MSRAPrelu)``, ``--no-wd``,
  a ``'nag'`` Trainer, ``hybridize(static_alloc, static_shape)``, training steps, ``save_parameters`` /
  ``save_states``, and ``--resume-params`` / ``--resume-states``;
- ``scripts/detection/ssd/train_ssd.py``: ``get_model(net_name, pretrained_base=True,
  norm_layer=gluon.nn.BatchNorm)``, ``initialize``, anchors from a training-mode forward, GluonCV's SSD
  transforms on ``VOCDetection``, an ``'sgd'`` Trainer, ``SSDMultiBoxLoss``, ``set_nms`` and
  ``VOC07MApMetric``, ``save_params``, and ``--resume`` (``load_parameters``; older versions ``load_params``);
- ``scripts/detection/ssd/demo_ssd.py``: ``get_model(pretrained=False, pretrained_base=False)``,
  ``load_parameters``, ``set_nms(0.45, 200)``, ``presets.ssd.load_test``;
- GluonCV's fine-tuning and deployment idioms: ``reset_class(classes, reuse_weights=...)``, ``export_block``.

The keyword arguments and the calls are the scripts'; thin widths, few classes and 16x16 (classification) or
64x64 (detection) inputs keep each model to a few seconds.
"""
import os
import warnings

import numpy as np
import pytest
import mxnet as mx
from mxnet import autograd, gluon, nd
from mxnet.gluon import nn

import binary_models as bm
from binary_models.data import voc
from binary_models.models import ssd
from binary_models.models.resnet_e import ResNetEBlock
from binary_models.train.regularization import walk_blocks

from test_detection import class_rows

CTX = [mx.cpu()]
CLASSIFIERS = bm.get_model_list()
IMAGE_SIZE = 16  # classification input: the thumbnail stem's smallest (the last stage at 2x2)
SSD_INPUT = 64   # detection input fed to the registered SSD300 nets (any size runs; anchors follow the maps)
SSD_EXTRAS = [32, 32, 16, 16]  # thin extra layers (SSD300's: 512, 256, 256, 256)


@pytest.fixture(autouse=True, scope="module")
def gluoncv_sees_the_models():
    bm.register_with_gluoncv()


def get_model(name, **kwargs):
    from gluoncv.model_zoo import get_model as gluoncv_get_model
    return gluoncv_get_model(name, **kwargs)


def thin(name, stem="thumbnail"):
    """Options of a thin, quick member of ``name``'s family (GluonCV's scripts pass none of these)."""
    options = {"stem": stem}
    if name.startswith(("binary_densenet", "meliusnet")):
        options.update(growth=16, init_channels=16)
    return options


def thin_ssd(backbone):
    """Options of a thin, quick SSD with ``backbone``: the 7x7 stem's stride 4, as the backbones' own stems."""
    return dict(thin(backbone, stem="7x7"), extra_filters=SSD_EXTRAS)


# ---- train_imagenet.py --------------------------------------------------------------------------------
def imagenet_script_net(name, classes, use_gn=False, last_gamma=False, **options):
    """train_imagenet.py's model: ``get_model`` with the script's keyword arguments, then ``net.cast``."""
    import gluoncv
    kwargs = {"ctx": CTX, "pretrained": False, "classes": classes}
    if use_gn:
        kwargs["norm_layer"] = gluoncv.nn.GroupNorm
    if last_gamma:
        kwargs["last_gamma"] = True
    net = get_model(name, **kwargs, **options)
    net.cast("float32")
    return net


def imagenet_script_trainer(net, states=None):
    """``--no-wd``, the warm-up + cosine schedule and ``'nag'``, then ``--resume-states``."""
    from gluoncv.utils import LRScheduler, LRSequential
    for param in net.collect_params(".*beta|.*gamma|.*bias").values():
        param.wd_mult = 0.0
    schedule = LRSequential([LRScheduler("linear", base_lr=0, target_lr=0.1, nepochs=1, iters_per_epoch=1),
                             LRScheduler("cosine", base_lr=0.1, target_lr=0, nepochs=2, iters_per_epoch=1)])
    trainer = gluon.Trainer(net.collect_params(), "nag", {"wd": 1e-4, "momentum": 0.9, "lr_scheduler": schedule})
    if states:
        trainer.load_states(states)
    return trainer


def imagenet_script_step(net, trainer, data, label):
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    with autograd.record():
        loss = [loss_fn(net(x.astype("float32", copy=False)), y) for x, y in zip([data], [label])]
    for l in loss:
        l.backward()
    trainer.step(data.shape[0])


def imagenet_script_test(net, data, label):
    """The script's ``test``: top-1 accuracy in inference mode. (It runs before every save, which matters:
    after a step of a ``static_shape`` graph, MXNet 1.9.1's ``save_parameters`` writes BatchNorm's running
    statistics of the step before unless another forward ran first; GluonCV's resnet18_v1b does the same.)"""
    metric = mx.metric.Accuracy()
    metric.update([label], [net(data.astype("float32", copy=False))])
    return metric.get()[1]


@pytest.mark.parametrize("name, flags", [(name, {}) for name in CLASSIFIERS] +
                         [("resnet_e18", {"use_gn": True, "last_gamma": True})])
def test_train_imagenet_trains_validates_checkpoints_and_resumes_to_the_same_weights(name, flags, tmp_path):
    batches = [(nd.random.normal(shape=(2, 3, IMAGE_SIZE, IMAGE_SIZE)), nd.array([0, 3])) for _ in range(2)]
    # --mode hybrid; --use-gn needs --mode imperative: GluonCV's GroupNorm does not hybridize (its symbolic
    # reshape fails in MXNet 1.9.1, with GluonCV's own resnet18_v1b too)
    hybrid = not flags.get("use_gn")
    net = imagenet_script_net(name, 4, **flags, **thin(name))
    net.initialize(mx.init.MSRAPrelu(), ctx=CTX)
    trainer = imagenet_script_trainer(net)
    if hybrid:
        net.hybridize(static_alloc=True, static_shape=True)
    imagenet_script_step(net, trainer, *batches[0])
    assert 0 <= imagenet_script_test(net, *batches[1]) <= 1  # the script validates, then saves
    params, states = str(tmp_path / "imagenet-0.params"), str(tmp_path / "imagenet-0.states")
    net.save_parameters(params)
    trainer.save_states(states)
    imagenet_script_step(net, trainer, *batches[1])

    resumed = imagenet_script_net(name, 4, **flags, **thin(name))
    resumed.load_parameters(params, ctx=CTX)  # --resume-params: no initialize
    resumed_trainer = imagenet_script_trainer(resumed, states)  # --resume-states
    if hybrid:
        resumed.hybridize(static_alloc=True, static_shape=True)
    imagenet_script_step(resumed, resumed_trainer, *batches[1])
    for (key, expected), got in zip(net.collect_params().items(), resumed.collect_params().values()):
        np.testing.assert_allclose(got.data().asnumpy(), expected.data().asnumpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=key)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_use_gn_and_last_gamma_build_group_norms_and_zero_the_residual_ends_or_warn(name):
    import gluoncv
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            net = imagenet_script_net(name, 1000, use_gn=True, last_gamma=True)  # the full-width model
        except bm.UsageError as err:  # a layer narrower than 32 channels (QuickNet's stems): said in one line
            assert name.startswith("quicknet") and "norm_kwargs={'ngroups': ...} with a divisor of" in str(err)
            return
    norms = [b for b in walk_blocks(net) if isinstance(b, (nn.BatchNorm, gluoncv.nn.GroupNorm))]
    # every one GluonCV's GroupNorm, told its width (it cannot infer it), which its 32 groups divide
    assert norms and all(type(b) is gluoncv.nn.GroupNorm and b.gamma.shape[0] % 32 == 0 < b.gamma.shape[0]
                         for b in norms)
    zeroed = [b for b in norms if b.gamma.init == "zeros"]
    unused = [w for w in caught if "last_gamma=True has no effect on %s" % name in str(w.message)]
    assert bool(zeroed) != bool(unused) and len(unused) <= 1  # residual ends zeroed, or one warning saying none
    if name.startswith("resnet_e"):  # the BN after each block's binary conv, before the add
        assert len(zeroed) == sum(isinstance(b, ResNetEBlock) for b in walk_blocks(net))


# ---- train_ssd.py, demo_ssd.py ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pascal_voc(tmp_path_factory):
    """Pascal VOC's layout under GluonCV's names (what ``python -m binary_models.voc --voc-classes`` writes)."""
    return voc.make_synthetic_pascal_voc(str(tmp_path_factory.mktemp("voc")), num_train=2, num_val=2,
                                         size=SSD_INPUT, seed=1)


@pytest.fixture
def no_pretrained_weights(tmp_path, monkeypatch):
    """GluonCV's weight folder, empty: ``pretrained_base=True`` finds nothing there."""
    monkeypatch.setenv("MXNET_HOME", str(tmp_path / "mxnet_home"))


def ssd_script_net(backbone):
    """train_ssd.py's model (no --syncbn): ``get_model(net_name, pretrained_base=True, norm_layer=BatchNorm)``,
    which warns that no backbone weights are there."""
    with pytest.warns(UserWarning, match="pretrained_base=True: no weights for the backbone %r" % backbone):
        return get_model("ssd_300_%s_voc" % backbone, pretrained_base=True, norm_layer=gluon.nn.BatchNorm,
                         **thin_ssd(backbone))


def ssd_script_loaders(net, train_dataset, val_dataset):
    """train_ssd.py's ``get_dataloader``: anchors from a training-mode forward of zeros, GluonCV's transforms."""
    from gluoncv.data.batchify import Pad, Stack, Tuple
    from gluoncv.data.transforms.presets.ssd import SSDDefaultTrainTransform, SSDDefaultValTransform
    with autograd.train_mode():
        _, _, anchors = net(nd.zeros((1, 3, SSD_INPUT, SSD_INPUT), CTX[0]))
    anchors = anchors.as_in_context(mx.cpu())
    train = gluon.data.DataLoader(train_dataset.transform(SSDDefaultTrainTransform(SSD_INPUT, SSD_INPUT, anchors)),
                                  2, True, batchify_fn=Tuple(Stack(), Stack(), Stack()), last_batch="rollover")
    val = gluon.data.DataLoader(val_dataset.transform(SSDDefaultValTransform(SSD_INPUT, SSD_INPUT)), 2, False,
                                batchify_fn=Tuple(Stack(), Pad(pad_val=-1)), last_batch="keep")
    return train, val


def ssd_script_train_step(net, trainer, batch):
    import gluoncv
    data, cls_targets, box_targets = (gluon.utils.split_and_load(b, ctx_list=CTX, batch_axis=0) for b in batch)
    with autograd.record():
        cls_preds, box_preds = zip(*[net(x)[:2] for x in data])
        sum_loss, _, _ = gluoncv.loss.SSDMultiBoxLoss()(cls_preds, box_preds, cls_targets, box_targets)
        autograd.backward(sum_loss)
    trainer.step(1)


def ssd_script_validate(net, val_loader, metric):
    """train_ssd.py's ``validate``: ``set_nms(0.45, 400)``, a fresh static graph, VOC07 mAP."""
    metric.reset()
    net.set_nms(nms_thresh=0.45, nms_topk=400)
    net.hybridize(static_alloc=True, static_shape=True)
    for batch in val_loader:
        data = gluon.utils.split_and_load(batch[0], ctx_list=CTX, batch_axis=0, even_split=False)
        labels = gluon.utils.split_and_load(batch[1], ctx_list=CTX, batch_axis=0, even_split=False)
        for x, y in zip(data, labels):
            ids, scores, bboxes = net(x)
            metric.update([bboxes.clip(0, batch[0].shape[2])], [ids], [scores], [y.slice_axis(axis=-1, begin=0, end=4)],
                          [y.slice_axis(axis=-1, begin=4, end=5)], [y.slice_axis(axis=-1, begin=5, end=6)])
    return metric.get()


@pytest.mark.filterwarnings("ignore:save_params is deprecated", "ignore:Cannot decide type")
@pytest.mark.parametrize("backbone", ssd.BACKBONES)
def test_train_ssd_then_demo_ssd_then_fine_tuning_and_export_on_its_checkpoint(
        backbone, pascal_voc, tmp_path, no_pretrained_weights):
    from gluoncv.data import VOCDetection
    from gluoncv.data.transforms import presets
    from gluoncv.utils import export_block
    from gluoncv.utils.metrics.voc_detection import VOC07MApMetric
    name = "ssd_300_%s_voc" % backbone
    # train_ssd.py: network, initialisation, data, one training step, validation, save_params
    net = ssd_script_net(backbone)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        net.initialize()
        net.collect_params().reset_ctx(CTX[0])
    train_dataset = VOCDetection(root=pascal_voc, splits=[(2007, "trainval"), (2012, "trainval")])
    val_dataset = VOCDetection(root=pascal_voc, splits=[(2007, "test")])
    metric = VOC07MApMetric(iou_thresh=0.5, class_names=val_dataset.classes)
    train_loader, val_loader = ssd_script_loaders(net, train_dataset, val_dataset)
    net.collect_params().reset_ctx(CTX)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.001, "wd": 5e-4, "momentum": 0.9},
                            update_on_kvstore=None)
    before = net.features.base[0][0].weight.data().asnumpy()
    net.hybridize(static_alloc=True, static_shape=True)
    for batch in train_loader:
        ssd_script_train_step(net, trainer, batch)
    assert not np.array_equal(net.features.base[0][0].weight.data().asnumpy(), before)
    names, values = ssd_script_validate(net, val_loader, metric)
    assert names == list(VOCDetection.CLASSES) + ["mAP"] and 0 <= values[-1] <= 1
    best = str(tmp_path / (name + "_best.params"))
    net.save_params(best)  # every parameter lives under the detector's prefix and is saved without it
    assert sorted(net.prefix + key for key in nd.load(best)) == sorted(net.collect_params().keys())

    # train_ssd.py --resume: a new network (its own prefix) loads the checkpoint
    resumed = ssd_script_net(backbone)
    resumed.load_parameters(best)
    assert resumed.prefix != net.prefix
    for (key, expected), got in zip(net.collect_params().items(), resumed.collect_params().values()):
        np.testing.assert_array_equal(got.data().asnumpy(), expected.data().asnumpy(), err_msg=key)

    # demo_ssd.py --pretrained CHECKPOINT: detects what the trained network detects
    demo = get_model(name, pretrained=False, pretrained_base=False, **thin_ssd(backbone))
    demo.load_parameters(best)
    demo.set_nms(0.45, 200)
    demo.collect_params().reset_ctx(ctx=CTX)
    image = os.path.join(pascal_voc, "VOC2007", "JPEGImages", "%06d.jpg" % len(train_dataset))
    x, _ = presets.ssd.load_test(image, short=SSD_INPUT)
    net.hybridize(active=False)  # the trained network, imperative as the demo's, with the demo's NMS
    net.set_nms(0.45, 200)
    expected = [out.asnumpy() for out in net(x)]
    got = [out[0].asnumpy() for out in demo(x)]
    assert got[0].shape == (100, 1)  # set_nms's default post_nms: 100 detections per image
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e[0], rtol=1e-5, atol=1e-4)

    # fine-tuning (GluonCV's reset_class): the new class predictors keep background's and bird's weights
    old_rows = [class_rows(p, 20) for p in net.class_predictors]
    net.reset_class(["bird", "kangaroo"], reuse_weights={"bird": "bird"})
    bird = 1 + list(VOCDetection.CLASSES).index("bird")
    for predictor, old in zip(net.class_predictors, old_rows):
        new = class_rows(predictor, 2)
        np.testing.assert_array_equal(new[:, :2], old[:, [0, bird]])

    # deployment (GluonCV's export_block): the symbol file detects what the network does
    net.set_nms(nms_thresh=0.45, nms_topk=20, post_nms=20)
    path = str(tmp_path / "exported")
    export_block(path, net, data_shape=(3, SSD_INPUT, SSD_INPUT), preprocess=None, layout="CHW")
    exported = gluon.SymbolBlock.imports(path + "-symbol.json", ["data"], path + "-0000.params")
    ids, scores, boxes = net(x)
    assert ids.shape == (1, 20, 1) and set(np.unique(ids.asnumpy())) <= {-1, 0, 1}  # two classes now
    for got, want in zip(exported(x), (ids, scores, boxes)):
        np.testing.assert_allclose(got.asnumpy(), want.asnumpy(), rtol=1e-5, atol=1e-4)


@pytest.mark.filterwarnings("ignore:save_params is deprecated", "ignore:load_params is deprecated")
def test_older_train_ssd_resumes_with_load_params_from_a_save_params_checkpoint(tmp_path, no_pretrained_weights):
    net = ssd_script_net("meliusnet22")
    net.initialize()
    net(nd.zeros((1, 3, SSD_INPUT, SSD_INPUT)))
    net.save_params(str(tmp_path / "ssd.params"))
    resumed = ssd_script_net("meliusnet22")
    resumed.load_params(str(tmp_path / "ssd.params"))
    for expected, got in zip(net.collect_params().values(), resumed.collect_params().values()):
        np.testing.assert_array_equal(got.data().asnumpy(), expected.data().asnumpy())


def test_save_parameters_checkpoints_of_before_still_load(tmp_path):
    """This package's train_ssd.py saves with ``save_parameters`` (structural names): unchanged by the
    detector prefix and by ``norm_layer``."""
    net = bm.get_model("ssd_300_binary_densenet28_voc", **thin_ssd("binary_densenet28"))
    net.initialize()
    net(nd.zeros((1, 3, SSD_INPUT, SSD_INPUT)))
    net.save_parameters(str(tmp_path / "ssd.params"))
    names = set(nd.load(str(tmp_path / "ssd.params")))
    assert {"features.base.0.0.weight", "features.base.0.1.gamma", "features.stride16_norm.0.running_var",
            "features.extras.0.1.beta", "class_predictors.0.predictor.weight"} <= names
    loaded = get_model("ssd_300_binary_densenet28_voc", pretrained_base=False, norm_layer=nn.BatchNorm,
                       **thin_ssd("binary_densenet28"))
    loaded.load_parameters(str(tmp_path / "ssd.params"))
    x = nd.random.uniform(shape=(1, 3, SSD_INPUT, SSD_INPUT))
    for got, expected in zip(loaded(x), net(x)):
        np.testing.assert_array_equal(got.asnumpy(), expected.asnumpy())
