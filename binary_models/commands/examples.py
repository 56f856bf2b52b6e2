"""``bm examples FOLDER``: write the example inputs the docs use, so that every command shown there can be
re-run from a fresh install:

- ``digit1794.png`` ... ``digit1796.png``: three of scikit-learn's 8x8 handwritten digits (an 8, a 9 and an 8;
  validation images of the embedded digits data set), upscaled to 32x32 grayscale PNGs;
- ``count_models.py``: a script in the style of GluonCV's, which calls ``gluoncv.model_zoo.get_model`` with the
  name it is given (``bm run count_models.py meliusnet22`` finds this package's models, plain ``python`` not).
"""
import os
import sys

from . import cli

DIGITS = (1794, 1795, 1796)  # indices into scikit-learn's load_digits(): an 8, a 9 and an 8
SIDE = 32
COUNT_MODELS = '''"""A script in the style of GluonCV's: it knows models only through gluoncv.model_zoo."""
import sys

from gluoncv import model_zoo

net = model_zoo.get_model(sys.argv[1], classes=10)
print("%s -> %s from %s" % (sys.argv[1], type(net).__name__, type(net).__module__))
'''


def write_examples(folder):
    """Write the digit PNGs and ``count_models.py`` into ``folder``; returns their paths."""
    import cv2
    import numpy as np
    from sklearn.datasets import load_digits
    from ..storage import atomic_path, make_folder
    make_folder(folder, "folder")
    images = load_digits().images
    paths = []
    for index in DIGITS:
        pixels = cv2.resize((images[index] * (255.0 / 16.0)).astype(np.uint8), (SIDE, SIDE),
                            interpolation=cv2.INTER_LINEAR)
        path = os.path.join(folder, "digit%d.png" % index)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                f.write(cv2.imencode(".png", pixels)[1].tobytes())
        paths.append(path)
    script = os.path.join(folder, "count_models.py")
    with atomic_path(script) as tmp:
        with open(tmp, "w") as f:
            f.write(COUNT_MODELS)
    return paths + [script]


def main(argv=None):
    parser = cli.ArgumentParser(prog="bm examples", description=__doc__.split("\n")[0])
    parser.add_argument("folder", nargs="?", default="examples", help="where to write them (default: examples)")
    args = parser.parse_args(argv)
    for path in write_examples(args.folder):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_script(main))
