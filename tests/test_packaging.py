"""`pip wheel .` compiles the native library into the wheel, and an installed wheel (no checkout beside it)
loads that library and computes what the float-emulated layer computes."""
import glob
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ("setup.py", "pyproject.toml", "MANIFEST.in", "README.md", "binary_models", "native")


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
    assert "binary_models/convert.py" in names and not any(name.startswith("native/") for name in names)


def test_installed_wheel_loads_its_own_library_and_matches_the_float_layer(wheel, tmp_path):
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    os.chmod(site / "binary_models" / "libbinary_models_native.so", 0o755)
    check = textwrap.dedent("""
        import numpy as np, mxnet as mx, binary_models as bm
        from binary_models import native
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
