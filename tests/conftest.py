import os
import sys

import binary_models  # noqa: F401  (first: it gives MXNet every core before mxnet is imported)
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture
def rng():
    return np.random.RandomState(0)


def _every_isa():
    from binary_models.inference import native
    return native.ISAS


@pytest.fixture(params=_every_isa())
def kernels_isa(request):
    """Runs the kernels on each instruction set (or the one of an indirect parametrization) for one test;
    skips where this CPU or OS lacks it."""
    from binary_models.inference import native
    if not native.isa_supported(request.param):
        pytest.skip("%s is not supported by this CPU or OS (best here: %s)" % (request.param, native.best_isa()))
    before = native.set_isa(request.param)
    yield request.param
    native.set_isa(before)
