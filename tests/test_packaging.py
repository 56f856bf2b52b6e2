"""`pip wheel .` compiles the native library into the wheel, and an installed wheel (no checkout beside it)
loads that library and computes what the float-emulated layer computes."""
import glob
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ("setup.py", "pyproject.toml", "MANIFEST.in", "README.md", "binary_models", "binary_models_compat.py",
           "binary_models_compat.pth", "native")


def build_wheel(tmp_path_factory, **env):
    """(the wheel pip builds from a copy of the sources, so the checkout's build/ stays untouched; pip's
    output), with ``env`` added to the environment."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in SOURCES:
        path = os.path.join(ROOT, name)
        if os.path.isdir(path):
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("build", "__pycache__", "*.egg-info"))
        else:
            shutil.copy(path, source / name)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(out), str(source)],
                            env=dict(os.environ, **env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True)
    assert result.returncode == 0, result.stdout[-3000:]
    (path,) = glob.glob(str(out / "*.whl"))
    return path, result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    return build_wheel(tmp_path_factory)[0]


def test_wheel_is_platform_specific_and_carries_the_native_library(wheel):
    assert not wheel.endswith("-none-any.whl"), wheel
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "binary_models/libbinary_models_native.so" in names
    assert "binary_models/inference/convert.py" in names and "binary_models/commands/main.py" in names
    assert "binary_models_compat.py" in names and "binary_models_compat.pth" in names  # site-packages itself
    assert not any(name.startswith(("native/", "train_imagenet", "detection/")) for name in names)
    (entry_points,) = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
    with zipfile.ZipFile(wheel) as archive:
        assert "bm = binary_models.commands.main:main" in archive.read(entry_points).decode()


@pytest.fixture(scope="module")
def site(wheel, tmp_path_factory):
    """The wheel's files, as pip installs them, in a folder outside the checkout."""
    site = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    os.chmod(site / "binary_models" / "libbinary_models_native.so", 0o755)
    return site


def run_installed(site, cwd, *args):
    """``python -m binary_models ARGS`` (what the ``bm`` console script runs) from the installed files only."""
    env = dict(os.environ, PYTHONPATH=str(site))
    env.pop("BINARY_MODELS_NATIVE_LIB", None)
    return subprocess.run([sys.executable, "-m", "binary_models"] + list(args), cwd=str(cwd), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)


def test_installed_wheel_trains_converts_and_predicts_outside_the_checkout(site, tmp_path):
    """The newcomer's path from the wheel alone: examples, a smoke training on the digits, convert, predict."""
    result = run_installed(site, tmp_path, "examples", "examples")
    assert result.returncode == 0, result.stdout[-3000:]
    result = run_installed(site, tmp_path, "train", "--dataset", "digits", "--model", "meliusnet22", "--input-size",
                           "8", "--num-epochs", "1", "--batch-size", "16", "--max-batches", "3", "--no-progress",
                           "-j", "0", "--save-dir", "run")
    assert result.returncode == 0, result.stdout[-3000:]
    summary = json.load(open(tmp_path / "run" / "summary.json"))
    assert summary["classes"] == 10 and summary["model"] == "meliusnet22"
    assert not (tmp_path / "run" / "imagenet-meliusnet22-run.lock").exists()  # a finished run leaves no lock
    result = run_installed(site, tmp_path, "convert", "--params", "run/imagenet-meliusnet22-best.params",
                           "--output", "packed/m")
    assert result.returncode == 0, result.stdout[-3000:]
    result = run_installed(site, tmp_path, "predict", "--packed", "packed/m", "--json", "examples/digit1795.png")
    assert result.returncode == 0, result.stdout[-3000:]
    (prediction,) = json.loads(result.stdout[result.stdout.index("["):])
    assert len(prediction["top"]) == 5 and abs(sum(t["probability"] for t in prediction["top"]) - 1) < 0.5
    assert sorted(os.listdir(tmp_path)) == ["examples", "packed", "run"]  # nothing written elsewhere


def test_installed_wheel_loads_its_own_library_and_matches_the_float_layer(site, tmp_path):
    check = textwrap.dedent("""
        import numpy as np, mxnet as mx, binary_models as bm
        from binary_models.inference import native
        assert not native.in_checkout()
        path = native.load()
        assert path == native.library_path() and path.startswith(%r), path
        conv = bm.QConv2D(70, 3, strides=2, padding=1, in_channels=45)
        conv.initialize(mx.init.Normal(1.0))
        x = mx.nd.array(np.random.RandomState(0).randn(2, 45, 9, 11))
        packed = bm.convert(conv)
        assert np.array_equal(packed(x).asnumpy(), conv(x).asnumpy())
        print("ok")
    """ % str(site))
    env = dict(os.environ, PYTHONPATH=str(site))
    env.pop("BINARY_MODELS_NATIVE_LIB", None)
    result = subprocess.run([sys.executable, "-c", check], cwd=str(tmp_path), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, universal_newlines=True)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stdout[-3000:]


def test_a_failed_native_build_installs_the_package_and_loading_says_what_to_install(tmp_path_factory, tmp_path):
    """Without a working compiler the wheel still builds, with one warning line and no library; an installed
    copy imports, and loading the library names what is missing and what to run."""
    path, output = build_wheel(tmp_path_factory, CXX="false")
    warnings = [line for line in output.splitlines() if "WARNING: binary_models:" in line]
    assert len(warnings) == 1 and "installing without the native library" in warnings[0], output[-3000:]
    with zipfile.ZipFile(path) as archive:
        assert not any(name.endswith(".so") for name in archive.namelist())
        archive.extractall(tmp_path / "site")
    check = textwrap.dedent("""
        import binary_models
        from binary_models import native
        try:
            native.load()
        except native.NativeLibraryError as err:
            print(err)
    """)
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    env.pop("BINARY_MODELS_NATIVE_LIB", None)
    result = subprocess.run([sys.executable, "-c", check], cwd=str(tmp_path), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, universal_newlines=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "install make and g++" in result.stdout and "pip install ." in result.stdout, result.stdout


def test_setup_py_answers_an_unsupported_python_in_one_line():
    code = ("import sys; sys.version_info = (3, 10, 13, 'final', 0); sys.argv = ['setup.py', '--version']; "
            "exec(compile(open('setup.py').read(), 'setup.py', 'exec'), "
            "{'__file__': 'setup.py', '__name__': '__main__'})")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True)
    assert (result.returncode, result.stdout) == (
        1, "error: binary_models supports Python 3.11, 3.12, 3.13; this is Python 3.10\n")


def test_make_answers_an_unsupported_python_in_one_line(tmp_path):
    fake = tmp_path / "python3.10"
    fake.write_text("#!/bin/sh\necho 3.10\n")  # what the Makefile asks an interpreter: its version
    fake.chmod(0o755)
    result = subprocess.run(["make", "-s", "-C", ROOT, "PYTHON=%s" % fake, "test"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, universal_newlines=True)
    assert result.returncode == 2 and len(result.stdout.strip().splitlines()) == 1, result.stdout
    assert "python3.10 is Python 3.10; binary_models supports Python 3.11 3.12 3.13" in result.stdout
    assert not os.path.exists(os.path.join(ROOT, ".venv-3.10"))
