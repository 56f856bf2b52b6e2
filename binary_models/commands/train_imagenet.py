"""``bm train`` (and the script ``train_imagenet.py``): train any binary_models (or GluonCV) model on ImageNet,
an image folder, or the embedded digits, with GluonCV's flags. The training itself is
:func:`binary_models.train.imagenet.train`; this module parses and checks the flags."""
import argparse
import os
import sys

import binary_models as bm  # first: it gives MXNet every core before mxnet is imported
import mxnet as mx

from ..data import datasets
from ..errors import UsageError
from ..models.common import STEMS
from ..nn.config import SCALING_METHODS, WEIGHT_BITS
from ..nn.quantization import ACTIVATION_QUANTIZERS
from ..train import recipes, stopping
from ..train.optimizers import BOP_DEFAULTS, OPTIMIZERS
from ..train.imagenet import KVSTORES, gluoncv_model_list, layer_options, train
from ..model_zoo import check_input_size
from . import cli
from .cli import seed_type


def parse_args(argv=None):
    parser = build_parser()
    chosen, _ = recipe_parser().parse_known_args(argv)
    if chosen.recipe:  # the recipe's flags become defaults: flags given on the command line override them
        try:
            parser.set_defaults(**recipes.recipe_step(chosen.recipe, chosen.recipe_step).flags)
        except UsageError as err:
            cli.fail(err.for_flags())
    opt = parser.parse_args(argv)
    if opt.model is None:
        parser.error("--model is required (or a --recipe that names one: %s)" % ", ".join(sorted(recipes.RECIPES)))
    if opt.input_size is None:
        opt.input_size = datasets.DIGITS_SIZE if opt.dataset == "digits" else 224
    if opt.stem is None and opt.dataset == "digits":
        opt.stem = "thumbnail"
    check_arguments(opt)
    return opt


