import os
import sys

import binary_models  # noqa: F401  (first: it gives MXNet every core before mxnet is imported)
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture
def rng():
    return np.random.RandomState(0)
