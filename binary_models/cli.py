"""What every command line of the package shares: bad input becomes one ``error: ...`` line on stderr and
exit status 2, never a traceback.

:class:`ArgumentParser` is argparse's parser with that rule for its own errors (an unknown flag, a value of
the wrong type), and the argument types below check numbers up front, naming the flag and what is allowed
(``error: argument --batch-size: must be an integer >= 1, got -4``)."""
import argparse
import math
import re
import sys


class UsageError(Exception):
    """Bad input from the command line (missing data, unknown model, mismatched resume file): the
    scripts print the message and exit with status 2 instead of a traceback."""


def fail(message):
    """Print ``error: message`` on stderr and exit with status 2."""
    print("error: %s" % message, file=sys.stderr)
    sys.exit(2)


def error_line(err):
    """The meaningful line of an exception's message: MXNet's start with a traceback header and file lines,
    and a ``Check failed: ...:`` prefix."""
    lines = [line.strip() for line in str(err).splitlines()
             if line.strip() and not line.startswith(("Traceback", "  File", "Stack trace"))]
    line = lines[0] if lines else type(err).__name__
    return re.sub(r"^(MXNetError: )?(Check failed: [^:]+: )?", "", line)


def run_script(main, argv=None):
    """Run ``main(argv)``; a :class:`UsageError` prints ``error: ...`` and exits with status 2."""
    try:
        return main(argv)
    except UsageError as err:
        fail(err)


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser whose errors are one ``error: ...`` line (not the whole usage) and exit status 2."""

    def error(self, message):
        fail("%s (see %s --help)" % (message, self.prog))


def number(kind=int, minimum=None, maximum=None, above=None):
    """An argparse type: ``kind`` (int or float, finite) with ``minimum <= value <= maximum`` and
    ``value > above`` where given; otherwise argparse reports the flag and this rule."""
    bounds = [b for b in ("> %g" % above if above is not None else None,
                          ">= %g" % minimum if minimum is not None else None,
                          "<= %g" % maximum if maximum is not None else None) if b]
    rule = "%s%s" % ("an integer" if kind is int else "a number", (" " + " and ".join(bounds)) if bounds else "")

    def convert(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError("must be %s, got %r" % (rule, text))
        if (kind is float and not math.isfinite(value)) or (above is not None and not value > above) \
                or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError("must be %s, got %s" % (rule, text))
        return value

    convert.__name__ = rule  # argparse names the type in some messages
    return convert


positive_int = number(int, minimum=1)
non_negative_int = number(int, minimum=0)
positive_float = number(float, above=0)
non_negative_float = number(float, minimum=0)


def gpu_list(text):
    """An argparse type: comma-separated GPU numbers (``0,1``; empty: none, the CPU) as a list of ints."""
    try:
        gpus = [int(g) for g in text.split(",") if g.strip()]
    except ValueError:
        gpus = [-1]
    if any(g < 0 for g in gpus) or len(set(gpus)) != len(gpus):
        raise argparse.ArgumentTypeError("must be distinct GPU numbers separated by commas, e.g. 0,1 (empty: the "
                                         "CPU), got %r" % text)
    return gpus


def check_gpus(flag, gpus):
    """Raise :class:`UsageError` naming ``flag`` when GPU numbers ``gpus`` are not all on this machine."""
    import mxnet as mx
    available = mx.context.num_gpus()
    if gpus and max(gpus) >= available:
        raise UsageError("%s %s: %s" % (flag, ",".join(map(str, gpus)), "no GPU is available (this MXNet sees none)"
                                        if not available else "this machine has GPUs 0-%d" % (available - 1)))