def recipe_parser():
    """The two flags read before the others: a recipe sets the defaults of the rest."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--recipe", default=None)
    parser.add_argument("--recipe-step", type=cli.positive_int, default=1)
    return parser


def build_parser():
    parser = cli.ArgumentParser(description="Train a (binary) model for image classification.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--recipe", default=None, choices=sorted(recipes.RECIPES),
                        help="a paper's training recipe as defaults of the other flags (docs/zoo.md)")
    parser.add_argument("--recipe-step", type=cli.positive_int, default=1,
                        help="step of a multi-step recipe (a later step starts from --resume-params of the "
                             "previous one)")
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default="imagenet", choices=("imagenet", "digits"),
                      help="'imagenet' (--data-dir or --use-rec) or the embedded 'digits' (scikit-learn's 8x8 "
                           "handwritten digits, upscaled; nothing to download)")
    data.add_argument("--data-dir", default="~/.mxnet/datasets/imagenet",
                      help="image folder with train/ and val/, one sub-folder per class")
    data.add_argument("--rec-train", default="~/.mxnet/datasets/imagenet/rec/train.rec")
    data.add_argument("--rec-train-idx", default="~/.mxnet/datasets/imagenet/rec/train.idx")
    data.add_argument("--rec-val", default="~/.mxnet/datasets/imagenet/rec/val.rec")
    data.add_argument("--rec-val-idx", default="~/.mxnet/datasets/imagenet/rec/val.idx")
    data.add_argument("--use-rec", action="store_true", help="read RecordIO files with ImageRecordIter")
    data.add_argument("--classes", type=cli.positive_int, default=1000, help="number of classes of RecordIO data "
                      "(image folders and digits know their own)")
    data.add_argument("--input-size", type=cli.positive_int, default=None,
                      help="input image size (default 224; 32 for digits); at least the model's minimum")
    data.add_argument("--crop-ratio", type=cli.number(float, above=0, maximum=1), default=0.875,
                      help="centre-crop ratio of validation images")
    data.add_argument("-j", "--num-data-workers", "--num-workers", dest="num_workers", type=cli.non_negative_int,
                      default=4,
                      help="number of data-loading worker processes")

    train = parser.add_argument_group("training")
    train.add_argument("--model", default=None, help="any binary_models.get_model or GluonCV model name "
                       "(required unless --recipe names one)")
    train.add_argument("--batch-size", type=cli.positive_int, default=32, help="batch size per device (and per worker)")
    train.add_argument("--num-epochs", type=cli.positive_int, default=120)
    train.add_argument("--optimizer", default="adam", choices=OPTIMIZERS,
                       help="bop: Bop (Helwegen et al. 2019) for the binary weights, --bop-default for the rest")
    train.add_argument("--bop-gamma", type=cli.number(float, minimum=0, maximum=1), default=1e-4,
                       help="Bop's adaptivity rate gamma (default 1e-4, larq's)")
    train.add_argument("--bop-threshold", type=cli.non_negative_float, default=1e-8,
                       help="Bop's flipping threshold tau (default 1e-8, larq's)")
    train.add_argument("--bop-default", default="adam", choices=BOP_DEFAULTS,
                       help="with --optimizer bop, the optimizer (and --lr schedule) of the other weights")
    cli.add_schedule_arguments(train, lr=0.002, lr_mode="cosine", lr_decay_epoch="100,110")
    cli.add_native_training_arguments(train)
    train.add_argument("--wd", type=cli.non_negative_float, default=0.0,
                       help="weight decay (binary weights never decay; the papers state none)")
    train.add_argument("--no-wd", action="store_true", help="no weight decay on BatchNorm and bias parameters")
    train.add_argument("--label-smoothing", action="store_true", help="label smoothing with eta=0.1")
    train.add_argument("--mixup", action="store_true", help="train with mixup")
    train.add_argument("--mixup-alpha", type=cli.positive_float, default=0.2, help="mixup's Beta(alpha, alpha)")
    train.add_argument("--mixup-off-epoch", type=cli.non_negative_int, default=0,
                       help="no mixup from this epoch on (0: never off)")
    train.add_argument("--teacher", default=None, help="teacher model name for knowledge distillation")
    train.add_argument("--teacher-params", default=None, help="teacher weights (.params); default: "
                       "the pretrained file of GluonCV's model store, if present (nothing is downloaded)")
    train.add_argument("--temperature", type=cli.positive_float, default=20, help="distillation temperature")
    train.add_argument("--hard-weight", type=cli.number(float, minimum=0, maximum=1), default=0.5,
                       help="weight of the label loss in distillation")
    train.add_argument("--distributional-loss", action="store_true",
                       help="ReActNet's distributional loss: KL divergence to --teacher's outputs (temperature 1), "
                            "no label term")
    train.add_argument("--mode", default="hybrid", choices=("hybrid", "imperative"))
    train.add_argument("--dtype", default="float32", choices=("float32", "float16"))
    train.add_argument("--num-gpus", type=cli.non_negative_int, default=0, help="GPUs to use (0: CPU)")
    train.add_argument("--use-pretrained", action="store_true", help="start from {root}/{model}.params")
    train.add_argument("--last-gamma", action="store_true",
                       help="zero-init the gamma of the BN ending each residual branch (ResNet-E, GluonCV ResNets)")
    train.add_argument("--seed", type=seed_type, default=0, help="seed of initialisation, data order and mixup")

    binary = parser.add_argument_group("binary layers (binary_models models only)")
    binary.add_argument("--bits", type=int, choices=WEIGHT_BITS, help="weight bits (default 1)")
    binary.add_argument("--bits-a", type=int, choices=WEIGHT_BITS, help="activation bits (default 1)")
    binary.add_argument("--clip-threshold", type=cli.positive_float,
                        help="t_clip of the straight-through estimator (default 1.3)")
    binary.add_argument("--activation-method", choices=tuple(ACTIVATION_QUANTIZERS),
                        help="backward of 1-bit activations")
    binary.add_argument("--binarizations", type=cli.positive_int, help="Tang et al.'s m activation binarizations")
    binary.add_argument("--scaling", choices=SCALING_METHODS, help="output scaling of binary layers")
    binary.add_argument("--stem", choices=STEMS, help="first layers (default: the model's; thumbnail for digits)")
    binary.add_argument("--bipolar-reg", type=cli.non_negative_float, default=0.0, metavar="LAMBDA",
                        help="Tang et al.'s bipolar regularizer lambda*sum(1-W^2) with weight clipping "
                             "(paper: 5e-7; 0: off)")

    output = parser.add_argument_group("output")
    output.add_argument("--log-interval", type=cli.non_negative_int, default=50,
                        help="batches between log lines (0: none)")
    output.add_argument("--save-frequency", type=cli.non_negative_int, default=10,
                        help="checkpoint every N epochs (0: only the end)")
    output.add_argument("--save-dir", default="params", help="checkpoints, training curve and summary.json")
    output.add_argument("--logging-file", default="train_imagenet.log", help="log file, inside --save-dir "
                        "unless a path is given")
    output.add_argument("--no-progress", action="store_true", help="no progress bar")
    output.add_argument("--max-batches", type=cli.positive_int, default=None,
                        help="train at most this many batches per epoch (a smoke run; the schedule follows it)")
    output.add_argument("--resume", default="", metavar="auto|CHECKPOINT",
                        help="continue a run: 'auto' from the newest complete checkpoint in --save-dir (the one a "
                             "stop signal saved mid-epoch included; none: a new run), or from CHECKPOINT.params")
    output.add_argument("--stop-grace", type=cli.non_negative_float, default=stopping.DEFAULT_GRACE_S,
                        metavar="SECONDS", help="on SIGTERM, SIGHUP, SIGUSR1 or Ctrl-C: save the point reached "
                        "and end within this time (0: stop at once, keeping the last checkpoint)")
    output.add_argument("--resume-epoch", type=cli.non_negative_int, default=0,
                        help="epoch to resume from (the next to train)")
    output.add_argument("--resume-params", default="", help="parameters to resume from")
    output.add_argument("--resume-states", default="", help="trainer states to resume from")
    output.add_argument("--kvstore", default="device", choices=KVSTORES,
                        help="MXNet kvstore; dist_* needs the launcher (bm launch)")
    return parser


def check_arguments(opt):
    """The rules between flags, and between flags and this machine, checked before any data is read or
    model built: each broken one is a :class:`UsageError` naming the flags."""
    cli.check_schedule(opt, opt.num_epochs, "--num-epochs", opt.resume_epoch, "--resume-epoch")
    explicit = [flag for flag, value in (("--resume-epoch", opt.resume_epoch), ("--resume-params", opt.resume_params),
                                         ("--resume-states", opt.resume_states)) if value]
    if opt.resume and explicit:
        raise UsageError("--resume %s finds the epoch, parameters and states itself: leave out %s"
                         % (opt.resume, " and ".join(explicit)))
    if opt.mixup_off_epoch > opt.num_epochs:
        raise UsageError("--mixup-off-epoch %d is after the last epoch (--num-epochs %d)"
                         % (opt.mixup_off_epoch, opt.num_epochs))
    if opt.teacher_params and not opt.teacher:
        raise UsageError("--teacher-params needs --teacher (the teacher's model name)")
    if opt.distributional_loss and not opt.teacher:
        raise UsageError("--distributional-loss needs --teacher (the real-valued network whose outputs it matches)")
    if opt.use_rec and opt.dataset != "imagenet":
        raise UsageError("--use-rec reads ImageNet's RecordIO files; --dataset %s is built in" % opt.dataset)
    available = mx.context.num_gpus()
    if opt.num_gpus > available:
        raise UsageError("--num-gpus %d: %s" % (opt.num_gpus, "no GPU is available (this MXNet sees none)"
                                                if not available else "only %d GPUs are available" % available))
    if opt.dtype == "float16" and not opt.num_gpus:
        raise UsageError("--dtype float16 needs GPUs (--num-gpus); on the CPU use float32")
    if os.path.exists(opt.save_dir) and not os.path.isdir(opt.save_dir):
        raise UsageError("--save-dir %s is a file, not a folder" % opt.save_dir)
    for flag, name in (("--model", opt.model), ("--teacher", opt.teacher)):
        if name and name.lower() not in bm.get_model_list() and name.lower() not in gluoncv_model_list():
            try:
                bm.get_model(name)  # raises naming the closest known models
            except ValueError as err:
                raise UsageError("%s: %s" % (flag, err))
    if opt.model.lower() in bm.get_model_list():
        try:
            net = bm.get_model(opt.model, classes=opt.classes, **layer_options(opt))
        except (ValueError, TypeError) as err:
            raise UsageError(str(err))
        check_input_size(net, opt.input_size, name=opt.model)


def main(argv=None):
    """``bm train``: a distributed worker exits at once after an error (:func:`cli.run_worker`)."""
    return cli.run_worker(lambda args: run(parse_args(args)), argv)


def run(opt):
    with cli.native_training_on_cpu(opt, opt.num_gpus):
        return train(opt)


if __name__ == "__main__":
    sys.exit(main())
