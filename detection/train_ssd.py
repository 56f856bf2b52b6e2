"""Train an SSD detector with a binary backbone: GluonCV's ``train_ssd.py`` flags. The same as
``bm train-ssd``; ``--help`` lists the flags, docs/detection.md the paper's experiment."""
import sys

from binary_models.commands.cli import run_script
from binary_models.commands.train_ssd import main

if __name__ == "__main__":
    sys.exit(run_script(main))
