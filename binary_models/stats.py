"""Model statistics: binary operations (BOPs), floating-point operations (FLOPs, multiply-adds),
``OPs = BOPs / 64 + FLOPs`` (MeliusNet section 3.5 / Table 1), parameters and model size.

Counting rules (they reproduce MeliusNet Tables 1-2 and the model sizes of BinaryDenseNet and Tang et al.):
- a quantized conv/dense with weights and activations below 32 bits costs MACs x bits x bits_a x m BOPs
  (m = binarizations; 1-bit layers cost MACs); any other conv/dense costs MACs FLOPs; BatchNorm,
  activations and pooling count nothing, as in the papers;
- parameters and size count learnable parameters: every weight of a quantized layer takes its bit width,
  every other parameter 32 bits; 1 MB = 2^20 bytes. BatchNorm's running mean and variance are not counted
  (at inference they fold into its scale and shift); this reproduces every size of MeliusNet Table 1
  within 1.3%, while counting them overshoots MeliusNet59 by 4%.

The network is traced symbolically, so nothing is computed or initialised: a large model at 224x224 takes
well under a second.

Command line: ``bm stats NAME [--input-size 224] [--json]`` or ``--all``.
"""
import contextlib
import io
import sys

import mxnet as mx
from mxnet.gluon import nn

from .nn.layers import QConv2D, QDense, QuantizedLayer

BINARY_SPEEDUP = 64  # MeliusNet: OPs = BOPs / 64 + FLOPs (BinaryDenseNet writes /32, but counts 64x)
MB = 2 ** 20
KB_BITS = 8 * 1024  # larq's summary: memory in kB of 8 * 1024 bits


def _leaf_blocks(block, prefix=""):
    children = list(block._children.items())
    if not children:
        yield prefix.rstrip("."), block
    for name, child in children:
        yield from _leaf_blocks(child, prefix + name + ".")


