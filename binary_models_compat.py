"""MXNet 1.9.1 and GluonCV 0.10.5 on NumPy 2, Python 3.12+ and beside PyTorch 2 (docs/install.md).

Both are retired, and use names that later NumPy and Python removed; GluonCV's import also raises on every
torch 2.x. When a program first imports ``mxnet`` or ``gluoncv``, this module gives back to those two
packages, and to no other code, exactly what they miss:

- NumPy names (``RESTORED_NUMPY_NAMES``), each only where this NumPy lacks it, served by numpy's module
  ``__getattr__`` to callers inside mxnet and gluoncv only; other code still gets NumPy's AttributeError.
- ``distutils.version`` (``LooseVersion``, ``StrictVersion``) where Python has no ``distutils`` (3.12+
  without setuptools): the last entry of ``sys.meta_path``, answering imports made by mxnet and gluoncv.
- ``gluoncv.check._require_pytorch_version``: a torch outside GluonCV's range (every 2.x) counts as "no torch
  for GluonCV" (ImportError, which ``import gluoncv`` catches) instead of raising RuntimeError.
- ``mxnet.recordio.pack`` and ``pack_img``: ``ndarray.tostring`` (gone from NumPy 2.3) read as ``tobytes``.

``binary_models_compat.pth``, installed with the package, calls ``install()`` at interpreter start-up: that
only puts an import hook first on ``sys.meta_path``; nothing is imported until mxnet or gluoncv is.
``import binary_models`` calls ``install()`` too (a checkout on PYTHONPATH has no .pth).
``BINARY_MODELS_COMPAT=0`` in the environment turns all of it off.
"""
import os
import sys

SWITCH = "BINARY_MODELS_COMPAT"
PATCHED = ("mxnet", "gluoncv")
# What mxnet 1.9.1 and gluoncv 0.10.5 read from numpy that NumPy 2.x (or 1.24 to 1.26) lacks; _numpy_names
# gives each its NumPy 1.23 meaning and says where it is used.
RESTORED_NUMPY_NAMES = ("PZERO", "NZERO", "PINF", "NINF", "NAN", "NaN", "Inf", "bool", "float", "int", "alltrue",
                        "sometrue", "product", "round_", "in1d", "msort", "trapz", "mirr", "npv", "pmt", "ppmt",
                        "pv", "rate", "compat")


def enabled():
    """Whether the compatibility layer may act (``BINARY_MODELS_COMPAT`` unset or not ``0``)."""
    return os.environ.get(SWITCH, "1").strip() != "0"


def install():
    """Puts the import hook first on ``sys.meta_path`` (once); returns whether it is active. What was imported
    before is patched at once."""
    if not enabled():
        return False
    if any(name in sys.modules for name in PATCHED):
        _prepare()
    for name in set(_PATCHES) & set(sys.modules) - _patched:
        _patch(sys.modules[name])
    pending = set(_PATCHES) - _patched
    if pending and not any(type(finder).__name__ == "_ImportHook" for finder in sys.meta_path):
        sys.meta_path.insert(0, _ImportHook(pending))
    return True


def _importing_package(depth):
    """The top-level package of the code that made the call ``depth`` frames up, past importlib's own frames."""
    frame = sys._getframe(depth + 1)
    while frame is not None and frame.f_globals.get("__name__", "").startswith(("importlib", "_frozen_importlib")):
        frame = frame.f_back
    return frame.f_globals.get("__name__", "").partition(".")[0] if frame is not None else ""


class _ImportHook:
    """Before mxnet or gluoncv is first imported: restore the names they need; when a module of
    ``_PATCHES`` loads: patch it. Acts on nothing else, and leaves ``sys.meta_path`` when done."""

    def __init__(self, pending):
        self.pending = pending

    def find_spec(self, fullname, path=None, target=None):
        if fullname in PATCHED:
            _prepare()
        elif fullname in self.pending:
            self.pending.discard(fullname)
            if not self.pending:
                sys.meta_path[:] = [finder for finder in sys.meta_path if finder is not self]
            return _patched_after_loading(self, fullname, path, target)
        return None


_prepared = False


def _prepare():
    global _prepared
    if _prepared:
        return
    _prepared = True
    try:
        import numpy
    except ImportError:
        return
    missing = {name: value for name, value in _numpy_names(numpy).items() if _lacks(numpy, name)}
    if missing:
        _serve_to_patched_packages(numpy, missing)
    sys.meta_path.append(_DistutilsFallback())


