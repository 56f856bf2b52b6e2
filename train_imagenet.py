"""Train a (binary) model for image classification: GluonCV's ``train_imagenet.py`` flags, for binary_models'
and GluonCV's models. The same as ``bm train``; ``--help`` lists the flags, docs/training.md the recipes."""
import sys

from binary_models.commands.cli import run_script
from binary_models.commands.train_imagenet import main

if __name__ == "__main__":
    sys.exit(run_script(main))
