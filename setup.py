"""binary-models: binary neural networks for MXNet Gluon and GluonCV.

A wheel (``pip install .``) carries the native operator library, built here with ``make -C native``
against the headers of the mxnet wheel in the build environment (``pyproject.toml`` asks for it). When that
build fails, the package installs without it (one warning line); only the packed models need it, and
``binary_models.native.load()`` then says what to install. An
editable install (``pip install -e .``, what ``make`` does) builds nothing: the checkout's
``native/build/`` is built by ``make native`` or on the first ``binary_models.native.load()``.
"""
import os
import subprocess
import sys

from setuptools import setup, find_packages
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))
NATIVE_LIBRARY = "libbinary_models_native.so"


class BuildPyWithNative(build_py):
    """``build_py`` that also compiles ``native/`` and puts the library inside the ``binary_models`` package."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        build_dir = os.path.abspath(os.path.join(self.get_finalized_command("build").build_temp, "native"))
        command = ["make", "-s", "-j2", "-C", os.path.join(HERE, "native"), "BUILD=" + build_dir,
                   "PYTHON=" + sys.executable, os.path.join(build_dir, NATIVE_LIBRARY)]
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
    python_requires=">=3.8",
    install_requires=[
        "mxnet==1.9.1",
        "numpy>=1.23,<1.24",
        "gluoncv==0.10.5.post0",
        "opencv-python<4.9",
        "matplotlib<3.9",
        "scikit-learn",
        "tqdm",
    ],
    extras_require={"test": ["pytest"]},
    entry_points={"console_scripts": ["bm = binary_models.commands.main:main"]},
    cmdclass={"build_py": BuildPyWithNative},
    distclass=NativeDistribution,
)