def _lacks(numpy, name):
    """Whether ``numpy.name`` raises AttributeError (NumPy 1.23 still serves ``np.bool`` and ``np.float``
    through its ``__getattr__``, with a DeprecationWarning: those it has)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            getattr(numpy, name)
        except AttributeError:
            return True
    return False


def _numpy_names(numpy):
    """The values of ``RESTORED_NUMPY_NAMES``: what the names meant in NumPy 1.23."""
    import builtins
    import types

    def removed_in_1_20(name):
        def function(*args, **kwargs):
            raise RuntimeError("numpy.%s was removed in NumPy 1.20 (NEP 32); numpy_financial has it" % name)
        function.__name__ = name
        return function

    def alias(name, function):  # a function of its own: mxnet keys its __array_function__ table by function
        def restored(*args, **kwargs):
            return function(*args, **kwargs)
        restored.__name__ = name
        return restored

    def in1d(ar1, ar2, assume_unique=False, invert=False, **kwargs):
        return numpy.isin(numpy.ravel(ar1), ar2, assume_unique=assume_unique, invert=invert, **kwargs)

    names = {
        # mxnet/numpy/utils.py, mxnet/numpy/fallback.py and numpy_dispatch_protocol.py, at import
        "PZERO": 0.0, "NZERO": -0.0, "PINF": float("inf"), "NINF": float("-inf"), "NAN": float("nan"),
        "NaN": float("nan"), "bool": builtins.bool, "alltrue": alias("alltrue", numpy.all),
        "sometrue": alias("sometrue", numpy.any), "product": alias("product", numpy.prod),
        "round_": alias("round_", numpy.round), "in1d": in1d, "msort": lambda a: numpy.sort(a, axis=0),
        "trapz": alias("trapz", numpy.trapezoid) if hasattr(numpy, "trapezoid") else None,
        # at run time: mxnet's estimator event handlers, np.pad (compat.basestring); gluoncv's rcnn anchors,
        # hrnet, kitti and auto estimators
        "Inf": float("inf"), "float": builtins.float, "int": builtins.int,
        "compat": types.SimpleNamespace(basestring=str),
    }
    # mxnet/numpy/fallback.py, at import; removed in NumPy 1.20 already, where calling them raised
    names.update((name, removed_in_1_20(name)) for name in ("mirr", "npv", "pmt", "ppmt", "pv", "rate"))
    return {name: value for name, value in names.items() if value is not None}


def _serve_to_patched_packages(numpy, names):
    """Wraps numpy's module ``__getattr__`` (what Python calls for a name the module lacks) so that it answers
    ``names`` to mxnet and gluoncv and defers to NumPy's own for everyone else."""
    numpy_getattr = numpy.__dict__.get("__getattr__")

    def __getattr__(name):
        if name in names and _importing_package(1) in PATCHED:
            return names[name]
        if numpy_getattr is None:
            raise AttributeError("module 'numpy' has no attribute %r" % name)
        return numpy_getattr(name)

    __getattr__.restored = names
    numpy.__getattr__ = __getattr__


class _DistutilsFallback:
    """Last on ``sys.meta_path``, so reached only where nothing else provides ``distutils``: a
    ``distutils.version`` holding ``LooseVersion`` and ``StrictVersion``, for imports made by mxnet and gluoncv."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in ("distutils", "distutils.version") or _importing_package(1) not in PATCHED:
            return None
        import importlib.util
        return importlib.util.spec_from_loader(fullname, self, is_package=fullname == "distutils")

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        if module.__name__ == "distutils.version":
            module.LooseVersion = module.StrictVersion = Version


class Version:
    """A release number compared by its leading dotted integers (``"2.13.0+cpu"`` -> (2, 13, 0)): all that
    mxnet and gluoncv ask of distutils' ``LooseVersion`` and ``StrictVersion``."""

    def __init__(self, text):
        import re
        self.text = str(text)
        self.version = tuple(int(part) for part in re.match(r"\d*(?:\.\d+)*", self.text).group().split(".")
                             if part)

    @staticmethod
    def _of(other):
        return other.version if isinstance(other, Version) else Version(other).version

    def __eq__(self, other):
        return self.version == self._of(other)

    def __lt__(self, other):
        return self.version < self._of(other)

    def __le__(self, other):
        return self.version <= self._of(other)

    def __gt__(self, other):
        return self.version > self._of(other)

    def __ge__(self, other):
        return self.version >= self._of(other)

    def __hash__(self):
        return hash(self.version)

    def __repr__(self):
        return "Version(%r)" % self.text


def _patched_after_loading(hook, fullname, path, target):
    """The spec the other finders give ``fullname``, its loader running ``_PATCHES[fullname]`` on the module
    once the module's own code has run."""
    spec = None
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None) if finder is not hook else None
        spec = find_spec(fullname, path, target) if find_spec else None
        if spec is not None:
            break
    if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
        return spec
    exec_module = spec.loader.exec_module

    def exec_and_patch(module):
        exec_module(module)
        _patch(module)

    spec.loader.exec_module = exec_and_patch
    return spec


def _defuse_torch_check(check):
    """``gluoncv.check._require_pytorch_version``: its RuntimeError for a torch out of range (every 2.x)
    becomes an ImportError, which ``import gluoncv`` takes as "no torch for GluonCV"."""
    require = check._require_pytorch_version

    def _require_pytorch_version(*args, **kwargs):
        try:
            return require(*args, **kwargs)
        except RuntimeError as error:  # its only RuntimeError: "Legacy torch==2.x detected ... <2.0.0 required"
            raise ImportError("GluonCV's PyTorch support skipped: %s" % error) from error
    _require_pytorch_version.__wrapped__ = require
    check._require_pytorch_version = _require_pytorch_version


def _tobytes_for_tostring(recordio):
    """``mxnet.recordio.pack`` and ``pack_img`` call ``ndarray.tostring``, which NumPy 2.3 removed; its
    replacement ``tobytes`` is the same method. Their code is kept, with that one name changed."""
    import numpy
    if hasattr(numpy.ndarray, "tostring"):
        return
    for function in (recordio.pack, recordio.pack_img):
        code = function.__code__
        function.__code__ = code.replace(co_names=tuple("tobytes" if name == "tostring" else name
                                                        for name in code.co_names))


_PATCHES = {"gluoncv.check": _defuse_torch_check, "mxnet.recordio": _tobytes_for_tostring}
_patched = set()


def _patch(module):
    if module.__name__ not in _patched:
        _patched.add(module.__name__)
        _PATCHES[module.__name__](module)
