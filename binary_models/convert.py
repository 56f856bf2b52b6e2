"""Trained model -> packed inference model: binary layers run the native xnor/popcount operators.

:func:`convert` returns a copy of a Gluon model in which every binary :class:`~binary_models.QConv2D` and
:class:`~binary_models.QDense` (``is_binary``: 1-bit weights and activations, one binarization) is replaced
by :class:`BinaryConv2D` / :class:`BinaryDense`, which hold the weights packed at 1 bit each (int64 words,
layout in ``native/kernels/binary_conv.h``) plus, only with ``scaling != 'none'``, a float scale per output
channel. Everything else (BatchNorm, full-precision layers, multi-bit or multi-binarization layers, which
have no packed kernel) stays as it was. Blocks are found by walking the block tree and matching types, so
renamed layers convert too (BMXNet-v2's converter matched layer-name substrings in the symbol JSON).

:func:`save_packed` exports the converted model (symbol JSON + params, written atomically) and
:func:`load_packed` loads it back with ``SymbolBlock.imports``. The outputs equal the float-emulated
model's: the binary layers compute the same integers, the rest is the same MXNet code.

Command line (the model, its options and input size come from the run file ``train_imagenet.py`` wrote beside
the parameters; flags override it, and name them when there is none). Beside the packed files it writes
``{output}-run.json``: that record plus the preprocessing and class names, for ``binary_models.predict`` and
the C++ program of ``deploy/``::

    python -m binary_models.convert --params runs/imagenet-meliusnet22-best.params --output packed/meliusnet22
    python -m binary_models.convert --model meliusnet22 --params trained.params --output packed/meliusnet22 \\
        [--stem thumbnail] [--classes 10] [--input-size 32]
"""
import argparse
import copy
import json
import os
import shutil
import sys
import tempfile
import types
import warnings

import mxnet as mx
from mxnet.gluon import HybridBlock, SymbolBlock

from . import native
from .cli import UsageError, run_script
from .files import load_parameters, run_file, trained_model, write_run_file
from .layers import QConv2D, QDense
from .model_zoo import get_model
from .quantization import weight_scale


class _PackedLayer(HybridBlock):
    """What BinaryConv2D and BinaryDense share: the packed weights, the optional scale, the op's attributes.

    Parameters take the trained layer's prefix, so their names are the trained layer's (``..._weight``
    becomes ``..._packed_weight``)."""

    operator = None  # the native operator's name

    def __init__(self, layer, attrs):
        super().__init__(prefix=layer.prefix)
        native.load()
        weight = layer.weight.data()
        ctx = weight.context
        self.config = layer.config
        self.attrs = dict(attrs, scaled=layer.config.scaling != "none")
        packed = mx.nd.binary_pack_weights(weight, num_group=attrs.get("num_group", 1))
        with self.name_scope():
            self.packed_weight = self._constant("packed_weight", packed, ctx)
            if self.attrs["scaled"]:
                scale = weight_scale(mx.nd, weight, layer.config.scaling)
                self.scale = self._constant("scale", mx.nd.broadcast_to(scale, shape=(weight.shape[0],)), ctx)

    def hybrid_forward(self, F, x, packed_weight, scale=None):
        inputs = (x, packed_weight) if scale is None else (x, packed_weight, scale)
        return getattr(F, self.operator)(*inputs, **self.attrs)

    def _constant(self, name, value, ctx):
        param = self.params.get(name, shape=value.shape, dtype=value.dtype, grad_req="null",
                                differentiable=False, init=mx.init.Zero())
        param.initialize(ctx=ctx)
        param.set_data(value)
        return param


class BinaryConv2D(_PackedLayer):
    """Inference form of a binary :class:`~binary_models.QConv2D`: ``binary_conv2d`` with packed weights
    (the same output: sum(sign(x) sign(W)) with the layer's padding value, times its scale)."""

    operator = "binary_conv2d"

    def __init__(self, layer):
        out_channels, group_in, kh, kw = layer.weight.shape
        super().__init__(layer, dict(kernel=(kh, kw), stride=layer.strides, dilate=layer.dilation,
                                     pad=layer.padding, num_filter=out_channels, num_group=layer.groups,
                                     in_channels=group_in * layer.groups, pad_mode=layer.config.pad_mode))


