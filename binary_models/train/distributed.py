"""MXNet's distributed kvstore (or Horovod) for ``train_imagenet.py``; processes are started by
:mod:`binary_models.launch`."""
import os

from ..errors import UsageError

AUX_KEY_OFFSET = 1 << 24  # kvstore keys of BatchNorm statistics, clear of the Trainer's parameter indices
_JOINED = []  # this process's distributed kvstore, freed by commands.cli.run_worker only after success


def create_kvstore(name):
    """``(kvstore, rank, num_workers, horovod module or None)`` for ``--kvstore name``: MXNet's kvstore
    (``dist_*`` needs the ``DMLC_*`` environment of :mod:`binary_models.launch`), or Horovod."""
    import mxnet as mx
    if name == "horovod":
        try:
            import horovod.mxnet as hvd
        except ImportError:
            raise UsageError("kvstore horovod needs Horovod built with MXNet support (pip install horovod)", "kvstore")
        hvd.init()
        return None, hvd.rank(), hvd.size(), hvd
    if name.startswith("dist") and "DMLC_ROLE" not in os.environ:
        raise UsageError("kvstore %s needs the DMLC_* environment: start the script with "
                         "bm launch -n WORKERS -s SERVERS -- bm train ..." % name, "kvstore")
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
