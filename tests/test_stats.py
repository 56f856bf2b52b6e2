"""binary_models.stats reproduces the papers' numbers, and its counting matches hand-computed formulas."""
import json
import subprocess
import sys

import pytest
from mxnet import gluon

import binary_models as bm
from binary_models.models.meliusnet import MELIUSNET_TABLE1
from binary_models.commands.stats import main
from binary_models.stats import model_statistics

TOLERANCE = 0.03


def close(value, paper):
    return abs(value - paper) <= TOLERANCE * paper


@pytest.mark.parametrize("name", sorted(MELIUSNET_TABLE1))
def test_meliusnet_table1_row_within_3_percent(name):
    paper = MELIUSNET_TABLE1[name]
    t = model_statistics(name).totals
    for key in ("bops", "flops", "ops", "size_mb"):
        assert close(t[key], paper[key]), (key, t[key], paper[key])


# MeliusNet Table 2: OPs (1e8) with the 7x7 stem and with the grouped stem.
TABLE2_OPS = {"resnet_e18": (1.63, 1.14), "binary_densenet28": (2.58, 2.09), "meliusnet22": (2.57, 2.08),
              "resnet_e34": (1.93, 1.43), "binary_densenet37": (2.71, 2.20), "meliusnet29": (2.63, 2.14)}


@pytest.mark.parametrize("name", sorted(TABLE2_OPS))
@pytest.mark.parametrize("stem, column", [("7x7", 0), ("grouped", 1)])
def test_meliusnet_table2_ops_with_both_stems(name, stem, column):
    ops = model_statistics(bm.get_model(name, stem=stem), name=name).totals["ops"]
    assert close(ops, TABLE2_OPS[name][column] * 1e8), (ops, TABLE2_OPS[name][column])


def test_grouped_stem_saves_0_49e8_ops():
    """MeliusNet section 3.3: 1.18e8 -> 0.69e8 OPs, a constant 0.49e8 saving."""
    for name in ("resnet_e18", "meliusnet22"):
        seven = model_statistics(bm.get_model(name, stem="7x7")).totals["flops"]
        grouped = model_statistics(bm.get_model(name, stem="grouped")).totals["flops"]
        assert close(seven - grouped, 0.49e8)


@pytest.mark.parametrize("name, paper_mb", [
    ("binary_densenet28", 4.0), ("binary_densenet37", 5.1), ("binary_densenet37_dilated", 5.1),
    ("binary_densenet45", 7.4),  # BinaryDenseNet Table 6 size groups
    ("resnet_e18", 4.0),         # BinaryDenseNet Table 2 (FP downsampling) and Table 3
    ("tang_nin", 1.23), ("binary_alexnet", 7.43)])  # Tang et al. Tables 5 and 6
def test_model_sizes_of_other_papers(name, paper_mb):
    assert close(model_statistics(name).totals["size_mb"], paper_mb)


def test_full_precision_tang_bases_have_caffe_sizes():
    """Tang et al. section 4: the NIN base is 29 MB and AlexNet's Caffe config 232 MB, confirming the layer lists."""
    with bm.layer_config(bits=32, bits_a=32):
        nin = bm.models.TangNIN(expanded=False)
        alexnet = bm.models.BinaryAlexNet()
    assert close(model_statistics(nin).totals["size_mb"], 29)
    assert close(model_statistics(alexnet).totals["size_mb"], 232)


def test_counts_of_a_small_network_match_hand_computation():
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Conv2D(8, 3, padding=1, in_channels=3, use_bias=False),  # 16*16*8*27 FLOPs
            gluon.nn.BatchNorm(in_channels=8),                                  # 16 params (+16 running stats)
            bm.QConv2D(16, 3, strides=2, padding=1, groups=2, in_channels=8),   # 8*8*16*(4*9) BOPs, 576 bits
            bm.QConv2D(16, 1, bits=2, bits_a=2, in_channels=16),                # 8*8*16*16 MACs * 4 BOPs, 256 x 2 bits
            bm.QConv2D(16, 1, binarizations=2, in_channels=16),                 # 8*8*16*16 MACs * 2 BOPs
            gluon.nn.GlobalAvgPool2D(), gluon.nn.Dense(10, in_units=16))        # 160 FLOPs, 170 params
    t = model_statistics(net, input_size=16).totals
    assert t["flops"] == 16 * 16 * 8 * 27 + 10 * 16
    assert t["bops"] == 8 * 8 * 16 * 36 + 8 * 8 * 16 * 16 * 4 + 8 * 8 * 16 * 16 * 2
    assert t["binary_params"] == 16 * 4 * 9 + 16 * 16 and t["low_bit_params"] == 256
    assert t["fp_params"] == 8 * 27 + 16 + 170
    assert t["size_mb"] * 2 ** 20 * 8 == (8 * 27 + 16 + 170) * 32 + (576 + 256) * 1 + 256 * 2
    assert t["ops"] == t["bops"] / 64 + t["flops"]


