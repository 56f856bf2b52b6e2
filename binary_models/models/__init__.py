"""Model families, one per file; importing this package registers every factory."""
from . import meliusnet, densenet, resnet_e, tang, quicknet, real_to_binary, alexnet, ssd  # noqa: F401
from .meliusnet import MeliusNet, ImprovementBlock
from .densenet import BinaryDenseNet
from .resnet_e import ResNetE
from .tang import TangNIN, BinaryAlexNet
