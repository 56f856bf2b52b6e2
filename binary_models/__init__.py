"""binary-models: binary neural networks (1-bit weights and activations) for MXNet Gluon and GluonCV."""
import os
import sys


def use_all_cores():
    """Give MXNet's OpenMP pool every core unless the user chose (``OMP_NUM_THREADS``): MXNet's pip wheel
    defaults to the number of *physical* cores, 1 on a 2-vCPU machine, which halves its speed there. Only
    effective before ``mxnet`` is first imported; ``import binary_models`` calls it."""
    if "mxnet" not in sys.modules:
        os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))


use_all_cores()  # before the first import of mxnet, which fixes its thread count
from .config import LayerConfig, layer_config, get_layer_config, set_layer_config
from .layers import QActivation, QConv2D, QDense, Scale
from .regularization import bipolar_regularization, clip_binary_weights, binary_weights
from .model_zoo import get_model, get_model_list, register_model, register_with_gluoncv

__version__ = "0.1.0"

register_with_gluoncv()


def __getattr__(name):
    """``binary_models.convert``, imported on first use (the module is callable: ``binary_models.convert(net)``
    is :func:`binary_models.convert.convert`), so that ``python -m binary_models.convert`` runs cleanly."""
    if name == "convert":
        import importlib
        return importlib.import_module(__name__ + ".convert")
    raise AttributeError("module 'binary_models' has no attribute %r" % name)