def _count(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def _macs(block, weight_shape, out_shape):
    """Multiply-accumulates of one sample through a conv or dense layer (0 for other layers)."""
    if isinstance(block, (QConv2D, nn.Conv2D)):
        return _count(out_shape[1:]) * _count(weight_shape[1:])
    if isinstance(block, (QDense, nn.Dense)):
        return _count(weight_shape)
    return 0


def _layer_kind(block):
    if isinstance(block, QuantizedLayer):
        return "%s %s" % (block.precision, "conv" if isinstance(block, QConv2D) else "dense")
    if isinstance(block, nn.Conv2D):
        return "fp conv"
    if isinstance(block, nn.Dense):
        return "fp dense"
    return type(block).__name__


def _weight_bits(block):
    return block.weight_quantizer.bits if isinstance(block, QuantizedLayer) else 32


def _input_bits(block):
    """The bits of a layer's quantized input (larq's "input precision"), None for other layers."""
    return block.input_quantizer.bits if isinstance(block, QuantizedLayer) else None


def _op_cost(block, macs):
    """(BOPs, FLOPs) of a layer with ``macs`` multiply-accumulates (the quantized layer's own rule)."""
    return block.op_cost(macs) if isinstance(block, QuantizedLayer) else (0, macs)


class ModelStats:
    """Per-layer rows and totals of a traced model (see the module docstring for the rules)."""

    def __init__(self, name, input_size, layers):
        self.name, self.input_size, self.layers = name, input_size, layers
        total = lambda key: sum(row[key] for row in layers)
        bops, flops = total("bops"), total("flops")
        self.totals = dict(bops=bops, flops=flops, ops=bops / BINARY_SPEEDUP + flops,
                           binary_params=sum(r["params"] for r in layers if r["bits"] == 1),
                           low_bit_params=sum(r["params"] for r in layers if 1 < r["bits"] < 32),
                           fp_params=sum(r["params"] for r in layers if r["bits"] == 32),
                           size_mb=sum(r["size_bits"] for r in layers) / 8 / MB)
        by_bits = {}
        for row in layers:
            for bits, count in row["params_by_bits"].items():
                by_bits[bits] = by_bits.get(bits, 0) + count
        params = sum(by_bits.values())
        macs = sum(row["macs"] for row in layers)
        self.totals.update(
            params_by_bits={str(bits): by_bits[bits] for bits in sorted(by_bits)},
            memory_kb=sum(r["size_bits"] for r in layers) / KB_BITS,
            int8_memory_kb=sum(count * min(bits, 8) for bits, count in by_bits.items()) / KB_BITS,
            float32_memory_kb=32 * params / KB_BITS,
            macs=macs, binary_mac_ratio=sum(r["macs"] for r in layers if r["mac_bits"] == 1) / max(macs, 1))

    def table(self):
        """A per-layer summary (like ``larq.models.summary``) followed by the totals."""
        header = ("Layer", "Kind", "Bits", "Output shape", "Params", "BOPs", "FLOPs")
        rows = [(r["layer"], r["kind"], str(r["bits"]), "x".join(map(str, r["output_shape"][1:])),
                 "{:,}".format(r["params"]), "{:,}".format(r["bops"]), "{:,}".format(r["flops"]))
                for r in self.layers]
        widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
        line = lambda cells: "  ".join(str(c).ljust(w) if i < 4 else str(c).rjust(w)
                                       for i, (c, w) in enumerate(zip(cells, widths)))
        rule = "-" * len(line(header))
        t = self.totals
        lines = ["%s at %dx%d" % (self.name, self.input_size, self.input_size), rule, line(header), rule]
        lines += [line(r) for r in rows] + [rule]
        lines += ["BOPs:           {:,} ({:.3g}e9)".format(t["bops"], t["bops"] / 1e9),
                  "FLOPs:          {:,} ({:.3g}e8)".format(t["flops"], t["flops"] / 1e8),
                  "OPs:            {:.3g}e8 (BOPs/{} + FLOPs)".format(t["ops"] / 1e8, BINARY_SPEEDUP),
                  "Binary params:  {:,}".format(t["binary_params"]),
                  "FP32 params:    {:,}".format(t["fp_params"])]
        if t["low_bit_params"]:
            lines.append("Low-bit params: {:,}".format(t["low_bit_params"]))
        lines.append("Size:           {:.2f} MB".format(t["size_mb"]))
        return "\n".join(lines)


    def summary(self):
        """larq's ``models.summary``: per layer its input precision, outputs, parameters by bit width, memory
        (kB = 8 * 1024 bits) and MACs by precision (the larger of input and weight bits); then the totals:
        parameters, model size, its size with 8-bit full-precision weights, the float-32 equivalent and the
        compression ratio, MACs and the share of them that is binary."""
        t = self.totals
        widths = [int(bits) for bits in t["params_by_bits"]]
        mac_bits = sorted({r["mac_bits"] for r in self.layers if r["macs"]})
        header = (["Layer", "Input prec. (bit)", "Outputs"] + ["# %d-bit" % b for b in widths] + ["Memory (kB)"]
                  + ["%d-bit MACs" % b for b in mac_bits])

        def cells(name, input_bits, shape, by_bits, size_bits, macs):
            return ([name, input_bits, shape] + ["{:,}".format(by_bits.get(b, 0)) for b in widths]
                    + ["%.2f" % (size_bits / KB_BITS)] + ["{:,}".format(macs.get(b, 0)) for b in mac_bits])
        rows = [cells(r["layer"], "-" if r["input_bits"] is None else str(r["input_bits"]),
                      "x".join(map(str, r["output_shape"][1:])), r["params_by_bits"], r["size_bits"],
                      {r["mac_bits"]: r["macs"]} if r["macs"] else {}) for r in self.layers]
        macs_by_bits = {b: sum(r["macs"] for r in self.layers if r["mac_bits"] == b) for b in mac_bits}
        total = cells("Total", "", "", {int(b): n for b, n in t["params_by_bits"].items()},
                      t["memory_kb"] * KB_BITS, macs_by_bits)
        columns = list(zip(header, *rows, total))
        sizes = [max(len(str(c)) for c in column) for column in columns]
        line = lambda row: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                                     for i, (c, w) in enumerate(zip(row, sizes)))
        rule = "-" * len(line(header))
        params = sum(t["params_by_bits"].values())
        lines = ["%s at %dx%d" % (self.name, self.input_size, self.input_size), rule, line(header), rule]
        lines += [line(r) for r in rows] + [rule, line(total), rule]
        lines += ["Total params                   {:,}".format(params),
                  "Model size                     %s" % _readable_kb(t["memory_kb"]),
                  "Model size (8-bit FP weights)  %s" % _readable_kb(t["int8_memory_kb"]),
                  "Float-32 equivalent            %s" % _readable_kb(t["float32_memory_kb"]),
                  "Compression ratio of memory    %.2f" % (t["memory_kb"] / max(t["float32_memory_kb"], 1e-12)),
                  "Number of MACs                 {:,}".format(t["macs"]),
                  "Ratio of MACs that are binary  %.4f" % t["binary_mac_ratio"]]
        return "\n".join(lines)


def _readable_kb(kb):
    """``kb`` in KiB or MiB, as larq's memory_as_readable_str (1 MiB = 1024 KiB)."""
    return "%.2f MiB" % (kb / 1024) if kb >= 1024 else "%.2f KiB" % kb


