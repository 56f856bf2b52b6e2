"""binary-models: binary neural networks (1-bit weights and activations) for MXNet Gluon and GluonCV."""
from .training import use_all_cores

use_all_cores()  # before the first import of mxnet, which fixes its thread count
from .config import LayerConfig, layer_config, get_layer_config, set_layer_config
from .layers import QActivation, QConv2D, QDense, Scale
from .regularization import bipolar_regularization, clip_binary_weights, binary_weights
from .model_zoo import get_model, get_model_list, register_model, register_with_gluoncv

__version__ = "0.1.0"

register_with_gluoncv()
