"""binary_models_compat (issue 29): MXNet 1.9.1 and GluonCV on NumPy 2 and Python 3.12+, beside PyTorch 2.

PyTorch is never installed here: a stand-in ``torch`` package whose ``__version__`` is "2.13.0" goes first on
the path of a subprocess, which is what GluonCV's version check reads."""
import os
import subprocess
import sys
import sysconfig
import textwrap

import numpy as np
import pytest

import binary_models_compat as compat

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUMPY_2 = int(np.__version__.split(".")[0]) >= 2
PTH = os.path.join(sysconfig.get_path("purelib"), "binary_models_compat.pth")
needs_pth = pytest.mark.skipif(not os.path.isfile(PTH), reason="binary_models_compat.pth is not installed in this "
                                                                "interpreter's site-packages (pip install -e . does)")


@pytest.fixture(scope="module")
def torch_2(tmp_path_factory):
    """A folder holding the stand-in ``torch`` package."""
    folder = tmp_path_factory.mktemp("torch2")
    (folder / "torch").mkdir()
    (folder / "torch" / "__init__.py").write_text('__version__ = "2.13.0"\n')
    return str(folder)


def python(code, path=(), cwd=REPO, args=(), **env):
    """Runs ``code`` (a string, or a script's path when ``args`` holds its arguments) in a fresh interpreter with
    ``path`` first on PYTHONPATH; returns (exit status, stdout and stderr)."""
    environment = dict(os.environ, **env)
    environment["PYTHONPATH"] = os.pathsep.join(list(path) + [REPO] + [os.environ.get("PYTHONPATH", "")]).rstrip(
        os.pathsep)
    command = [sys.executable] + (["-c", textwrap.dedent(code)] if code else []) + list(args)
    result = subprocess.run(command, cwd=cwd, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True)
    return result.returncode, result.stdout


SEES_TORCH_2 = """
import sys
print("torch", sys.modules["torch"].__version__, "gluoncv torch support", gluoncv._found_pytorch)
"""


def test_gluoncv_script_import_order_works_beside_torch_2(torch_2):
    """``import mxnet; import gluoncv`` first, as GluonCV's scripts do, no binary_models: the .pth's hook acts."""
    status, output = python("import mxnet as mx\nimport gluoncv\n" + SEES_TORCH_2 + textwrap.dedent("""
        net = gluoncv.model_zoo.get_model("resnet18_v1", classes=3)
        net.initialize()
        print("output", net(mx.nd.ones((1, 3, 16, 16))).shape)
    """), path=[torch_2])
    assert status == 0, output[-3000:]
    assert "torch 2.13.0 gluoncv torch support False" in output and "output (1, 3)" in output


def test_import_binary_models_and_get_model_work_beside_torch_2(torch_2):
    status, output = python(textwrap.dedent("""
        import binary_models as bm, gluoncv, mxnet as mx
        net = bm.get_model("meliusnet22", classes=4, stem="thumbnail")
        net.initialize()
        print("output", net(mx.nd.ones((1, 3, 16, 16))).shape)
    """) + SEES_TORCH_2, path=[torch_2])
    assert status == 0, output[-3000:]
    assert "torch 2.13.0 gluoncv torch support False" in output and "output (1, 4)" in output


def test_a_gluoncv_script_run_with_bm_run_gets_the_models_beside_torch_2(torch_2, tmp_path):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent("""
        import mxnet as mx
        import gluoncv
        from gluoncv.model_zoo import get_model
        net = get_model("binary_densenet28", classes=2, stem="thumbnail")
        net.initialize()
        print("output", net(mx.nd.ones((1, 3, 16, 16))).shape)
    """) + SEES_TORCH_2)
    status, output = python(None, path=[torch_2], args=["-m", "binary_models", "run", str(script)])
    assert status == 0, output[-3000:]
    assert "torch 2.13.0 gluoncv torch support False" in output and "output (1, 2)" in output


def test_the_training_script_trains_beside_torch_2(torch_2, tmp_path):
    status, output = python(None, path=[torch_2], cwd=str(tmp_path), args=[
        os.path.join(REPO, "train_imagenet.py"), "--dataset", "digits", "--model", "meliusnet22", "--input-size", "8",
        "--num-epochs", "1", "--batch-size", "16", "--max-batches", "2", "--no-progress", "-j", "0",
        "--save-dir", "run"])
    assert status == 0, output[-3000:]
    assert (tmp_path / "run" / "summary.json").is_file()