def model_statistics(net, input_size=224, name=None, in_channels=3):
    """Trace ``net`` (a Gluon block, or a model name for :func:`binary_models.get_model`) at
    ``input_size`` and count per layer; returns a :class:`ModelStats`."""
    if isinstance(net, str):
        from .model_zoo import get_model
        name, net = net, get_model(net)
    name = name or getattr(net, "model_name", type(net).__name__)
    traced, hooks = [], []
    for path, block in _leaf_blocks(net):
        hooks.append(block.register_forward_hook(
            lambda blk, inputs, output, path=path: traced.append((path, blk, inputs[0], output))))
    try:
        net(mx.sym.var("data"))
    finally:
        for hook in hooks:
            hook.detach()
    data_shape = (1, in_channels, input_size, input_size)
    group = mx.sym.Group([s for _, _, inp, out in traced for s in (inp, out)])
    if _infer_shapes(group, data_shape) is None:
        from .model_zoo import minimum_input_size
        raise ValueError("input_size %s is too small for %s: the smallest is %d"
                         % (input_size, name, minimum_input_size(net, in_channels)))
    arg_shapes, out_shapes, aux_shapes = _infer_shapes(group, data_shape)
    shapes = dict(zip(group.list_arguments(), arg_shapes))
    shapes.update(zip(group.list_auxiliary_states(), aux_shapes))
    layers = []
    for i, (path, block, _, _) in enumerate(traced):
        out_shape = out_shapes[2 * i + 1]
        counts = {p.name: _count(shapes[p.name]) for p in block.params.values() if p.grad_req != "null"}
        weight = getattr(block, "weight", None)
        weight_name = weight.name if weight is not None else None
        bits = _weight_bits(block)
        macs = _macs(block, shapes.get(weight_name), out_shape)
        bops, flops = _op_cost(block, macs)
        size_bits = sum(n * (bits if p == weight_name else 32) for p, n in counts.items())
        by_bits = {}
        for p, n in counts.items():
            by_bits[bits if p == weight_name else 32] = by_bits.get(bits if p == weight_name else 32, 0) + n
        input_bits = _input_bits(block)
        layers.append(dict(layer=path, kind=_layer_kind(block), bits=bits, output_shape=tuple(out_shape),
                           params=sum(counts.values()), bops=bops, flops=flops, size_bits=size_bits,
                           params_by_bits=by_bits, input_bits=input_bits, macs=macs,
                           mac_bits=max(input_bits or 32, bits) if weight_name in counts else 32))
    return ModelStats(name, input_size, layers)


def _infer_shapes(symbol, data_shape):
    """``symbol.infer_shape(data=data_shape)``, or None where the shapes do not fit (MXNet's own message
    about it, printed on stdout, is kept out of the output)."""
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            return symbol.infer_shape(data=data_shape)
        except mx.MXNetError:
            return None


# Published OPs (1e8, default stem) and sizes (MB) of the models outside MeliusNet Table 1.
OTHER_PAPER_NUMBERS = {
    "binary_densenet28": (2.09e8, 4.0, "MeliusNet Table 2, BinaryDenseNet Table 6"),
    "binary_densenet37": (2.20e8, 5.1, "MeliusNet Table 2, BinaryDenseNet Table 6"),
    "binary_densenet37_dilated": (None, 5.1, "BinaryDenseNet Table 6"),
    "binary_densenet45": (None, 7.4, "BinaryDenseNet Table 6"),
    "resnet_e18": (1.63e8, 4.0, "MeliusNet Table 2, BinaryDenseNet Table 3"),
    "resnet_e34": (1.93e8, 5.1, "MeliusNet Table 2 (Bi-RealNet34)"),
    "tang_nin": (None, 1.23, "Tang et al. Table 5"),
    "binary_alexnet": (None, 7.43, "Tang et al. Table 6"),
}


def paper_numbers():
    """``name -> (OPs, size MB, source)`` of every model whose paper gives them."""
    from .models import PAPER_NUMBERS
    from .models.meliusnet import MELIUSNET_TABLE1
    numbers = {name: (row["ops"], row["size_mb"], "MeliusNet Table 1") for name, row in MELIUSNET_TABLE1.items()}
    numbers.update(OTHER_PAPER_NUMBERS)
    numbers.update(PAPER_NUMBERS)
    return numbers


def comparison_table(names, input_size=224, reference=None):
    """One row per model (MeliusNet Table 1 style) as Markdown; ``reference`` (see :func:`paper_numbers`)
    adds the published OPs and size with their source."""
    header = "| Model | BOPs (1e9) | FLOPs (1e8) | OPs (1e8) | Binary params | FP32 params | Size (MB) |"
    if reference:
        header += " Paper OPs (1e8) / size (MB) |"
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for name in names:
        t = model_statistics(name, input_size).totals
        row = "| %s | %.2f | %.2f | %.2f | %s | %s | %.2f |" % (
            name, t["bops"] / 1e9, t["flops"] / 1e8, t["ops"] / 1e8, "{:,}".format(t["binary_params"]),
            "{:,}".format(t["fp_params"]), t["size_mb"])
        if reference:
            ops, size, source = reference.get(name, (None, None, ""))
            cells = "%s / %s" % ("%.2f" % (ops / 1e8) if ops else "-", size if size else "-")
            row += " %s |" % ("%s (%s)" % (cells, source) if source else "")
        lines.append(row)
    return "\n".join(lines)


if __name__ == "__main__":  # python -m binary_models.stats: the command bm stats
    from .commands.stats import main
    from .commands.cli import run_script
    sys.exit(run_script(main))
