"""GluonCV's scripts unchanged: ``python -m binary_models.run SCRIPT.py`` runs a script as Python would, with this
package's models in ``gluoncv.model_zoo``; every model takes the keyword arguments GluonCV's scripts pass; and
``convert`` works on a net that went through ``gluoncv.utils.export_block``."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import mxnet as mx
from mxnet.gluon import nn

import binary_models as bm
from binary_models.commands import run
from binary_models.inference.convert import convert
from binary_models.inference.packed_layers import BinaryDenseStage

from test_convert import blocks_of, trained_like

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A user's script: it never imports binary_models, and reports what it saw.
STAND_IN_SCRIPT = '''
import json, os, sys
import gluoncv
import helper  # beside the script: found through sys.path[0]

classifier = gluoncv.model_zoo.get_model("meliusnet22", classes=10, stem="thumbnail", pretrained=False)
detector = gluoncv.model_zoo.get_model("ssd_300_binary_densenet28_voc", pretrained_base=False)
report = dict(argv=sys.argv, name=__name__, path0=sys.path[0], helper=helper.VALUE,
              classifier=type(classifier).__module__, detector=type(detector).__module__,
              detector_classes=len(detector.classes))
with open(os.environ["REPORT"], "w") as f:
    json.dump(report, f)
if __name__ == "__main__":
    sys.exit(int(sys.argv[-1]))
'''


@pytest.fixture
def stand_in(tmp_path):
    folder = tmp_path / "scripts"
    folder.mkdir()
    (folder / "helper.py").write_text("VALUE = 42\n")
    script = folder / "user_script.py"
    script.write_text(STAND_IN_SCRIPT)
    return str(script)


def test_script_runs_as_main_with_its_argv_path_and_exit_status_and_finds_the_models(stand_in, tmp_path):
    report = str(tmp_path / "report.json")
    result = subprocess.run([sys.executable, "-m", "binary_models.run", stand_in, "--flag", "value", "3"],
                            cwd=REPO, capture_output=True, text=True, env=dict(os.environ, REPORT=report))
    assert result.returncode == 3, result.stderr[-2000:]
    seen = json.load(open(report))
    assert seen["argv"] == [stand_in, "--flag", "value", "3"]
    assert seen["name"] == "__main__"
    assert seen["path0"] == os.path.dirname(stand_in) and seen["helper"] == 42
    assert seen["classifier"] == "binary_models.models.meliusnet"
    assert seen["detector"].startswith("gluoncv.model_zoo.ssd") and seen["detector_classes"] == 20


def test_an_uncaught_exception_exits_1_with_a_traceback_starting_in_the_script(tmp_path, capsys):
    script = tmp_path / "failing.py"
    script.write_text(textwrap.dedent('''
        def load_data():
            raise ValueError("no such data set")

        load_data()
    '''))
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    assert run.main([str(script)]) == 1
    assert (sys.argv, sys.path) == (saved_argv, saved_path)  # restored for the caller
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "Traceback (most recent call last):"
    assert err[1].startswith('  File "%s", line 5, in <module>' % script), err
    assert "runpy" not in "\n".join(err) and "binary_models" not in "\n".join(err)
    assert err[-1] == "ValueError: no such data set"


def test_sys_exit_with_a_message_prints_it_and_exits_1(tmp_path, capsys):
    script = tmp_path / "message.py"
    script.write_text("import sys\nsys.exit('stopping here')\n")
    assert run.main([str(script)]) == 1
    assert capsys.readouterr().err == "stopping here\n"


def test_a_missing_script_exits_2_with_one_line(tmp_path, capsys):
    assert run.main([str(tmp_path / "nothere.py"), "--x"]) == 2
    assert capsys.readouterr().err == "error: script not found: %s\n" % (tmp_path / "nothere.py")
    assert run.main([]) == 2


def gluoncv_script_kwargs(name, kind):
    """The keyword arguments GluonCV's train_imagenet.py (classification) and train_ssd.py (detection) pass to
    ``get_model``: context, pretrained flags, classes, and the normalisation layer options."""
    kwargs = dict(ctx=mx.cpu(), pretrained=False, pretrained_base=False, last_gamma=True,
                  norm_layer=nn.BatchNorm, norm_kwargs={"momentum": 0.9})
    if kind == "classification":
        kwargs["classes"] = 10
    elif name.endswith("_custom"):
        kwargs["classes"] = ["cat", "dog"]
    return kwargs


@pytest.mark.parametrize("name,kind", [(name, kind) for kind in ("classification", "detection")
                                       for name in bm.get_model_list(kind=kind)])
def test_every_model_accepts_gluoncv_script_arguments(name, kind):
    import gluoncv
    net = gluoncv.model_zoo.get_model(name, **gluoncv_script_kwargs(name, kind))
    assert type(net).__module__.startswith(("binary_models", "gluoncv.model_zoo.ssd"))
    if kind == "classification":  # shape inference only: the classes reached the output layer
        assert net(mx.sym.var("data")).infer_shape(data=(1, 3, 224, 224))[1] == [(1, 10)]
    else:
        assert len(net.classes) == (2 if name.endswith("_custom") else 20 if name.endswith("_voc") else 80)


def test_convert_works_on_a_net_exported_with_gluoncv_export_block(tmp_path):
    from gluoncv.utils import export_block
    net = trained_like(bm.get_model("binary_densenet28", stem="thumbnail", growth=16, init_channels=16,
                                    classes=10), (1, 3, 16, 16))
    export_block(str(tmp_path / "exported"), net, data_shape=(16, 16, 3), preprocess=True)
    assert os.path.isfile(str(tmp_path / "exported-symbol.json"))
    packed = convert(net)
    assert sum(len(stage.attrs["units"]) for stage in blocks_of(packed, BinaryDenseStage)) == 23
    x = mx.nd.random.normal(shape=(4, 3, 16, 16))
    expected = net(x).asnumpy()
    np.testing.assert_allclose(packed(x).asnumpy(), expected, rtol=1e-4, atol=1e-4)


def test_bm_examples_writes_the_documented_digits_and_a_script_for_bm_run(tmp_path):
    """``bm examples``: the three digits are scikit-learn's images 1794-1796 (an 8, a 9, an 8) as PNGs, and
    count_models.py finds this package's models only through ``bm run``."""
    import cv2
    from sklearn.datasets import load_digits
    from binary_models.commands import examples
    assert examples.main([str(tmp_path)]) == 0
    digits = load_digits()
    for index in examples.DIGITS:
        image = cv2.imread(str(tmp_path / ("digit%d.png" % index)), cv2.IMREAD_GRAYSCALE)
        assert image.shape == (examples.SIDE, examples.SIDE)
        small = cv2.resize(image, (8, 8), interpolation=cv2.INTER_AREA) / 255.0 * 16
        assert np.corrcoef(small.ravel(), digits.images[index].ravel())[0, 1] > 0.9
    assert [digits.target[i] for i in examples.DIGITS] == [8, 9, 8]
    script = str(tmp_path / "count_models.py")
    plain = subprocess.run([sys.executable, script, "meliusnet22"], capture_output=True, universal_newlines=True)
    assert plain.returncode != 0
    run = subprocess.run([sys.executable, "-m", "binary_models", "run", script, "meliusnet22"], capture_output=True,
                         universal_newlines=True)
    assert run.returncode == 0 and run.stdout.strip() == "meliusnet22 -> MeliusNet from binary_models.models.meliusnet"