def test_turned_off_gluoncv_raises_on_torch_2_again(torch_2):
    """``BINARY_MODELS_COMPAT=0`` turns the module off: GluonCV's own check runs (and, on NumPy 2, mxnet's
    import fails first)."""
    status, output = python("import mxnet, gluoncv", path=[torch_2], BINARY_MODELS_COMPAT="0")
    assert status == 1
    expected = "`np.PZERO` was removed" if NUMPY_2 else "RuntimeError: Legacy torch==2.13.0 detected"
    assert expected in output, output[-3000:]


@needs_pth
def test_the_pth_only_adds_the_hook_at_start_up_and_imports_nothing():
    status, output = python("""
        import sys
        print(sorted(name for name in ("numpy", "mxnet", "gluoncv") if name in sys.modules))
        print([getattr(finder, "__name__", type(finder).__name__) for finder in sys.meta_path])
    """, cwd="/")
    assert status == 0, output
    loaded, finders = output.split("\n")[:2]
    assert loaded == "[]"  # the hook is all: nothing is imported until mxnet or gluoncv is
    assert "'_ImportHook'" in finders and finders.index("'_ImportHook'") < finders.index("'PathFinder'"), finders


@needs_pth
def test_the_pth_does_nothing_when_turned_off():
    status, output = python("import sys; print(any(type(f).__name__ == '_ImportHook' for f in sys.meta_path))",
                            cwd="/", BINARY_MODELS_COMPAT="0")
    assert (status, output.strip()) == (0, "False")


def test_the_hook_leaves_the_import_system_once_gluoncv_is_patched():
    import gluoncv  # noqa: F401  (conftest imported binary_models, and with it gluoncv)
    assert not any(type(finder).__name__ == "_ImportHook" for finder in sys.meta_path)
    import gluoncv.check
    assert gluoncv.check._require_pytorch_version.__wrapped__  # defused, the original kept


@pytest.mark.skipif(not NUMPY_2, reason="NumPy 1.23 still has every name: nothing is restored")
def test_restored_numpy_names_are_served_to_mxnet_and_gluoncv_only():
    for package in ("mxnet.numpy.fallback", "gluoncv.model_zoo.rcnn"):
        scope = {"__name__": package, "numpy": np}
        exec("values = (numpy.PZERO, numpy.NINF, numpy.float, numpy.compat.basestring)", scope)
        assert scope["values"] == (0.0, -np.inf, float, str)
    for name in ("PZERO", "float", "in1d", "trapz", "compat"):
        assert not hasattr(np, name), name  # this module is neither: NumPy's own answer
    with pytest.raises(AttributeError, match="was removed in the NumPy 2.0 release"):
        np.NINF
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        exec("numpy.no_such_name", {"__name__": "mxnet.x", "numpy": np})


@pytest.mark.skipif(not NUMPY_2, reason="NumPy 1.23 still has every name: nothing is restored")
def test_mxnet_fallbacks_bound_to_restored_names_compute_what_numpy_1_23_did():
    import mxnet as mx
    fallback = mx.numpy.fallback
    assert fallback.trapz(np.array([1.0, 2.0, 3.0])) == 4.0
    assert fallback.in1d(np.array([[1, 2], [3, 4]]), [2, 3]).tolist() == [False, True, True, False]
    assert fallback.msort(np.array([[3, 1], [1, 2]])).tolist() == [[1, 1], [3, 2]]
    assert fallback.alltrue(np.array([1, 0])) == False and fallback.alltrue is not np.all  # noqa: E712
    with pytest.raises(RuntimeError, match="numpy_financial"):
        fallback.npv(0.1, [1, 2])
    # each restored function is its own object, so mxnet's dispatch table keeps np.any's entry for np.any
    assert bool(np.any(mx.np.array([0, 1]))) and not bool(mx.np.sometrue(mx.np.array([0, 0])))


