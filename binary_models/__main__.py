"""``python -m binary_models COMMAND ...``: the ``bm`` command (:mod:`binary_models.commands.main`)."""
import sys

from binary_models.commands.main import main

sys.exit(main())