class BinaryDense(_PackedLayer):
    """Inference form of a binary :class:`~binary_models.QDense`: ``binary_dense`` with packed weights."""

    operator = "binary_dense"

    def __init__(self, layer):
        units, in_units = layer.weight.shape
        super().__init__(layer, dict(num_hidden=units, in_units=in_units))


PACKED_LAYERS = ((QConv2D, BinaryConv2D), (QDense, BinaryDense))


def _packed_form(block):
    """The packed replacement of ``block``, or None when it is not a binary layer."""
    for trained, packed in PACKED_LAYERS:
        if isinstance(block, trained) and block.packable:
            try:
                block.weight.data()
            except (RuntimeError, mx.MXNetError) as err:
                raise ValueError("%s (%s) has no weights yet: initialize or load the model's parameters before "
                                 "converting" % (block.name, block)) from err
            return packed(block)
    return None


def _replace_children(block):
    """Replace every binary layer below ``block`` by its packed form; returns how many were replaced."""
    replaced = 0
    for name, child in list(block._children.items()):
        packed = _packed_form(child)
        if packed is None:
            replaced += _replace_children(child)
            continue
        block._children[name] = packed
        if block.__dict__.get(name) is child:
            object.__setattr__(block, name, packed)  # Block.__setattr__ refuses a change of type
        replaced += 1
    if replaced and isinstance(block, HybridBlock):
        block._clear_cached_op()
    return replaced


def _outside_references(net):
    """A ``deepcopy`` memo that copies as None what ``net``'s blocks refer to but is no part of the model: the
    trainer its parameters may be attached to, and the enclosing blocks its name scopes remember (after
    ``gluoncv.utils.export_block``, the wrapper block with its compiled graph). Clears the blocks' cached
    graphs, which hold handles deepcopy cannot copy (they are rebuilt on use)."""
    blocks, pending = [], [net]
    while pending:
        blocks.append(pending.pop())
        pending.extend(blocks[-1]._children.values())
    own_scopes = {id(block._scope) for block in blocks}
    memo = {}
    for block in blocks:
        if isinstance(block, HybridBlock):
            block._clear_cached_op()
        enclosing = getattr(block._scope, "_old_scope", None)
        if enclosing is not None and id(enclosing) not in own_scopes:
            memo[id(enclosing)] = None
    memo.update({id(p._trainer): None for p in net.collect_params().values() if p._trainer is not None})
    return memo


def convert(net):
    """An inference copy of ``net`` whose binary QConv2D/QDense layers run the native packed operators.

    Layers with multi-bit weights or activations, or Tang et al.'s multiple binarization
    (``binarizations > 1``), stay float-emulated: they have no xnor kernel. Raises ``ValueError`` when
    ``net`` has no binary layer, and :class:`binary_models.native.NativeLibraryError` when the native
    library cannot be built or loaded."""
    packed = copy.deepcopy(net, _outside_references(net))
    root = _packed_form(packed)
    if root is not None:
        return root
    if _replace_children(packed) == 0:
        raise ValueError("%s has no binary layer to convert: no QConv2D/QDense with bits=1, bits_a=1 and "
                         "binarizations=1" % getattr(net, "model_name", type(net).__name__))
    packed.collect_params().setattr("grad_req", "null")
    return packed


def packed_files(prefix):
    """The (symbol, params) files of a model saved with :func:`save_packed` under ``prefix``."""
    return prefix + "-symbol.json", prefix + "-0000.params"


