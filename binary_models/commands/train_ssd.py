"""``bm train-ssd`` (and the script ``detection/train_ssd.py``): train an SSD detector with a binary backbone
with GluonCV's ``train_ssd.py`` flags. The training itself is :func:`binary_models.train.detection.train`."""
import argparse
import os
import sys



from ..errors import UsageError
from ..model_zoo import get_model_list
from ..models import ssd
from ..models.common import STEMS
from ..train import detection
from ..train.optimizers import OPTIMIZERS
from . import cli

# SSD reads the backbone's stride-32 map and four smaller ones: the smallest input that leaves them a pixel.
DATA_SHAPE = cli.number(int, minimum=32)


def parse_args(argv=None):
    parser = cli.ArgumentParser(description="Train an SSD detector with a binary backbone.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--network", default="binary_densenet37",
                        help="base network: %s, or a GluonCV SSD base (vgg16_atrous, resnet50_v1, ...)"
                             % ", ".join(ssd.BACKBONES))
    parser.add_argument("--data-shape", type=DATA_SHAPE, default=512, help="input size: 300 or 512 (the presets); "
                        "other sizes use the SSD paper's anchor scales")
    parser.add_argument("--dataset", default="voc", help="'voc', 'coco', or the path of a VOC-format folder "
                        "(JPEGImages/, Annotations/, ImageSets/Main/{trainval|train,test|val}.txt)")
    parser.add_argument("--dataset-root", default=None, help="root of voc or coco (default: GluonCV's "
                        "~/.mxnet/datasets/voc or ~/.mxnet/datasets/coco)")
    parser.add_argument("--batch-size", type=cli.positive_int, default=32, help="training mini-batch size")
    parser.add_argument("--num-workers", "-j", dest="num_workers", type=cli.non_negative_int, default=4,
                        help="number of data-loading worker processes")
    parser.add_argument("--gpus", type=cli.gpu_list, default="", help="GPUs to train on, e.g. 0,1 (empty: CPU)")
    parser.add_argument("--epochs", type=cli.positive_int, default=240, help="training epochs")
    parser.add_argument("--resume", default="", metavar="auto|PARAMS", help="resume from these parameters (and "
                        "their .states), or 'auto': from the newest complete checkpoint of --save-prefix (none: a "
                        "new run); SIGTERM, SIGHUP, SIGUSR1 and Ctrl-C stop at once, keeping the last checkpoint")
    parser.add_argument("--start-epoch", type=cli.non_negative_int, default=0,
                        help="first epoch to train when resuming")
    parser.add_argument("--optimizer", default=None, choices=OPTIMIZERS,
                        help="default: adam for a binary backbone, sgd for a full-precision one")
    cli.add_schedule_arguments(parser, lr=0.001, lr_mode="step", lr_decay_epoch="160,200")
    cli.add_native_training_arguments(parser)
    parser.add_argument("--wd", type=cli.non_negative_float, default=0.0005,
                        help="weight decay (binary weights never decay: their wd_mult is 0)")
    parser.add_argument("--log-interval", type=cli.non_negative_int, default=100,
                        help="batches between log lines (0: none)")
    parser.add_argument("--save-prefix", default="", help="prefix of every output file; the network name is "
                        "appended (e.g. runs/voc/ gives runs/voc/ssd_512_binary_densenet37_voc_best.params)")
    parser.add_argument("--save-interval", type=cli.non_negative_int, default=10,
                        help="checkpoint every N epochs (0: only at the end); the best model is always saved")
    parser.add_argument("--val-interval", type=cli.positive_int, default=1, help="validate every N epochs")
    parser.add_argument("--seed", type=cli.seed_type, default=233, help="random seed")
    parser.add_argument("--kvstore", default="device", choices=detection.KVSTORES, help="MXNet kvstore of the devices")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--max-batches", type=cli.positive_int, default=None,
                        help="train at most this many batches per epoch (a smoke run; the schedule follows it)")

    model = parser.add_argument_group("network options (binary_models backbones)")
    model.add_argument("--backbone-params", default=None,
                       help="classification checkpoint of the backbone (train_imagenet.py's .params) to start from")
    model.add_argument("--binary-extras", action="store_true",
                       help="binary 3x3 convolutions in SSD's extra layers (default: full precision)")
    model.add_argument("--extra-filters", type=channel_list, default=None,
                       help="channels of the four extra layers, e.g. "
                       "128,128,64,64 (default: the preset's, 512,512,256,256 for SSD512)")
    model.add_argument("--growth", type=cli.positive_int, default=None,
                       help="channels each dense block adds (papers: 64); "
                       "smaller values give thin networks for quick experiments")
    model.add_argument("--init-channels", type=cli.positive_int, default=None, help="stem output channels (papers: 64)")
    model.add_argument("--stem", default=None, choices=STEMS, help="first layers (default: the backbone's, "
                       "'grouped'); '7x7' is cheaper to train on CPU")
    opt = parser.parse_args(argv)
    check_arguments(opt)
    return opt


def check_arguments(opt):
    """The rules between flags, and between flags and this machine, checked before any data is read or
    network built: each broken one is a :class:`UsageError` naming the flags."""
    cli.check_schedule(opt, opt.epochs, "--epochs", opt.start_epoch, "--start-epoch")
    if opt.resume == "auto" and opt.start_epoch:
        raise UsageError("--resume auto finds the epoch itself: leave out --start-epoch")
    cli.check_gpus("--gpus", opt.gpus)
    folder = os.path.dirname(opt.save_prefix)
    if folder and os.path.exists(folder) and not os.path.isdir(folder):
        raise UsageError("--save-prefix %s: %s is a file, not a folder" % (opt.save_prefix, folder))
    if (detection.network_options(opt) or opt.backbone_params) and opt.network.lower() not in get_model_list():
        raise UsageError("--backbone-params, --binary-extras, --extra-filters, --growth, --init-channels and "
                         "--stem are options of binary_models backbones; %r is not one" % opt.network)


def channel_list(text):
    """argparse type of ``--extra-filters``: the text, once :func:`detection.parse_channels` accepts it."""
    try:
        detection.parse_channels(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err))
    return text


def main(argv=None):
    """``bm train-ssd``; bad input raises a :class:`~binary_models.errors.BinaryModelsError`."""
    opt = parse_args(argv)
    with cli.native_training_on_cpu(opt, opt.gpus):
        return detection.train(opt)


if __name__ == "__main__":
    sys.exit(cli.run_script(main))
