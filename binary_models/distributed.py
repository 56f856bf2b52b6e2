"""MXNet's distributed kvstore (or Horovod) for ``train_imagenet.py``; processes are started by
:mod:`binary_models.launch`."""
import logging
import os
import signal
import sys
import traceback

from .cli import UsageError, run_script

AUX_KEY_OFFSET = 1 << 24  # kvstore keys of BatchNorm statistics, clear of the Trainer's parameter indices
_JOINED = []  # this process's distributed kvstore, freed by run_worker only after success


def run_worker(main, argv=None):
    """:func:`cli.run_script` for a script that may run as a worker of a distributed job (``DMLC_ROLE=worker``):
    there, an error ends the process at once with its status (2 for a :class:`UsageError`, 1 and the
    traceback for an exception, 130 for Ctrl-C), and :mod:`binary_models.launch` stops the rest of the job.

    Freeing a distributed kvstore finalises it, which waits at a barrier for every other worker: until they
    finish, or forever if they wait for this one's gradients. So :func:`create_kvstore` keeps it alive (an
    exception unwinding the script's frames would free it) until the script has succeeded, and an error
    skips the interpreter's clean-up with ``os._exit``."""
    if os.environ.get("DMLC_ROLE") != "worker":
        return run_script(main, argv)
    try:
        status = run_script(main, argv)
    except SystemExit as exit:
        if not exit.code:
            del _JOINED[:]  # success (or --help): the final barrier is where the workers meet
            raise
        if isinstance(exit.code, str):
            print(exit.code, file=sys.stderr)
        status = exit.code if isinstance(exit.code, int) else 1
    except KeyboardInterrupt:
        traceback.print_exc()
        status = 128 + signal.SIGINT
    except BaseException:
        traceback.print_exc()
        status = 1
    else:
        del _JOINED[:]
        return status
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def create_kvstore(name):
    """``(kvstore, rank, num_workers, horovod module or None)`` for ``--kvstore name``: MXNet's kvstore
    (``dist_*`` needs the ``DMLC_*`` environment of :mod:`binary_models.launch`), or Horovod."""
    import mxnet as mx
    if name == "horovod":
        try:
            import horovod.mxnet as hvd
        except ImportError:
            raise UsageError("--kvstore horovod needs Horovod built with MXNet support (pip install horovod)")
        hvd.init()
        return None, hvd.rank(), hvd.size(), hvd
    if name.startswith("dist") and "DMLC_ROLE" not in os.environ:
        raise UsageError("--kvstore %s needs the DMLC_* environment: start the script with "
                         "python -m binary_models.launch -n WORKERS -s SERVERS -- python SCRIPT ..." % name)
    kv = mx.kv.create(name)
    if name.startswith("dist"):
        _JOINED.append(kv)
    return kv, kv.rank, kv.num_workers, None


def average_aux_states(net, kv, num_workers, initialized):
    """Average BatchNorm's running statistics over the workers of a distributed kvstore (which sums what
    the workers push), so that every worker ends an epoch with the same model."""
    import mxnet as mx
    aux = [p for p in net.collect_params().values() if p.grad_req == "null"]
    for i, param in enumerate(aux):
        key, data = AUX_KEY_OFFSET + i, param.data()
        if not initialized:
            kv.init(key, mx.nd.zeros_like(data))
        kv.push(key, data)
        kv.pull(key, out=data)
        data /= num_workers
