"""Run any script with this package's models in GluonCV's model zoo, the script left unchanged::

    bm run train_imagenet.py --model meliusnet22 --use-rec ...   # GluonCV's script
    bm run demo_ssd.py --network ssd_512_binary_densenet37_voc ...
    bm run my_script.py ARGS...

``gluoncv.model_zoo.get_model('meliusnet22')`` (and every other name of :func:`binary_models.get_model_list`,
SSDs included) then works inside the script without an ``import binary_models`` in it. The script runs as if
started with ``python SCRIPT.py ARGS...``: ``sys.argv`` is ``[SCRIPT.py, ARGS...]``, ``__name__`` is
``'__main__'``, ``sys.path[0]`` is the script's folder (its neighbour modules import), its exit status is the
command's, and a traceback starts at the script's own frames.
"""
import os
import runpy
import sys
import traceback

USAGE = "usage: bm run SCRIPT.py [ARGS...]"


def run(script, args=()):
    """Run ``script`` as ``__main__`` with ``sys.argv = [script, *args]`` and ``sys.path[0]`` its folder,
    after registering this package's models with GluonCV. Returns nothing; the script's ``SystemExit`` and
    exceptions propagate. ``sys.argv`` and ``sys.path`` are restored afterwards."""
    import binary_models
    binary_models.register_with_gluoncv()
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    sys.argv = [script] + list(args)
    sys.path[0:1] = [os.path.dirname(os.path.abspath(script))]
    try:
        runpy.run_path(script, run_name="__main__")
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path


def _script_traceback(err, script):
    """``err``'s traceback from the script's first frame on (without this module's and runpy's frames)."""
    tb, target = err.__traceback__, os.path.abspath(script)
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) != target:
        tb = tb.tb_next
    return tb or err.__traceback__


def main(argv=None):
    """``bm run SCRIPT.py [ARGS...]``: the script's exit status; 1 and a traceback from the
    script's frames on an uncaught exception (as Python itself); 2 and one line when SCRIPT.py is missing."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE + "\nRuns SCRIPT.py as `python SCRIPT.py ARGS...` would, with binary_models' models "
              "registered in gluoncv.model_zoo.", file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    script = argv[0]
    if not os.path.isfile(script):
        print("error: script not found: %s" % script, file=sys.stderr)
        return 2
    try:
        run(script, argv[1:])
    except SystemExit as exit_:
        code = exit_.code
        if code is None or isinstance(code, int):
            return code or 0
        print(code, file=sys.stderr)  # sys.exit("message"), as Python prints it
        return 1
    except KeyboardInterrupt:
        raise
    except BaseException as err:  # noqa: B902  (any exception ends the script, as in Python)
        traceback.print_exception(type(err), err, _script_traceback(err, script))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
