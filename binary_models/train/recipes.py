"""Training recipes of the papers (and of larq-zoo, where it published the recipe its weights come from) as named
presets of ``bm train`` / ``train_imagenet.py``: ``--recipe NAME [--recipe-step N]``.

A recipe is a list of steps; each step is a set of flag defaults (argparse destinations). Flags given on the
command line override them; a later step starts from the previous step's weights (``--resume-params``). Batch
sizes are the recipes' total batch: ``--batch-size`` is per device, so divide it by the devices used.
"""
import collections

from ..errors import UsageError

Step = collections.namedtuple("Step", "source flags")

# ReActNet section 5.1 (and the authors' code): two steps of 256 epochs, Adam, lr 5e-4 decayed linearly to 0,
# batch 256, the distributional loss from a real-valued ResNet-34; step 1 binarises only the activations (weight
# decay 1e-5 on the real weights), step 2 also the weights (no weight decay), from step 1's weights.
_REACTNET = dict(optimizer="adam", lr=5e-4, lr_mode="linear", num_epochs=256, batch_size=256,
                 teacher="resnet34_v1b", distributional_loss=True)
# Real-to-Binary (Martinez et al. 2020, section 5): Adam, lr 1e-3, x0.1 at epochs 40, 60 and 70 of 75, batch 256;
# step 1 binary activations with weight decay 1e-5, step 2 binary weights too, without. Its attention-matching
# losses and multi-stage teachers are not implemented: a float teacher is the closest here (--teacher).
_REAL_TO_BINARY = dict(optimizer="adam", lr=1e-3, lr_mode="step", lr_decay=0.1, lr_decay_epoch="40,60,70",
                       num_epochs=75, batch_size=256)
# larq-zoo's TrainQuickNet: 600 epochs, batch 2048, cosine decay after a 5-epoch warm-up, Adam at 1e-2 for the
# binary weights. larq-zoo trains the float weights with SGD (lr 0.1, momentum 0.9); one optimizer runs here.
_QUICKNET = dict(optimizer="adam", lr=1e-2, lr_mode="cosine", warmup_epochs=5, num_epochs=600, batch_size=2048)

RECIPES = {
    "reactnet_a": (Step("ReActNet section 5.1, step 1", dict(_REACTNET, model="reactnet_a", bits=32, wd=1e-5)),
                   Step("ReActNet section 5.1, step 2", dict(_REACTNET, model="reactnet_a", bits=1, wd=0.0))),
    "real_to_binary": (
        Step("Martinez et al. section 5, step 1", dict(_REAL_TO_BINARY, model="real_to_binary", bits=32, wd=1e-5)),
        Step("Martinez et al. section 5, step 2", dict(_REAL_TO_BINARY, model="real_to_binary", bits=1, wd=0.0))),
    "quicknet_small": (Step("larq-zoo TrainQuickNetSmall", dict(_QUICKNET, model="quicknet_small")),),
    "quicknet": (Step("larq-zoo TrainQuickNet", dict(_QUICKNET, model="quicknet")),),
    "quicknet_large": (Step("larq-zoo TrainQuickNetLarge", dict(_QUICKNET, model="quicknet_large")),),
    # larq-zoo's TrainBiRealNet (its 55.9% weights): Adam 5e-3 decayed linearly, 300 epochs, batch 512.
    "birealnet18": (Step("larq-zoo TrainBiRealNet", dict(model="birealnet18", optimizer="adam", lr=5e-3,
                                                          lr_mode="linear", num_epochs=300, batch_size=512)),),
    # MeliusNet section 4.1: RAdam, lr 0.002, cosine, 120 epochs, t_clip 1.3 (batch not stated; the authors' 64).
    "meliusnet": (Step("MeliusNet section 4.1", dict(model="meliusnet22", optimizer="radam", lr=0.002,
                                                      lr_mode="cosine", num_epochs=120, clip_threshold=1.3,
                                                      batch_size=64)),),
    # BinaryDenseNet section 5 / Table 7: Adam 1e-3, x0.1 at epochs 100 and 110 of 120.
    "binary_densenet": (Step("BinaryDenseNet Table 7", dict(model="binary_densenet28", optimizer="adam", lr=1e-3,
                                                            lr_mode="step", lr_decay=0.1, lr_decay_epoch="100,110",
                                                            num_epochs=120, clip_threshold=1.3)),),
}


def recipe_step(name, step=1):
    """The :class:`Step` ``step`` (1-based) of recipe ``name``; :class:`UsageError` naming the argument when either
    is unknown."""
    if name not in RECIPES:
        raise UsageError("recipe %r is unknown; known: %s" % (name, ", ".join(sorted(RECIPES))), "recipe")
    steps = RECIPES[name]
    if not 1 <= step <= len(steps):
        raise UsageError("recipe_step %d: recipe %s has %d step%s" % (step, name, len(steps),
                                                                     "" if len(steps) == 1 else "s"), "recipe_step")
    return steps[step - 1]


def describe(name):
    """One line per step of recipe ``name``: its source and flags, as ``bm train`` takes them."""
    lines = []
    for number, step in enumerate(RECIPES[name], 1):
        flags = " ".join("--%s %s" % (k.replace("_", "-"), v) if v is not True else "--" + k.replace("_", "-")
                         for k, v in sorted(step.flags.items()))
        lines.append("%s step %d (%s): %s" % (name, number, step.source, flags))
    return lines