def save_packed(net, prefix, input_shape=(1, 3, 224, 224)):
    """Export a converted ``net`` as ``{prefix}-symbol.json`` and ``{prefix}-0000.params``.

    Runs one forward pass on zeros of ``input_shape`` to trace the graph. Both files are written to a
    temporary directory next to ``prefix`` and moved into place, so no partial file is ever left behind.
    Returns the two paths."""
    net.hybridize()
    ctx = next(iter(net.collect_params().values())).list_ctx()[0]
    net(mx.nd.zeros(input_shape, ctx=ctx))
    directory = os.path.dirname(os.path.abspath(prefix))
    os.makedirs(directory, exist_ok=True)
    staging = tempfile.mkdtemp(dir=directory, prefix=".packing-")
    try:
        staged = os.path.join(staging, "model")
        net.export(staged)
        for source, target in zip(packed_files(staged), packed_files(prefix)):
            os.replace(source, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return packed_files(prefix)


def load_packed(prefix, ctx=None):
    """Load a model saved with :func:`save_packed` as a ``SymbolBlock`` (input name ``data``), loading the
    native library first; a clear :class:`~binary_models.native.NativeLibraryError` says when the model
    needs the library and it cannot be loaded."""
    symbol_file, params_file = packed_files(prefix)
    for path in (symbol_file, params_file):
        if not os.path.isfile(path):
            raise FileNotFoundError("no packed model at %s: %s is missing" % (prefix, path))
    with open(symbol_file) as f:
        used = sorted({node["op"] for node in json.load(f)["nodes"]} & set(native.OPERATORS))
    if used:
        try:
            native.load()
        except native.NativeLibraryError as err:
            raise native.NativeLibraryError("the packed model %s uses the native operators %s, but the native "
                                            "library cannot be loaded: %s" % (prefix, ", ".join(used), err)) from err
    with warnings.catch_warnings():  # the input's dtype is known only at the first call, as for every import
        warnings.filterwarnings("ignore", message="Cannot decide type")
        return SymbolBlock.imports(symbol_file, ["data"], params_file, ctx=ctx or mx.cpu())


def main(argv=None):
    """``python -m binary_models.convert``; bad input exits with status 2 and one line."""
    return run_script(_convert_command, argv)


def _convert_command(argv):
    parser = argparse.ArgumentParser(prog="python -m binary_models.convert",
                                     description="Convert a trained model to a packed 1-bit inference model.")
    parser.add_argument("--params", required=True, help="trained parameters (.params of net.save_parameters)")
    parser.add_argument("--output", required=True, help="prefix of the packed model's files")
    parser.add_argument("--run", help="the training's run file (default: the one beside --params)")
    parser.add_argument("--model", help="model name (default: the run file's)")
    parser.add_argument("--stem", help="the model's stem ('grouped', '7x7', 'thumbnail'), as trained")
    parser.add_argument("--classes", type=int, help="number of classes, as trained")
    parser.add_argument("--input-size", type=int, help="square input size (default: the run file's, else 224)")
    args = parser.parse_args(argv)
    record, model, kwargs, input_size = trained_model(args.params, args.run, args.model, args.input_size,
                                                      stem=args.stem, classes=args.classes)
    try:
        net = get_model(model, **kwargs)
    except (ValueError, TypeError) as err:
        raise UsageError(str(err))
    load_parameters(net, args.params, "--params")
    symbol_file, params_file = save_packed(convert(net), args.output, (1, 3, input_size, input_size))
    run_path = write_packed_run_file(args.output, dict(record, model=model, model_kwargs=kwargs,
                                                       input_size=input_size), symbol_file)
    float_mb, packed_mb = (os.path.getsize(p) / 2 ** 20 for p in (args.params, params_file))
    print("float parameters:  %s  %.2f MB" % (args.params, float_mb))
    print("packed parameters: %s  %.2f MB (%.1fx smaller)" % (params_file, packed_mb, float_mb / packed_mb))
    print("packed symbol:     %s" % symbol_file)
    print("run file:          %s" % run_path)
    return 0


def write_packed_run_file(prefix, record, symbol_file):
    """``{prefix}-run.json``: the training's run file ``record`` (model, options, input size, dataset) plus what
    serving the packed model needs without Python: its ``preprocessing`` and ``class_names`` (read by
    ``python -m binary_models.predict --packed`` and ``deploy/``'s C++ program)."""
    from .labels import class_names
    from .transforms import preprocessing_of
    size = record["input_size"]
    classes = mx.sym.load(symbol_file).infer_shape(data=(1, 3, size, size))[1][0][-1]
    fields = {k: v for k, v in record.items() if k not in ("model", "model_kwargs", "input_size", "classes")}
    names = class_names(classes, record)
    fields.update(preprocessing=preprocessing_of(record).as_dict(), **({"class_names": names} if names else {}))
    path = run_file(prefix)
    write_run_file(path, record["model"], record["model_kwargs"], size, classes, **fields)
    return path


class _CallableModule(types.ModuleType):
    """Makes ``binary_models.convert(net)`` call :func:`convert` while ``binary_models.convert`` stays the
    module (for ``save_packed``, ``load_packed`` and ``python -m binary_models.convert``)."""

    def __call__(self, net):
        return convert(net)


sys.modules[__name__].__class__ = _CallableModule


if __name__ == "__main__":
    sys.exit(main())
