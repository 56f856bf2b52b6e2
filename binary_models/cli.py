"""What every command line of the package shares: bad input becomes one ``error: ...`` line on stderr and
exit status 2, never a traceback."""
import sys


class UsageError(Exception):
    """Bad input from the command line (missing data, unknown model, mismatched resume file): the
    scripts print the message and exit with status 2 instead of a traceback."""


def run_script(main, argv=None):
    """Run ``main(argv)``; a :class:`UsageError` prints ``error: ...`` and exits with status 2."""
    try:
        return main(argv)
    except UsageError as err:
        print("error: %s" % err, file=sys.stderr)
        sys.exit(2)
