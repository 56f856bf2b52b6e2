"""`make demo`'s steps end to end (its default budget is small enough for CI)."""
import json
import os

import binary_models.commands.demo as demo


def test_demo_trains_packs_and_reproduces_predictions(tmp_path, capsys):
    out = str(tmp_path / "demo_output")
    assert demo.main(["--output", out]) == 0
    printed = capsys.readouterr().out
    assert "meliusnet59 at 224x224" in printed and "against MeliusNet Table 1" in printed
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert summary["identical_predictions"] is True
    assert summary["packed_top1"] == summary["float_top1"] >= 0.9          # issue: >= 90% on the digits
    assert summary["float_bytes"] > 8 * summary["packed_bytes"]            # 1 bit per binary weight
    for png in ("predictions.png", os.path.join("train", "training_curve.png")):
        with open(os.path.join(out, png), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "outputs in %s" % os.path.abspath(out) in printed
