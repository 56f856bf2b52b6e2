"""The command lines: one module per ``bm`` command (:mod:`.main` lists them), each also runnable as
``python -m binary_models.commands.MODULE``; :mod:`.cli` holds what they share (flags, the one-line errors)."""
