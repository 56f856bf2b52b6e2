"""Finds, builds and loads the native library of binary operators (``native/``) into MXNet.

After :func:`load`, ``mx.nd`` and ``mx.sym`` have ``binary_conv2d``, ``binary_dense`` and
``binary_pack_weights`` (documented in ``docs/native.md``). In a source checkout (an editable install) the
library is built with ``make -C native`` when it is missing or older than its sources; an installed wheel
carries it inside the package, built by ``pip install``. The environment variable
``BINARY_MODELS_NATIVE_LIB`` names a prebuilt library instead (then nothing is built).

The kernels pick their instruction set when the library loads: on x86-64 AVX-512 (with VPOPCNTDQ) where the
CPU and the OS support it, else AVX2; on aarch64 NEON with the dot product (ARMv8.2), else NEON; else
portable code; :func:`isa` says which. ``BINARY_MODELS_ISA=scalar|avx2|avx512|neon|neon-dot`` forces another;
one this machine lacks is reported on stderr and the best runs instead.

Importing :mod:`binary_models` never needs the library; only converted models do.
"""
import ctypes
import fcntl
import os
import shutil
import subprocess
import sys
import threading

import mxnet as mx

from ..errors import NativeLibraryError, error_line

LIBRARY_NAME = "libbinary_models_native.so"
OPERATORS = ("binary_conv2d", "binary_dense", "binary_pack_weights", "binary_dense_stage", "norm_pool", "rprelu",
             "ste_sign")
LIBRARY_ENV = "BINARY_MODELS_NATIVE_LIB"
ISA_ENV = "BINARY_MODELS_ISA"
# The kernels' instruction sets (x86-64, then aarch64), slowest first; "avx512-emulated" is the AVX-512
# kernels' source compiled for any x86-64 (a test of their logic where AVX-512 is missing), not a fast path.
ISAS = ("scalar", "avx2", "avx512", "avx512-emulated", "neon", "neon-dot")
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the wheel puts the library here
NATIVE_DIR = os.path.join(os.path.dirname(PACKAGE_DIR), "native")

_lock = threading.Lock()
_functions = None  # the library's C functions (ctypes), once loaded


def in_checkout():
    """True when the package runs from a source checkout that has the native sources beside it."""
    return os.path.isfile(os.path.join(NATIVE_DIR, "mxnet_ops.cc"))


def library_path():
    """The library :func:`load` uses: ``$BINARY_MODELS_NATIVE_LIB``, else ``native/build/`` of the checkout,
    else the one an installed wheel carries in the package."""
    if os.environ.get(LIBRARY_ENV):
        return os.path.abspath(os.environ[LIBRARY_ENV])
    if in_checkout():
        return os.path.join(NATIVE_DIR, "build", LIBRARY_NAME)
    return os.path.join(PACKAGE_DIR, LIBRARY_NAME)


def is_loaded():
    """True once the operators are registered in MXNet (by :func:`load` or ``mx.library.load``)."""
    return all(hasattr(mx.nd, op) for op in OPERATORS)