def test_per_layer_rows_sum_to_totals_and_name_layers():
    stats = model_statistics("meliusnet22")
    assert sum(r["bops"] for r in stats.layers) == stats.totals["bops"]
    kinds = {r["kind"] for r in stats.layers}
    assert {"binary conv", "fp conv", "fp dense", "BatchNorm"} <= kinds
    assert stats.layers[-1]["output_shape"] == (1, 1000)
    table = stats.table()
    assert "features.1.body.1" in table and "binary conv" in table and "Size:" in table


def test_input_size_scales_operations_quadratically():
    small = model_statistics("meliusnet22", input_size=224).totals
    large = model_statistics("meliusnet22", input_size=448).totals
    assert large["bops"] == 4 * small["bops"] and large["size_mb"] == small["size_mb"]


def test_cli_json_prints_machine_readable_totals(capsys):
    assert main(["meliusnet22", "--json"]) == 0
    totals = json.loads(capsys.readouterr().out)
    assert set(totals) >= {"bops", "flops", "ops", "binary_params", "fp_params", "size_mb"}
    assert close(totals["size_mb"], 3.9)


def test_cli_all_has_one_row_per_model(capsys):
    main(["--all"])
    out = capsys.readouterr().out
    for name in bm.get_model_list():
        assert "| %s |" % name in out


def test_cli_unknown_model_exits_2_naming_close_models():
    result = subprocess.run([sys.executable, "-m", "binary_models.stats", "meliusnet_d"], capture_output=True,
                            text=True)
    assert result.returncode == 2 and "meliusnet_a" in result.stderr and "Traceback" not in result.stderr


def test_larq_summary_counts_parameters_by_precision_memory_and_equivalents(capsys):
    """larq models_test.py's toy model, in Gluon: a 1-bit conv (input 1 bit), a 32-bit dense. Memory in kB of
    8 * 1024 bits; float-32 equivalent counts every parameter at 32 bits; the 8-bit size counts the
    32-bit ones at 8 bits (larq's "Model size (8-bit FP weights)")."""
    net = gluon.nn.HybridSequential()
    net.add(bm.QConv2D(2, 3, in_channels=1), gluon.nn.Flatten(), gluon.nn.Dense(2, in_units=2 * 6 * 6))
    stats = model_statistics(net, input_size=8, in_channels=1)
    t = stats.totals
    binary, fp = 2 * 9, 2 * 72 + 2
    assert t["params_by_bits"] == {"1": binary, "32": fp}
    assert t["memory_kb"] == (binary + 32 * fp) / 8192
    assert t["float32_memory_kb"] == 32 * (binary + fp) / 8192
    assert t["int8_memory_kb"] == (binary + 8 * fp) / 8192
    assert t["macs"] == 6 * 6 * 2 * 9 + 72 * 2 and t["binary_mac_ratio"] == 6 * 6 * 2 * 9 / t["macs"]
    conv_row = stats.layers[0]
    assert (conv_row["input_bits"], conv_row["mac_bits"], conv_row["params_by_bits"]) == (1, 1, {1: binary})
    table = stats.summary()
    for text in ("Input prec. (bit)", "# 1-bit", "# 32-bit", "Memory (kB)", "1-bit MACs", "Float-32 equivalent",
                 "Model size (8-bit FP weights)", "Compression ratio of memory", "Total params"):
        assert text in table
    assert main(["meliusnet22", "--summary"]) == 0
    out = capsys.readouterr().out
    assert "features.1.body.1" in out and "Ratio of MACs that are binary" in out
