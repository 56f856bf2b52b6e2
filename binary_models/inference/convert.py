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

    bm convert --params runs/imagenet-meliusnet22-best.params --output packed/meliusnet22
    bm convert --model meliusnet22 --params trained.params --output packed/meliusnet22 \\
        [--stem thumbnail] [--classes 10] [--input-size 32]
"""
import copy
import json
import os
import sys
import types
import warnings

import mxnet as mx
from mxnet.gluon import HybridBlock, SymbolBlock, nn

from .. import storage
from . import native
from ..errors import NativeLibraryError, UsageError, error_line
from ..storage import run_file, write_run_file
from ..nn.layers import QConv2D, QDense
from ..nn.normalization import BatchNorm
from ..models.common import ChannelShuffle, DenseBlock, GroupedConv2D
from ..models.meliusnet import ImprovementBlock
from ..nn.react import LearnableBias, RPReLU
from .packed_layers import (BinaryConv2D, BinaryDense, BinaryDenseStage, Identity, NativeRPReLU, NormPool,
                            PackedBlock, grouped_conv_form, native_problem, packable, shift_thresholds, stage_unit)


PACKED_LAYERS = ((QConv2D, BinaryConv2D), (QDense, BinaryDense))
# The BatchNorm forms the converter folds: Gluon's, and the models' (the same, or plain_batch_norm in training).
BATCHNORM_FORWARDS = (nn.BatchNorm.hybrid_forward, BatchNorm.hybrid_forward)
# Float blocks with a native operator, replaced wherever they are: (type, its native form or None). RPReLU to
# the bit; grouped convs (the grouped stem) within float rounding (docs/native.md, Exactness).
NATIVE_FORMS = ((RPReLU, NativeRPReLU), (GroupedConv2D, grouped_conv_form), (nn.Conv2D, grouped_conv_form))


def _checked_weights(layer):
    """``layer`` itself, after checking that its weights exist."""
    try:
        layer.weight.data()
    except (RuntimeError, mx.MXNetError) as err:
        raise ValueError("%s (%s) has no weights yet: initialize or load the model's parameters before "
                         "converting" % (layer.name, layer)) from err
    return layer


def _packed_form(block, batchnorm=None):
    """The packed replacement of ``block`` (with ``batchnorm``, the BatchNorm before it, folded in where the
    packed form takes one), or None when it is not a binary layer."""
    for trained, packed in PACKED_LAYERS:
        if isinstance(block, trained) and block.packable and packable(_checked_weights(block)):
            return packed(block, batchnorm) if batchnorm is not None else packed(block)
    return None


def _is_batchnorm(block):
    """A plain Gluon BatchNorm over the channel axis of NCHW, or the models' :class:`~binary_models.nn.normalization.
    BatchNorm` (subclasses such as SyncBatchNorm stay as they are)."""
    return (isinstance(block, nn.BatchNorm) and type(block).hybrid_forward in BATCHNORM_FORWARDS
            and block._kwargs.get("axis", 1) == 1)


def _is_relu(block):
    return isinstance(block, nn.Activation) and block._act_type == "relu"


def _is_max_pool(block):
    return (isinstance(block, nn.MaxPool2D) and block._kwargs.get("pooling_convention") == "valid"
            and not block._kwargs.get("global_pool") and block._kwargs.get("layout", "NCHW") == "NCHW")


def _dense_unit(block, previous_conv):
    """``(kind, batchnorm, conv)`` when ``block`` is a DenseBlock ('D') or ImprovementBlock ('I') whose body is
    BatchNorm -> a binary conv that :func:`stage_unit` accepts after ``previous_conv``; else None."""
    kind = {DenseBlock: "D", ImprovementBlock: "I"}.get(type(block))
    if kind is None or len(block.body) != 2:
        return None
    batchnorm, conv = block.body[0], block.body[1]
    if not (_is_batchnorm(batchnorm) and isinstance(conv, QConv2D) and stage_unit(conv, previous_conv)):
        return None
    if kind == "I" and block.growth != conv.channels:
        return None
    return kind, batchnorm, _checked_weights(conv)


def _is_binary_conv(block):
    return isinstance(block, QConv2D) and packable(block)


def _match_dense_stage(blocks, start):
    """The longest run of DenseBlocks/ImprovementBlocks (BatchNorm -> binary conv) -> one BinaryDenseStage."""
    units = []
    for block in blocks[start:]:
        unit = _dense_unit(block, units[-1][2] if units else None)
        if unit is None:
            break
        units.append(unit)
    if not units:
        return None
    stage = BinaryDenseStage(units[0][2].prefix, units[0][1].gamma.shape[0], units)
    return [(stage, len(units))], len(units)


def _match_batchnorm_conv(blocks, start):
    """BatchNorm -> binary conv: the BatchNorm becomes the conv's binarization thresholds."""
    if start + 1 < len(blocks) and _is_batchnorm(blocks[start]) and _is_binary_conv(blocks[start + 1]):
        return [(_packed_form(blocks[start + 1], batchnorm=blocks[start]), 2)], 1
    return None


def _flattened(blocks, start):
    """True when ``blocks[start]`` receives a 2-D (N, C) input: a Flatten or a dense layer comes before it in its
    sequence (XNOR-Net's BatchNorm -> ReLU after fc7; norm_pool takes NCHW maps only)."""
    return any(isinstance(b, (nn.Flatten, nn.Dense, QDense)) for b in blocks[:start])


def _norm_pool_window(blocks, start):
    """``(NormPool, length)`` for BatchNorm -> ReLU -> [MaxPool] or BatchNorm -> MaxPool -> ReLU, then an
    optional ChannelShuffle, at ``blocks[start:]``; else None."""
    window = blocks[start:start + 4]
    if len(window) < 2 or not _is_batchnorm(window[0]) or _flattened(blocks, start):
        return None
    if _is_relu(window[1]):
        count = 3 if len(window) > 2 and _is_max_pool(window[2]) else 2
    elif len(window) > 2 and _is_max_pool(window[1]) and _is_relu(window[2]):
        count = 3
    else:
        return None
    pool = next((b for b in window[1:count] if isinstance(b, nn.MaxPool2D)), None)
    groups = 1
    if len(window) > count and isinstance(window[count], ChannelShuffle):
        groups, count = window[count].groups, count + 1
    return NormPool(window[0], relu=True, pool=pool, shuffle_groups=groups), count


def _match_conv_batchnorm(blocks, start):
    """Binary conv -> BatchNorm [-> ReLU ...] (ResNet-E): the conv packed, the BatchNorm (with what follows it)
    in one norm_pool on the conv's NCHW output."""
    if start + 1 < len(blocks) and _is_binary_conv(blocks[start]) and _is_batchnorm(blocks[start + 1]):
        norm = _norm_pool_window(blocks, start + 1) or (NormPool(blocks[start + 1], relu=False), 1)
        return [(_packed_form(blocks[start]), 1), norm], 1
    return None


def _match_shift_conv(blocks, start):
    """LearnableBias -> binary conv [-> BatchNorm] (ReActNet's RSign): the shift becomes the conv's binarization
    thresholds; a BatchNorm after the conv one norm_pool on its output, as in :func:`_match_conv_batchnorm`."""
    if not (start + 1 < len(blocks) and isinstance(blocks[start], LearnableBias)
            and _is_binary_conv(blocks[start + 1])):
        return None
    _checked_weights(blocks[start + 1])
    fused = [(BinaryConv2D(blocks[start + 1], thresholds=shift_thresholds(blocks[start].bias)), 2)]
    if start + 2 < len(blocks) and _is_batchnorm(blocks[start + 2]):
        fused.append(_norm_pool_window(blocks, start + 2) or (NormPool(blocks[start + 2], relu=False), 1))
    return fused, 1


def _match_norm_pool(blocks, start):
    """BatchNorm -> ReLU [-> MaxPool] or BatchNorm -> MaxPool -> ReLU [-> ChannelShuffle]: one norm_pool."""
    fused = _norm_pool_window(blocks, start)
    return ([fused], 0) if fused else None


# The converter's fusions, tried in this order at each child of a HybridSequential (docs/native.md). A rule
# returns ``([(replacement, children it replaces), ...], binary layers packed)``, or None.
FUSION_RULES = (
    ("dense stage", "(DenseBlock | ImprovementBlock: BatchNorm -> binary conv) x n -> binary_dense_stage",
     _match_dense_stage),
    ("batchnorm into binary conv", "BatchNorm -> binary conv -> binary_conv2d with thresholds", _match_batchnorm_conv),
    ("binary conv, norm after", "binary conv -> BatchNorm [-> ReLU [-> MaxPool]] -> binary_conv2d, norm_pool",
     _match_conv_batchnorm),
    ("norm and pool", "BatchNorm -> ReLU [-> MaxPool] | BatchNorm -> MaxPool -> ReLU [-> ChannelShuffle] -> "
     "norm_pool", _match_norm_pool),
    ("rsign into binary conv", "LearnableBias -> binary conv [-> BatchNorm] -> binary_conv2d with thresholds "
     "[, norm_pool]", _match_shift_conv),
)


def _fuse_sequence(sequence):
    """Rewrite the children of a HybridSequential by the first of :data:`FUSION_RULES` that matches at each
    position. A fused run keeps its length (Identity after the fused block). Returns the number of binary
    layers packed."""
    names, blocks = list(sequence._children.keys()), list(sequence._children.values())
    packed, index = 0, 0
    while index < len(blocks):
        match = next((m for m in (rule(blocks, index) for _, _, rule in FUSION_RULES) if m), None)
        if match is None:
            index += 1
            continue
        replacements, count = match
        packed += count
        for replacement, length in replacements:
            for offset in range(length):
                _set_child(sequence, names[index + offset], replacement if offset == 0 else Identity())
            index += length
    return packed


def _set_child(block, name, new):
    old = block._children[name]
    block._children[name] = new
    if block.__dict__.get(name) is old:
        object.__setattr__(block, name, new)  # Block.__setattr__ refuses a change of type


def _replace_children(block):
    """Fuse and pack everything below ``block``; returns how many binary layers were packed."""
    packed = _fuse_sequence(block) if isinstance(block, nn.HybridSequential) else 0
    for name, child in list(block._children.items()):
        if isinstance(child, (PackedBlock, Identity)):
            continue
        replacement = _packed_form(child)
        if replacement is None:
            form = next((form for trained, form in NATIVE_FORMS if type(child) is trained), None)
            native_form = form(child) if form else None
            if native_form is not None:
                _set_child(block, name, native_form)
            else:
                packed += _replace_children(child)
            continue
        _set_child(block, name, replacement)
        packed += 1
    if packed and isinstance(block, HybridBlock):
        block._clear_cached_op()
    return packed


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


def _kept_emulated(packed):
    """``[(path, reason)]`` of the binary layers left in ``packed`` (1-bit weights and activations, or a
    quantizer a packed kernel runs) that no packed operator computes, with the reason."""
    kept, pending = [], [("", packed)]
    while pending:
        path, block = pending.pop(0)
        if isinstance(block, (QConv2D, QDense)) and (block.is_binary or block.packable):
            kept.append((path or block.name, native_problem(block)))
        pending += [(path + "." + name if path else name, child) for name, child in block._children.items()]
    return kept


def _inference_forms(block):
    """Turn off what is for training only in ``block``'s tree: :class:`GroupedConv2D`'s reorder, and the
    models' BatchNorm as the native ``plain_batch_norm`` (its cached graphs were cleared before the copy:
    :func:`_outside_references`)."""
    if isinstance(block, GroupedConv2D):
        block.default_layout = False
    if isinstance(block, BatchNorm):
        block.plain_in_training = False
    for child in block._children.values():
        _inference_forms(child)


def convert(net, strict=False):
    """An inference copy of ``net`` whose binary QConv2D/QDense layers run the native packed operators.

    Fused on the way (see :mod:`binary_models.packed_layers`): a BatchNorm before a binary conv becomes the
    conv's binarization thresholds; a run of DenseBlocks/ImprovementBlocks becomes one in-place dense stage;
    BatchNorm -> ReLU/MaxPool (-> ChannelShuffle) becomes one ``norm_pool``; a full-precision grouped conv
    (the grouped stem) the library's ``float_conv2d``. Layers with multi-bit weights or
    activations, or Tang et al.'s multiple binarization (``binarizations > 1``), stay float-emulated: they
    have no xnor kernel. A binary layer the kernels cannot run (a stride above 4, a 0/1 quantizer, float64,
    ``flatten=False``: :func:`~binary_models.packed_layers.native_problem`) is decided about here, not at the
    first forward pass: it stays float-emulated, named with the reason in one ``UserWarning``, or with
    ``strict=True`` it is refused (:class:`~binary_models.errors.UsageError`, one line). Raises ``ValueError``
    when ``net`` has no binary layer, and :class:`binary_models.native.NativeLibraryError` when the native
    library cannot be built or loaded; ``TypeError`` when ``net`` is not a Gluon block."""
    if not isinstance(net, mx.gluon.Block):
        raise TypeError("convert needs a Gluon block (a model of binary_models.get_model, trained or loaded), "
                        "got %r" % (net,))
    try:
        native.set_caller_threads(1)  # the copy below would leave an OpenMP team in this thread (see there)
    except NativeLibraryError:
        pass  # said below where the library is needed; a model with no binary layer gets its own error
    packed = copy.deepcopy(net, _outside_references(net))
    root = _packed_form(packed)
    if root is not None:
        return root
    _inference_forms(packed)
    count = _replace_children(packed)
    kept = _kept_emulated(packed)
    if kept:
        notice = "%d binary layer%s the native kernels cannot run: %s" % (
            len(kept), "s" if len(kept) > 1 else "", "; ".join("%s (%s)" % item for item in kept))
        if strict or count == 0:
            raise UsageError(("convert(strict=True) refuses " if strict else "convert has nothing to pack: ") + notice)
        warnings.warn("convert keeps float-emulated " + notice, UserWarning, stacklevel=2)
    if count == 0:
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
    temporary folder next to ``prefix`` and replaced together (:func:`binary_models.files.replace_together`,
    recorded in ``{prefix}.pair.json``): killed at any point, the old model or the new one loads, never a
    mix and never a partial file. Returns the two paths."""
    net.hybridize()
    ctx = next(iter(net.collect_params().values())).list_ctx()[0]
    net(mx.nd.zeros(input_shape, ctx=ctx))
    targets = packed_files(prefix)
    with storage.staging_folder(targets[0]) as staging:
        staged = os.path.join(staging, "model")
        with storage.reporting_failed_writes(targets, packed_files(staged)):
            _export(net, staged, targets)
            storage.replace_together(storage.pair_record(prefix), dict(zip(targets, packed_files(staged))))
    return targets


def _export(net, staged, targets):
    """``net.export(staged)``, a failed write of it naming its target (``targets``: the symbol's, the
    parameters') and the OS's reason (:func:`~binary_models.storage.reporting_failed_writes`). MXNet reports a
    failed write of the parameters, but cuts the symbol file short without a word: that is a failed write too."""
    symbol = packed_files(staged)[0]
    try:
        net.export(staged)
    except Exception:
        if _complete_json(symbol):
            raise
        with storage.reporting_failed_writes(targets[:1], [symbol]):
            raise  # the symbol's, if the OS gives a reason; else the error as it was
    if not _complete_json(symbol):
        with storage.reporting_failed_writes(targets[:1], [symbol]):
            raise ValueError("MXNet cut the symbol file %s short" % symbol)


def _complete_json(path):
    """Whether the file ``path`` is a complete JSON document (or none was written)."""
    try:
        with open(path) as f:
            json.load(f)
    except FileNotFoundError:
        return True
    except (OSError, ValueError):
        return False
    return True


def _symbol_operators(symbol_file):
    """The operator names of a symbol JSON file, or a :class:`~binary_models.files.FileProblem` naming it."""
    try:
        with open(symbol_file) as f:
            graph = json.load(f)
        return {node["op"] for node in graph["nodes"]}
    except (ValueError, KeyError, TypeError) as err:
        raise storage.FileProblem("%s is not a model's symbol file, or it is truncated (%s: %s)"
                                % (symbol_file, type(err).__name__, err))


def load_packed(prefix, ctx=None):
    """Load a model saved with :func:`save_packed` as a hybridized ``SymbolBlock`` (input name ``data``), loading
    the native library first; a clear :class:`~binary_models.native.NativeLibraryError` says when the model
    needs the library and it cannot be loaded. A missing file raises :class:`~binary_models.files.MissingFile`;
    an empty, truncated or garbled file, or two files that are not one model, a
    :class:`~binary_models.files.FileProblem` (a ``ValueError``) naming the file. A save killed between
    its two renames is finished first."""
    symbol_file, params_file = packed_files(prefix)
    record = storage.pair_record(prefix)
    storage.finish_commit(record)
    for path in (symbol_file, params_file):
        if not os.path.isfile(path):
            raise storage.MissingFile("no packed model at %s: %s is missing" % (prefix, path))
        if os.path.getsize(path) == 0:
            raise storage.FileProblem("packed model %s: %s is empty" % (prefix, path))
    used = sorted(_symbol_operators(symbol_file) & set(native.OPERATORS))
    if used:
        try:
            native.load()
        except native.NativeLibraryError as err:
            raise native.NativeLibraryError("the packed model %s uses the native operators %s, but the native "
                                            "library cannot be loaded: %s" % (prefix, ", ".join(used), err)) from err
    try:
        mx.nd.load(params_file)
    except mx.MXNetError as err:
        raise storage.FileProblem("packed model %s: %s is not a parameter file, or it is truncated (%s)"
                                % (prefix, params_file, error_line(err)))
    storage.check_pair(record, [symbol_file, params_file], "packed model %s" % prefix)
    with warnings.catch_warnings():  # the input's dtype is known only at the first call, as for every import
        warnings.filterwarnings("ignore", message="Cannot decide type")
        try:
            net = SymbolBlock.imports(symbol_file, ["data"], params_file, ctx=ctx or mx.cpu())
        except (mx.MXNetError, AssertionError, ValueError, KeyError, TypeError) as err:
            raise storage.FileProblem("packed model %s: %s and %s are not one model (%s)"
                                    % (prefix, symbol_file, params_file, error_line(err)))
    # A cached graph with its memory planned once: 7x faster for small inputs than the imported block's default
    # (1.4 against 10 ms a digit at 8x8, one thread), as fast as bm-predict's executor.
    net.hybridize(static_alloc=True)
    return net


def write_packed_run_file(prefix, record, symbol_file):
    """``{prefix}-run.json``: the training's run file ``record`` (model, options, input size, dataset) plus what
    serving the packed model needs without Python: its ``preprocessing`` and ``class_names`` (read by
    ``bm predict --packed`` and ``deploy/``'s C++ program)."""
    from ..data.labels import class_names
    from ..data.transforms import preprocessing_of
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
    module (for ``save_packed``, ``load_packed`` and ``bm convert``)."""

    def __call__(self, net, strict=False):
        return convert(net, strict)


sys.modules[__name__].__class__ = _CallableModule

