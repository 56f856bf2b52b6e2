"""Model families, one per file; importing this package registers every factory."""
from . import meliusnet, densenet, resnet_e, tang, quicknet, real_to_binary, alexnet, reactnet, ssd  # noqa: F401
from .meliusnet import MeliusNet, ImprovementBlock
from .densenet import BinaryDenseNet
from .resnet_e import ResNetE
from .tang import TangNIN, BinaryAlexNet
from .quicknet import QuickNet
from .real_to_binary import RealToBinaryNet
from .alexnet import LayerListNet
from .reactnet import ReActNet

# name -> (paper OPs, size MB, source) of the families that keep them beside their spec tables (stats.paper_numbers)
PAPER_NUMBERS = {**quicknet.PAPER_NUMBERS, **resnet_e.PAPER_NUMBERS, **real_to_binary.PAPER_NUMBERS,
                 **alexnet.PAPER_NUMBERS, **reactnet.PAPER_NUMBERS}
