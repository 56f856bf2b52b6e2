"""``bm predict``: classify images with a trained or a packed model (see :mod:`binary_models.inference.predict`)::

    bm predict --params runs/imagenet-meliusnet22-best.params cat.jpg dog.jpg
    bm predict --packed packed/meliusnet22 --json cat.jpg
    bm predict --model meliusnet22 --params trained.params --classes-file names.txt x.jpg
"""
import json
import os
import sys


import mxnet as mx

from ..data import labels, transforms
from .. import storage
from ..errors import FileProblem, UsageError, error_line
from ..inference import predict
from . import cli


def parse_args(argv=None):
    parser = cli.ArgumentParser(prog="bm predict",
                                description="Classify images with a trained (--params) or packed (--packed) "
                                                 "model; prints the top classes and the latency.")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG, ...)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--params", help="trained parameters (.params of train_imagenet.py)")
    source.add_argument("--packed", metavar="PREFIX", help="packed model (PREFIX-symbol.json + PREFIX-0000.params "
                        "of binary_models.convert)")
    parser.add_argument("--model", help="model name (default: the run file's)")
    parser.add_argument("--run", help="run file (default: the one beside --params or --packed)")
    parser.add_argument("--stem", help="the model's stem, as trained (default: the run file's)")
    parser.add_argument("--classes", type=cli.positive_int,
                        help="number of classes, as trained (default: the run file's)")
    parser.add_argument("--input-size", type=cli.positive_int,
                        help="square input size (default: the run file's, else 224)")
    parser.add_argument("--crop-ratio", type=cli.number(float, above=0, maximum=1),
                        help="validation crop ratio (default: the run file's, else "
                        "0.875)")
    parser.add_argument("--classes-file", help="class names, one per line (default: ImageNet's for 1,000 "
                        "classes, the digits', else indices)")
    parser.add_argument("--top", type=cli.positive_int, default=5, help="classes shown per image")
    parser.add_argument("--batch-size", type=cli.positive_int, default=1, help="images per forward pass")
    parser.add_argument("--repeat", type=cli.positive_int, default=1,
                        help="forward passes per batch; the latency is their median (as bm-predict --repeat)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--output-dir", help="write IMAGE_prediction.png (the image and its top classes) here")
    return parser.parse_args(argv)


def main(argv=None):
    opt = parse_args(argv)
    for path in opt.images:
        if not os.path.isfile(path):
            raise UsageError("image not found: %s" % path)
    if opt.output_dir:
        storage.make_folder(opt.output_dir, "output_dir")  # a file, a read-only folder: before the forward pass
    net, record, name = predict.load_model(opt)
    preprocessing = transforms.preprocessing_of(record, opt.input_size, opt.crop_ratio)
    inputs = predict.read_inputs(opt.images, preprocessing)
    try:
        logits, latencies = predict.forward_batches(net, inputs, opt.batch_size, opt.repeat)
    except mx.MXNetError as err:
        raise UsageError("the model cannot run on %dx%d inputs: %s" % (preprocessing.input_size,
                                                                       preprocessing.input_size, error_line(err)))
    num_classes = len(logits[0])
    names = (labels.read_names(opt.classes_file, num_classes) if opt.classes_file
             else labels.class_names(num_classes, record, "run file %s: class_names" % predict.run_path(opt)))
    outputs = predict.output_paths(opt.images, opt.output_dir) if opt.output_dir else [None] * len(opt.images)
    results, failed = [], None
    for path, (image, _, prep_ms), row, forward_ms, output in zip(opt.images, inputs, logits, latencies, outputs):
        top = predict.top_classes(row, opt.top)
        result = dict(image=path, latency_ms=dict(forward=round(forward_ms, 4), preprocessing=round(prep_ms, 4)),
                      top=[dict(name=predict.label(c, names), probability=p, **{"class": c}) for c, p in top])
        if output and not failed:
            try:
                predict.draw(output, path, image, top, names)
                result["output"] = output
            except FileProblem as err:  # a full disk, a PNG path that is a folder: the predictions still print
                failed = FileProblem("output_dir %s: %s" % (opt.output_dir, err), "output_dir")
        results.append(result)
    print_results(results, opt, name, record, preprocessing, num_classes)
    if failed:
        raise failed
    return 0


def print_results(results, opt, name, record, preprocessing, num_classes):
    """The results as JSON (``--json``) or as text: the model, then each image with its top classes."""
    if opt.json:
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    print(predict.describe(name, opt, record, preprocessing, num_classes))
    for result in results:
        latency = result["latency_ms"]
        print("%s: forward %.2f ms, preprocessing %.2f ms%s" % (
            result["image"], latency["forward"], latency["preprocessing"],
            " -> %s" % result["output"] if "output" in result else ""))
        for rank, entry in enumerate(result["top"], 1):
            print("  %d. %-24s %.4f" % (rank, entry["name"], entry["probability"]))


if __name__ == "__main__":
    sys.exit(cli.run_script(main))
