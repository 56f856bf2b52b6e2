"""Detect objects with a trained SSD; writes PNGs, prints JSON. The same as ``bm detect``."""
import sys

from binary_models.commands.cli import run_script
from binary_models.commands.detect import main

if __name__ == "__main__":
    sys.exit(run_script(main))
