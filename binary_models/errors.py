"""The package's errors: one base class, :class:`BinaryModelsError` (a ``ValueError``), and a subclass per
kind of problem. Library code raises them with messages that speak of arguments and files; the command layer
(:mod:`binary_models.commands.cli`) turns an error's :attr:`~BinaryModelsError.argument` into the flag that
gave it and prints one ``error: ...`` line (exit status 2)::

    try:
        bm.get_model("meliusnet23")
    except bm.BinaryModelsError as err:       # UnknownModel: names the closest known models
        ...
"""
import contextlib
import re
import warnings


class BinaryModelsError(ValueError):
    """Base of every error this package raises on bad input. ``argument`` names the function argument the
    message starts with (``"input_size 8 is too small ..."``), so that a command line can put its flag there
    (``--input-size 8 is too small ...``); None when the message names no argument."""

    def __init__(self, message, argument=None):
        super().__init__(message)
        self.argument = argument

    def for_flags(self, flags=None):
        """The message with :attr:`argument` replaced by its command-line flag: ``flags[argument]`` when
        given, else ``--`` and the argument with dashes (``input_size`` -> ``--input-size``)."""
        message = str(self)
        if not (self.argument and self.argument.isidentifier() and message.startswith(self.argument)):
            return message
        flag = (flags or {}).get(self.argument) or "--" + self.argument.replace("_", "-")
        return flag + message[len(self.argument):]


class UsageError(BinaryModelsError):
    """A value that is not allowed, or values that do not fit together (a bad argument, an unknown option)."""


class UnknownModel(UsageError):
    """A model name :func:`binary_models.get_model` does not know; the message lists the closest ones."""


class InputSizeError(UsageError):
    """An input size the model cannot take (too small for its downsampling, or not what the file holds)."""


class FileProblem(BinaryModelsError):
    """A file that cannot be used: empty, truncated, not of its kind, of another model, not the partner of
    its pair, or one that cannot be written. The message names the file."""


class MissingFile(FileProblem, FileNotFoundError):
    """A file that does not exist (a :class:`FileProblem` and a ``FileNotFoundError``)."""


class FolderInUse(BinaryModelsError):
    """An output folder locked by another live training run."""


class DataProblem(BinaryModelsError):
    """A data set that cannot be read as given (no class folders, a corrupt RecordIO file, bad annotations)."""


class TrainingDiverged(BinaryModelsError):
    """The loss or the weights became NaN or infinite: the run stops and keeps its last good checkpoint."""


class NativeLibraryError(BinaryModelsError, RuntimeError):
    """The native operator library cannot be built, found or loaded (a ``RuntimeError`` too)."""


def error_line(err):
    """The meaningful line of an exception's message: MXNet's start with a traceback header and file lines,
    and a ``Check failed: ...:`` prefix."""
    lines = [line.strip() for line in str(err).splitlines()
             if line.strip() and not line.startswith(("Traceback", "  File", "Stack trace"))]
    line = lines[0] if lines else type(err).__name__
    return re.sub(r"^(MXNetError: )?(Check failed: [^:]+: )?", "", line)


@contextlib.contextmanager
def warnings_held_until_success():
    """Hold back the warnings issued in the block: issued when it ends, dropped when it raises. MXNet warns about
    what it then fails on (an unused input of a broken graph, files that are no images in a folder without any),
    and an error stands alone: one line."""
    with warnings.catch_warnings(record=True) as held:
        yield
    for warning in held:
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno,
                               source=warning.source)


class Stopped(KeyboardInterrupt):
    """The process was asked to stop by ``signum`` (SIGINT, SIGTERM, SIGHUP, SIGUSR1; see
    :mod:`binary_models.train.stopping`): raised where it stops, with ``kept``, one sentence saying what it kept
    and how to continue. A ``KeyboardInterrupt``, so that every writer finishes or rolls back as on Ctrl-C."""

    def __init__(self, signum, kept=None, grace_expired=False):
        super().__init__(signum)
        self.signum, self.kept, self.grace_expired = signum, kept, grace_expired
