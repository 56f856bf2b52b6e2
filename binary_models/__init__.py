"""binary-models: binary neural networks (1-bit weights and activations) for MXNet Gluon and GluonCV.

The package is layered (docs/architecture.md): ``nn`` (quantizers, layers, normalization) <- ``models`` (one
family per file) <- ``model_zoo`` (``get_model``); ``data``, ``train`` and ``inference`` (convert, the native
library, predict) build on them; ``storage`` writes and reads files safely; ``commands`` are the ``bm`` command
lines. The names below are the public API.
"""
import importlib
import importlib.abc
import importlib.util
import os
import re
import sys
import warnings

from .errors import UsageError


MAX_THREADS = 4096  # bm-predict's limit (deploy/predict.cc): MXNet hangs on a huge OpenMP pool


def thread_count_problem(value):
    """Why ``value`` of ``OMP_NUM_THREADS`` is no thread count (None when it is one, or empty: unset), in
    bm-predict's words: a whole number from 1 to :data:`MAX_THREADS`. MXNet aborts while it loads on a value
    that is not a number, and hangs on a huge one."""
    if not value or (re.fullmatch("[0-9]+", value) and 1 <= int(value) <= MAX_THREADS):
        return None
    shown = "".join("?" if ord(c) < 0x20 else c for c in value)  # one line
    return "OMP_NUM_THREADS must be a whole number of threads from 1 to %d, got '%s'" % (MAX_THREADS, shown)


def use_all_cores():
    """Give MXNet's OpenMP pool every core unless the user chose (``OMP_NUM_THREADS``; empty is unset): MXNet's
    pip wheel defaults to the number of *physical* cores, 1 on a 2-vCPU machine, which halves its speed there.
    Only effective before ``mxnet`` is first imported; ``import binary_models`` calls it, and refuses an
    ``OMP_NUM_THREADS`` that is no thread count (:func:`thread_count_problem`) with a
    :class:`~binary_models.errors.UsageError`, which a program that does not catch it prints as one ``error:``
    line (exit status 2, as bm-predict)."""
    if "mxnet" in sys.modules:
        return
    problem = thread_count_problem(os.environ.get("OMP_NUM_THREADS"))
    if problem:
        error = UsageError(problem)
        _print_uncaught_as_one_line(error)
        raise error
    if not os.environ.get("OMP_NUM_THREADS"):
        os.environ["OMP_NUM_THREADS"] = str(os.cpu_count() or 1)


def _print_uncaught_as_one_line(error):
    """Make ``error``, if no one catches it, end the program with ``error: ...`` and exit status 2 (a program
    that imports binary_models first, such as the ``bm`` command, has not started its own handling yet); an
    interactive session shows it as usual."""
    previous = sys.excepthook

    def hook(kind, value, traceback):
        if value is not error or hasattr(sys, "ps1") or sys.flags.interactive:
            return previous(kind, value, traceback)
        print("error: %s" % value, file=sys.stderr)
        sys.stderr.flush()
        os._exit(2)
    sys.excepthook = hook


use_all_cores()  # before the first import of mxnet, which fixes its thread count (and aborts on a bad one)
if importlib.util.find_spec("mxnet") is None:
    raise ImportError("binary_models needs mxnet 1.9.1: pip install --no-deps mxnet==1.9.1 (docs/install.md)")
import binary_models_compat  # noqa: E402
binary_models_compat.install()  # MXNet and GluonCV on NumPy 2 and beside torch 2, where no .pth did it


def _import_mxnet():
    """Import mxnet; the aarch64 wheel's missing Arm Performance Libraries become one line saying what to do."""
    try:
        import mxnet  # noqa: F401
    except OSError as err:
        if not any(name in str(err) for name in ("libarmpl", "libamath", "libastring")):
            raise
        error = ImportError("mxnet 1.9.1's aarch64 wheel links Arm Performance Libraries that it does not ship (%s): "
                            "put the stand-ins of docs/native.md#arm64-aarch64 beside libmxnet.so"
                            % str(err).splitlines()[0])
        _print_uncaught_as_one_line(error)
        raise error from None


_import_mxnet()
from .errors import BinaryModelsError, FileProblem, MissingFile, NativeLibraryError, UsageError  # noqa: E402
from .nn.config import LayerConfig, layer_config, get_layer_config, set_layer_config  # noqa: E402
from .nn.layers import QActivation, QConv2D, QDense, Scale  # noqa: E402
from .nn.constraints import WeightClip, apply_constraints  # noqa: E402
from .train.regularization import bipolar_regularization, clip_binary_weights, binary_weights  # noqa: E402
from .model_zoo import get_model, get_model_list, register_model, register_with_gluoncv  # noqa: E402

__version__ = "0.1.0"

register_with_gluoncv()

# Modules imported on first use: ``bm.convert`` is the converter module, which is callable
# (``bm.convert(net)``), ``bm.native`` the native library's loader.
_LAZY = {"convert": "inference.convert", "native": "inference.native"}
# Module paths of version 0.1 (a flat package), still importable with a DeprecationWarning.
MOVED_MODULES = {
    "config": "nn.config", "quantization": "nn.quantization", "layers": "nn.layers",
    "normalization": "nn.normalization", "regularization": "train.regularization", "training": "train.loop",
    "schedules": "train.schedules", "optimizers": "train.optimizers", "losses": "train.losses",
    "distributed": "train.distributed", "launch": "commands.launch", "datasets": "data.datasets",
    "transforms": "data.transforms", "voc": "data.voc", "labels": "data.labels", "convert": "inference.convert",
    "packed_layers": "inference.packed_layers", "native": "inference.native", "predict": "commands.predict",
    "cli": "commands.cli", "run": "commands.run", "demo": "commands.demo", "files": "storage",
}
COMMAND_OF = {"convert": "commands.convert", "voc": "commands.synthetic_voc"}  # python -m of the old paths
RUN_COMMAND = ("import sys\nfrom binary_models.commands.cli import run_script\nfrom %s import main\n"
               "sys.exit(run_script(main))\n")


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(__name__ + "." + _LAZY[name])
    if name in MOVED_MODULES:
        warnings.warn("binary_models.%s is now binary_models.%s" % (name, MOVED_MODULES[name]), DeprecationWarning,
                      stacklevel=2)
        return importlib.import_module(__name__ + "." + MOVED_MODULES[name])
    raise AttributeError("module 'binary_models' has no attribute %r" % name)


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports ``binary_models.OLD`` (a 0.1 module path) as the module that replaced it, the same module
    object, so ``python -m binary_models.convert`` and ``from binary_models.files import ...`` keep working."""

    def find_spec(self, fullname, path=None, target=None):
        prefix, _, old = fullname.partition(".")
        if prefix != __name__ or old not in MOVED_MODULES:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    @staticmethod
    def _target(fullname):
        return __name__ + "." + MOVED_MODULES[fullname.partition(".")[2]]

    def create_module(self, spec):
        target = self._target(spec.name)
        if spec.name != "__main__":
            warnings.warn("%s is now %s" % (spec.name, target), DeprecationWarning, stacklevel=3)
        return importlib.import_module(target)

    def exec_module(self, module):
        pass  # the target module is already executed

    def get_code(self, fullname):  # python -m binary_models.OLD runs the command that replaced it
        old = fullname.partition(".")[2]
        target = __name__ + "." + COMMAND_OF.get(old, MOVED_MODULES[old])
        if not target.startswith(__name__ + ".commands."):
            return importlib.util.find_spec(target).loader.get_code(target)
        return compile(RUN_COMMAND % target, "<%s>" % target, "exec")


if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModuleFinder())
