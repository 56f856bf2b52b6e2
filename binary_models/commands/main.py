"""``bm``: the package's one command, with a sub-command per job (``python -m binary_models`` is the same)::

    bm demo                        # train, pack and check meliusnet22 on the embedded digits
    bm train --model meliusnet22 --dataset digits --num-epochs 3
    bm convert --params runs/imagenet-meliusnet22-best.params --output packed/meliusnet22
    bm predict --packed packed/meliusnet22 digit.png

``bm COMMAND --help`` lists a command's flags. Each runs the ``main`` of its module in
:mod:`binary_models.commands`, which ``python -m binary_models.commands.MODULE`` runs too.
"""
import importlib
import sys

# command -> (module of binary_models.commands, one line of help)
COMMANDS = {
    "demo": ("demo", "the main job end to end on the embedded digits (train, pack, check, plot)"),
    "train": ("train_imagenet", "train a classification model (GluonCV's train_imagenet.py flags)"),
    "convert": ("convert", "pack a trained model's binary layers to 1 bit per weight for fast CPU inference"),
    "predict": ("predict", "classify images with a trained or packed model"),
    "stats": ("stats", "BOPs, FLOPs, OPs and size of a model, or of every model (--all)"),
    "train-ssd": ("train_ssd", "train an SSD detector with a binary backbone (GluonCV's train_ssd.py flags)"),
    "detect": ("detect", "detect objects with a trained SSD"),
    "synthetic-voc": ("synthetic_voc", "write a small synthetic VOC-format detection data set"),
    "examples": ("examples", "write the example files the docs use (digit images, a script for bm run)"),
    "launch": ("launch", "start a distributed training job (MXNet's kvstore) here or over ssh"),
    "run": ("run", "run any script (e.g. GluonCV's) with this package's models in GluonCV's model zoo"),
}


def usage():
    width = max(map(len, COMMANDS))
    lines = ["usage: bm COMMAND [ARGS...]   (bm COMMAND --help: its flags)", "", "commands:"]
    lines += ["  %-*s  %s" % (width, name, text) for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv=None):
    """Dispatch ``bm COMMAND ARGS...``; returns the command's exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, args = argv[0], argv[1:]
    if name not in COMMANDS:
        import difflib
        close = difflib.get_close_matches(name, COMMANDS, n=3)
        print("error: unknown command %r%s (see bm --help)" % (name, "; did you mean %s?" % " or ".join(close)
                                                                   if close else ""), file=sys.stderr)
        return 2
    module = importlib.import_module("binary_models.commands." + COMMANDS[name][0])
    from .cli import run_script
    sys.argv = ["bm " + name] + args  # what argparse shows as the program, and what a run lock records
    status = run_script(module.main, args)
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