def build():
    """Run ``make -C native`` (a no-op when the library is up to date); raise :class:`NativeLibraryError`
    naming the missing tool or the compiler's error."""
    if not os.path.isfile(os.path.join(NATIVE_DIR, "Makefile")):
        raise NativeLibraryError("no native sources at %s to build %s from; set %s to a built library"
                                 % (NATIVE_DIR, LIBRARY_NAME, LIBRARY_ENV))
    compiler = os.environ.get("CXX", "g++")
    for tool, hint in (("make", "install make"), (compiler, "install g++ (C++17 with OpenMP) or set CXX")):
        if shutil.which(tool) is None:
            raise NativeLibraryError("cannot build the native library: %r is not on PATH (%s), or set %s to a "
                                     "prebuilt %s" % (tool, hint, LIBRARY_ENV, LIBRARY_NAME))
    os.makedirs(os.path.join(NATIVE_DIR, "build"), exist_ok=True)
    with open(os.path.join(NATIVE_DIR, "build", ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent test processes build once
        result = subprocess.run(["make", "-s", "-C", NATIVE_DIR, "PYTHON=" + sys.executable],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    if result.returncode != 0:
        raise NativeLibraryError("building the native library failed (make -C %s):\n%s"
                                 % (NATIVE_DIR, result.stdout[-3000:]))


def load():
    """Build the library if needed and load it into MXNet once; returns its path. The first load makes the
    calling thread's own OpenMP regions single-threaded (:func:`set_caller_threads`)."""
    with _lock:
        path = library_path()
        if is_loaded():
            return path
        _load_into_mxnet(path)
    set_caller_threads(1)
    return path


def _load_into_mxnet(path):
    """Build (in a checkout) and load the library at ``path`` into MXNet; :func:`load` holds the lock."""
    if not os.environ.get(LIBRARY_ENV) and in_checkout():
        build()
    if not os.path.isfile(path):
        if os.environ.get(LIBRARY_ENV):
            why = "%s is set" % LIBRARY_ENV
        else:
            why = "this installation has no native sources and its wheel carries no library (its build failed " \
                  "at install time): install make and g++ (C++17, OpenMP) and reinstall from the source " \
                  "(pip install .), or set %s" % LIBRARY_ENV
        raise NativeLibraryError("native library %s does not exist (%s)" % (path, why))
    try:
        mx.library.load(path, verbose=False)
    except mx.MXNetError as err:  # its last line is the dynamic loader's reason; the others its traceback
        raise NativeLibraryError("MXNet could not load %s: %s"
                                 % (path, error_line(str(err).strip().splitlines()[-1]))) from err


def _c_functions():
    """The library's plain C functions through ctypes: the same copy MXNet loaded (one path, one handle)."""
    global _functions
    if _functions is None:
        library = ctypes.CDLL(load())
        for name in ("binary_models_isa", "binary_models_best_isa", "binary_models_conv_problem"):
            getattr(library, name).restype = ctypes.c_char_p
        library.binary_models_conv_problem.argtypes = [ctypes.c_int] * 11
        library.binary_models_caller_threads.argtypes = [ctypes.c_int]
        for name in ("binary_models_isa_supported", "binary_models_set_isa"):
            getattr(library, name).argtypes = [ctypes.c_char_p]
        _functions = library
    return _functions


def isa():
    """The instruction set the kernels run: ``'avx512'``, ``'avx2'``, ``'neon-dot'``, ``'neon'`` or ``'scalar'``
    (the best this CPU and OS support, unless ``BINARY_MODELS_ISA`` or :func:`set_isa` chose another). Loads
    the library."""
    return _c_functions().binary_models_isa().decode()


def best_isa():
    """The best instruction set this CPU and OS support."""
    return _c_functions().binary_models_best_isa().decode()


def _check_isa_name(name):
    if name not in ISAS + ("auto",):
        raise ValueError("unknown instruction set %r (known: %s)" % (name, ", ".join(ISAS + ("auto",))))


def isa_supported(name):
    """True when this CPU and OS can run the kernels of instruction set ``name`` (one of :data:`ISAS`)."""
    _check_isa_name(name)
    return _c_functions().binary_models_isa_supported(name.encode()) == 1


def set_isa(name):
    """Make the kernels run instruction set ``name`` (``'auto'``: the best) from now on, in this process;
    returns the one that ran before. Raises ``ValueError`` for an unknown name or one this machine lacks."""
    _check_isa_name(name)
    before = isa()
    if _c_functions().binary_models_set_isa(name.encode()) != 1:
        raise ValueError("instruction set %r is not supported by this CPU or OS (best here: %s)" % (name, best_isa()))
    return before


def conv_problem(in_channels, out_channels, kernel, stride=(1, 1), pad=(0, 0), dilate=(1, 1), groups=1):
    """``''`` when ``binary_conv2d`` runs a convolution of this geometry (pairs: (height, width)), else the
    problem as the operator would report it (``stride 5 is not supported (allowed: 1..4)``). Loads the
    library. A dense layer is the 1x1 convolution ``conv_problem(in_units, units, (1, 1))``."""
    values = [in_channels, out_channels, *kernel, *stride, *pad, *dilate, groups]
    if any(not -2 ** 31 <= int(v) < 2 ** 31 for v in values):
        return "a size beyond 2^31 is not supported"
    return _c_functions().binary_models_conv_problem(*map(int, values)).decode()


def set_caller_threads(threads):
    """Make the calling thread's own OpenMP regions (MXNet's copies that run in it, not its operators, which
    run on MXNet's engine threads) use ``threads`` threads from now on; returns the previous number. With 1,
    the thread's idle OpenMP team ends too.

    :func:`load` and :func:`~binary_models.convert` call it with 1: a thread that once ran such a region on
    several threads (``mx.nd.array`` of a batch of images, ``copy.deepcopy`` of a model) keeps a team for
    good, and with more OpenMP threads than CPUs libgomp stops spinning at barriers, in every team, so each
    barrier in a dense stage waits for a wake-up: a converted meliusnet22 at 2 threads, batch 1, took 7.1
    instead of 4.3 ms (docs/native.md)."""
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads < 2 ** 31:
        raise ValueError("threads must be an integer from 1 to 2^31 - 1, got %r" % (threads,))
    return _c_functions().binary_models_caller_threads(threads)