def test_bm_lists_its_commands_and_refuses_an_unknown_one_naming_the_closest(capsys):
    from binary_models.commands import main
    assert main.main(["--help"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in main.COMMANDS)
    assert main.main(["conver"]) == 2
    assert "unknown command 'conver'; did you mean convert?" in capsys.readouterr().err
    for module, _ in main.COMMANDS.values():  # every command's module exists and has its main
        assert callable(__import__("binary_models.commands." + module, fromlist=["main"]).main)


def test_the_module_paths_of_version_0_1_still_work_with_a_deprecation_warning():
    code = ("import warnings; warnings.filterwarnings('error', 'binary_models', DeprecationWarning)\n"
            "import binary_models\n"
            "try:\n    import binary_models.files\nexcept DeprecationWarning as w:\n    print('warned:', w)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, universal_newlines=True)
    assert "warned: binary_models.files is now binary_models.storage" in result.stdout, result.stderr[-2000:]
    with pytest.warns(DeprecationWarning):
        from binary_models import training
    from binary_models.train import loop
    assert training is loop  # the same module, not a copy
    result = subprocess.run([sys.executable, "-m", "binary_models.convert", "--help"], capture_output=True,
                            universal_newlines=True)
    assert result.returncode == 0 and "usage: bm convert" in result.stdout, result.stderr[-2000:]


def test_a_command_whose_reader_goes_away_stops_quietly():
    """``bm stats --all | head -1``: no BrokenPipeError traceback, the pipe's exit status."""
    result = subprocess.run("%s -m binary_models stats --all | head -1" % sys.executable, shell=True,
                            executable="/bin/bash", capture_output=True, universal_newlines=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert result.stdout.startswith("| Model |") and result.stdout.count("\n") == 1
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