def test_without_numpy_2_numpy_is_left_exactly_as_it_was():
    wrapped = getattr(np.__dict__.get("__getattr__"), "restored", None)
    if NUMPY_2:
        assert set(wrapped) <= set(compat.RESTORED_NUMPY_NAMES) and "PZERO" in wrapped
    else:
        assert wrapped is None


def test_distutils_stand_in_compares_versions_as_gluoncv_and_mxnet_need():
    Version = compat.Version
    assert Version("2.13.0+cpu") >= Version("2.0.0") and Version("1.9.1") < "1.10"
    assert Version("1.4.0") <= "1.4.0" and not Version("1.9.1") >= "2.0.0" and Version("2.0") != "2"
    # the fallback answers imports made by mxnet and gluoncv only (this test is neither)
    assert compat._DistutilsFallback().find_spec("distutils") is None


@pytest.mark.skipif(sys.version_info < (3, 12), reason="Python 3.11 has distutils itself")
def test_on_python_3_12_without_distutils_mxnet_and_gluoncv_import():
    status, output = python("""
        import mxnet, gluoncv, distutils.version
        print(distutils.version.LooseVersion.__module__)
    """, SETUPTOOLS_USE_DISTUTILS="stdlib")  # setuptools (where installed) then leaves distutils alone
    assert status == 0, output[-3000:]
    assert output.strip().endswith("binary_models_compat"), output


def test_the_torch_check_wrapper_turns_only_the_out_of_range_error_into_import_error():
    import types

    def check(require):
        module = types.SimpleNamespace(_require_pytorch_version=require)
        compat._defuse_torch_check(module)
        return module._require_pytorch_version

    def out_of_range(*args):
        raise RuntimeError("Legacy torch==2.13.0 detected")

    def missing(*args):
        raise ImportError("Unable to import dependency pytorch")

    with pytest.raises(ImportError, match="Legacy torch==2.13.0"):
        check(out_of_range)("1.4.0", "2.0.0")
    with pytest.raises(ImportError, match="Unable to import"):
        check(missing)("1.4.0", "2.0.0")
    assert check(lambda *args: "fine")("1.4.0") == "fine"


def test_recordio_packs_images_and_array_labels_on_this_numpy(tmp_path):
    """``mxnet.recordio`` writes with ``ndarray.tostring`` (NumPy 2.3 removed it): a record round-trips."""
    import mxnet as mx
    image = np.random.RandomState(0).randint(0, 255, (8, 8, 3)).astype(np.uint8)
    packed = mx.recordio.pack_img(mx.recordio.IRHeader(0, [1.0, 2.0], 7, 0), image, img_fmt=".png")
    header, decoded = mx.recordio.unpack_img(packed)
    assert header.label.tolist() == [1.0, 2.0] and header.id == 7 and np.array_equal(decoded, image)


def test_without_mxnet_import_binary_models_says_how_to_install_it():
    status, output = python("import sys\nsys.modules['mxnet'] = None  # as if not installed\nimport binary_models")
    assert status == 1
    assert output.strip().splitlines()[-1] == ("ImportError: binary_models needs mxnet 1.9.1: pip install --no-deps "
                                               "mxnet==1.9.1 (docs/install.md)"), output


def test_an_aarch64_mxnet_without_arm_performance_libraries_is_one_line_saying_what_to_do(tmp_path):
    """The mxnet 1.9.1 aarch64 wheel fails to load libarmpl_lp64_mp.so (issue 22): a stand-in mxnet that fails
    the same way gives one ``error:`` line naming the stand-ins' docs and exit status 2, no traceback."""
    (tmp_path / "mxnet").mkdir()
    (tmp_path / "mxnet" / "__init__.py").write_text(
        'raise OSError("libarmpl_lp64_mp.so: cannot open shared object file: No such file or directory")\n')
    status, output = python("import binary_models", path=[str(tmp_path)], BINARY_MODELS_COMPAT="0")
    assert status == 2 and output.count("\n") == 1 and "Traceback" not in output, output
    assert output.startswith("error: mxnet 1.9.1's aarch64 wheel links Arm Performance Libraries that it does not "
                             "ship (libarmpl_lp64_mp.so: cannot open shared object file") and \
        "docs/native.md#arm64-aarch64" in output, output
