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


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """A wheel built by pip from a copy of the sources (so the checkout's build/ stays untouched)."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in SOURCES:
        path = os.path.join(ROOT, name)
        if os.path.isdir(path):
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("build", "__pycache__", "*.egg-info"))
        else:
            shutil.copy(path, source / name)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(source)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert result.returncode == 0, result.stdout[-3000:]
    (path,) = glob.glob(str(out / "*.whl"))
    return path


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
