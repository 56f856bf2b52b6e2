"""``bm detect`` (and the script ``detection/detect.py``): detect objects with a trained SSD; writes a PNG per
image and prints JSON (see :mod:`binary_models.inference.detect`)."""
import argparse
import json
import os
import sys


import mxnet as mx

from ..errors import UsageError
from ..inference import detect
from . import cli


def parse_args(argv=None):
    parser = cli.ArgumentParser(description="Detect objects with a trained SSD; writes PNGs, prints JSON.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    parser.add_argument("--network", default=None, help="SSD name, e.g. ssd_512_binary_densenet37_voc (default: "
                        "the run file's)")
    parser.add_argument("--params", required=True, help="trained parameters (.params)")
    parser.add_argument("--run", default=None, help="train_ssd.py's *_run.json (default: the one beside --params)")
    parser.add_argument("--summary", default=None, help="train_ssd.py's *_summary.json, for runs without a run file")
    parser.add_argument("--classes", default=None, help="comma-separated class names (for _custom networks)")
    parser.add_argument("--data-shape", type=cli.number(int, minimum=32), default=None,
                        help="side the images are resized to (default: the network's)")
    parser.add_argument("--thresh", type=cli.number(float, minimum=0, maximum=1), default=0.5,
                        help="lowest score reported and drawn")
    parser.add_argument("--output-dir", default="detections", help="folder of the PNG files")
    parser.add_argument("--gpus", type=cli.gpu_list, default="", help="GPU to use, e.g. 0 (empty: CPU)")
    opt = parser.parse_args(argv)
    if len(opt.gpus) > 1:
        raise UsageError("--gpus %s: detect.py uses one GPU" % ",".join(map(str, opt.gpus)))
    cli.check_gpus("--gpus", opt.gpus)
    return opt


def main(argv=None):
    opt = parse_args(argv)
    ctx = mx.gpu(opt.gpus[0]) if opt.gpus else mx.cpu()
    for path in opt.images:
        if not os.path.isfile(path):
            raise UsageError("image not found: %s" % path)
    record = detect.training_record(opt)
    opt.network = opt.network or record.get("network")
    if not opt.network:
        raise UsageError("--network is needed: no run file beside %s (or give --run)" % opt.params)
    size = detect.data_shape(opt, record)
    net = detect.build_network(opt, record, ctx)
    net.hybridize(static_alloc=True)
    results = []
    for path in opt.images:
        detections, image = detect.detect(net, path, size, opt.thresh, ctx)
        output = os.path.join(opt.output_dir, os.path.splitext(os.path.basename(path))[0] + "_detections.png")
        detect.draw(output, image, detections, list(net.classes))
        results.append(dict(image=path, output=output, detections=detections))
    json.dump(results, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_script(main))
