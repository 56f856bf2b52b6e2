"""``bm synthetic-voc``: write a small synthetic detection data set (coloured shapes) in VOC format, for
trying the detection pipeline in minutes (see :mod:`binary_models.data.voc`)."""
import os
import sys

from ..data import voc
from . import cli


def main(argv=None):
    parser = cli.ArgumentParser(prog="bm synthetic-voc",
                                description="Write a synthetic VOC-format detection data set.")
    parser.add_argument("root", help="output folder")
    parser.add_argument("--train", type=cli.positive_int, default=64, help="training images")
    parser.add_argument("--val", type=cli.positive_int, default=32, help="validation images")
    parser.add_argument("--size", type=cli.number(int, minimum=voc.SYNTHETIC_MIN_SIZE), default=128,
                        help="image side in pixels")
    parser.add_argument("--seed", type=cli.seed_type, default=0)
    parser.add_argument("--voc-classes", action="store_true",
                        help="write Pascal VOC's layout and class names instead (VOC2007/VOC2012 trainval, VOC2007 "
                             "test; %s), which GluonCV's VOCDetection and train_ssd.py --dataset voc read as is"
                             % ", ".join("%s as %s" % item for item in sorted(voc.VOC_NAMES.items())))
    args = parser.parse_args(argv)
    if os.path.exists(args.root) and not os.path.isdir(args.root):
        raise cli.UsageError("%s is a file, not a folder" % args.root)
    if args.voc_classes:
        voc.make_synthetic_pascal_voc(args.root, args.train, args.val, args.size, args.seed)
        print("wrote %d + %d images of %s as Pascal VOC (VOC2007, VOC2012) to %s"
              % (args.train, args.val, ", ".join(sorted(voc.VOC_NAMES.values())), args.root))
        return
    voc.make_synthetic_voc(args.root, args.train, args.val, args.size, args.seed)
    print("wrote %d + %d images of %s to %s" % (args.train, args.val, ", ".join(sorted(voc.SHAPE_HUES)), args.root))


if __name__ == "__main__":
    sys.exit(cli.run_script(main))
