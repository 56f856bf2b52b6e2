"""``bm convert``: a trained model's parameters -> a packed 1-bit inference model.

The model, its options and input size come from the run file the training wrote beside the parameters;
flags override it, and name them when there is none. Beside the packed files it writes ``{output}-run.json``
(that record plus the preprocessing and class names) for ``bm predict --packed`` and ``deploy/``'s programs::

    bm convert --params runs/imagenet-meliusnet22-best.params --output packed/meliusnet22
    bm convert --model meliusnet22 --params trained.params --output packed/meliusnet22 \\
        [--stem thumbnail] [--classes 10] [--input-size 32]
"""
import os
import sys

import mxnet as mx

from ..errors import FileProblem, InputSizeError, UsageError, error_line, warnings_held_until_success
from ..inference.convert import convert, save_packed, write_packed_run_file
from ..model_zoo import get_model
from ..storage import load_parameters, trained_model
from .cli import ArgumentParser, positive_int, run_script


def parse_args(argv=None):
    parser = ArgumentParser(prog="bm convert", description="Convert a trained model to a packed 1-bit inference "
                                                           "model.")
    parser.add_argument("--params", required=True, help="trained parameters (.params of net.save_parameters)")
    parser.add_argument("--output", required=True, help="prefix of the packed model's files")
    parser.add_argument("--run", help="the training's run file (default: the one beside --params)")
    parser.add_argument("--model", help="model name (default: the run file's)")
    parser.add_argument("--stem", help="the model's stem ('grouped', '7x7', 'thumbnail'), as trained")
    parser.add_argument("--classes", type=positive_int, help="number of classes, as trained")
    parser.add_argument("--input-size", type=positive_int, help="square input size (default: the run file's, "
                                                                 "else 224)")
    return parser.parse_args(argv)


def convert_command(argv=None):
    args = parse_args(argv)
    record, model, kwargs, input_size = trained_model(args.params, args.run, args.model, args.input_size,
                                                      stem=args.stem, classes=args.classes)
    net = get_model(model, **kwargs)
    load_parameters(net, args.params, "params")
    try:
        packed = convert(net)
    except ValueError as err:
        raise UsageError("params %s: %s" % (args.params, err), "params")
    shape = (1, 3, input_size, input_size)
    try:
        with warnings_held_until_success():
            packed(mx.nd.zeros(shape)).wait_to_read()
    except mx.MXNetError as err:
        raise InputSizeError("input_size %d does not fit %s: %s" % (input_size, model, error_line(err)),
                             "input_size")
    try:
        symbol_file, params_file = save_packed(packed, args.output, shape)
        run_path = write_packed_run_file(args.output, dict(record, model=model, model_kwargs=kwargs,
                                                           input_size=input_size), symbol_file)
    except FileProblem as err:  # a full disk, ulimit -f, a read-only folder: the file and the OS's reason
        raise FileProblem("output %s: %s" % (args.output, err), "output")
    except (OSError, mx.MXNetError) as err:  # a failed write storage could not tell the reason of
        raise FileProblem("output %s: cannot write the packed model: %s" % (args.output, error_line(err)), "output")
    float_mb, packed_mb = (os.path.getsize(p) / 2 ** 20 for p in (args.params, params_file))
    print("float parameters:  %s  %.2f MB" % (args.params, float_mb))
    print("packed parameters: %s  %.2f MB (%.1fx smaller)" % (params_file, packed_mb, float_mb / packed_mb))
    print("packed symbol:     %s" % symbol_file)
    print("run file:          %s" % run_path)
    return 0


def main(argv=None):
    """``bm convert``; bad input exits with status 2 and one line."""
    return run_script(convert_command, argv)


if __name__ == "__main__":
    sys.exit(main())
