"""binary-models: binary neural networks for MXNet Gluon and GluonCV.

A wheel (``pip install .``) carries the native operator library, built here with ``make -C native``
against the headers of the mxnet wheel in the build environment (``pyproject.toml`` asks for it). When that
build fails, the package installs without it (one warning line); only the packed models need it, and
``binary_models.native.load()`` then says what to install. An
editable install (``pip install -e .``, what ``make`` does) builds nothing: the checkout's
``native/build/`` is built by ``make native`` or on the first ``binary_models.native.load()``.

Python 3.11, 3.12 and 3.13 are supported (docs/install.md). On 3.12 and newer the stack is NumPy 2, and
mxnet 1.9.1 (whose metadata pins numpy<2) is installed beforehand with ``pip install --no-deps mxnet==1.9.1``;
``binary_models_compat`` (installed with its ``.pth``) lets it run there.
"""
import os
import subprocess
import sys
import sysconfig

SUPPORTED_PYTHONS = ((3, 11), (3, 12), (3, 13))  # also python_requires below, and the Makefile
if sys.version_info[:2] not in SUPPORTED_PYTHONS:  # before setuptools, which such a Python may lack
    sys.exit("error: binary_models supports Python %s; this is Python %d.%d"
             % (", ".join("%d.%d" % version for version in SUPPORTED_PYTHONS), *sys.version_info[:2]))

from setuptools import setup, find_packages  # noqa: E402
from setuptools.command.build_py import build_py  # noqa: E402
from setuptools.dist import Distribution  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
NATIVE_LIBRARY = "libbinary_models_native.so"
COMPAT_PTH = "binary_models_compat.pth"  # goes to site-packages itself, beside binary_models_compat.py
OLD = "python_version < '3.12'"  # NumPy 1.23, which MXNet 1.9.1's pins allow
NEW = "python_version >= '3.12'"  # NumPy 2, with binary_models_compat; mxnet installed with --no-deps


def mxnet_directory():
    """The mxnet package the native library compiles against: the build environment's (Python 3.11, where
    ``pyproject.toml`` puts it there), else the one installed in the target environment (3.12+)."""
    import importlib.util
    spec = importlib.util.find_spec("mxnet")
    if spec is not None:
        return os.path.dirname(spec.origin)
    for key in ("platlib", "purelib"):
        candidate = os.path.join(sysconfig.get_path(key), "mxnet")
        if os.path.isfile(os.path.join(candidate, "__init__.py")):
            return candidate
    return None


class BuildPyWithNative(build_py):
    """``build_py`` that also compiles ``native/`` and puts the library inside the ``binary_models`` package."""

    def run(self):
        super().run()
        editable = getattr(self, "editable_mode", False)
        # An editable wheel installs only what lands in install_lib (its root); a wheel, all of build_lib.
        root = self.get_finalized_command("install").install_lib if editable else self.build_lib
        self.copy_file(os.path.join(HERE, COMPAT_PTH), os.path.join(root, COMPAT_PTH))
        if editable:
            return
        build_dir = os.path.abspath(os.path.join(self.get_finalized_command("build").build_temp, "native"))
        mxnet = mxnet_directory()
        command = ["make", "-s", "-j2", "-C", os.path.join(HERE, "native"), "BUILD=" + build_dir,
                   "PYTHON=" + sys.executable, os.path.join(build_dir, NATIVE_LIBRARY)]
        command += ["MXNET_DIR=" + mxnet] if mxnet else []
        try:
            subprocess.run(command, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True)
        except (OSError, subprocess.CalledProcessError) as err:
            output = getattr(err, "output", None) or str(err)
            first_error = next((line for line in output.splitlines() if "error" in line.lower()), output.strip())
            print("WARNING: binary_models: installing without the native library (packed models will not load): "
                  "its build needs make, g++ (C++17, OpenMP) and mxnet==1.9.1; it failed with: %s"
                  % first_error.strip()[:300], file=sys.stderr)
            return
        self.copy_file(os.path.join(build_dir, NATIVE_LIBRARY), os.path.join(self.build_lib, "binary_models"))


class NativeDistribution(Distribution):
    """The wheel holds a compiled library, so it is tagged for this platform, not ``py3-none-any``."""

    def has_ext_modules(self):
        return True


setup(
    name="binary_models",
    version="0.1.0",
    description="Binary neural networks (MeliusNet, BinaryDenseNet, Bi-Real/ResNet-E, Tang et al.) for "
                "MXNet Gluon and GluonCV, with a packed xnor-gemm inference operator",
    packages=find_packages(include=["binary_models", "binary_models.*"]),
    py_modules=["binary_models_compat"],
    python_requires=">=3.11,<3.14",
    install_requires=[
        "mxnet==1.9.1; " + OLD,
        "numpy>=1.23,<1.24; " + OLD,
        "numpy>=2,<3; " + NEW,
        "requests>=2.20,<3; " + NEW,  # mxnet's own dependencies, as --no-deps leaves them out
        "graphviz>=0.8.1,<0.9; " + NEW,
        "gluoncv==0.10.5.post0",
        "opencv-python<4.9; " + OLD,
        "opencv-python>=4.10; " + NEW,  # the first built against NumPy 2
        "matplotlib<3.9; " + OLD,
        "matplotlib>=3.9; " + NEW,
        "scikit-learn",
        "tqdm",
    ],
    extras_require={"test": ["pytest"]},
    entry_points={"console_scripts": ["bm = binary_models.commands.main:main"]},
    cmdclass={"build_py": BuildPyWithNative},
    distclass=NativeDistribution,
)
