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


def broadcast_parameters(trainer):
    """Gluon's kvstore start for ``trainer`` (worker 0's parameters pulled by every worker), waited for.

    Gluon starts the kvstore lazily, in the first ``trainer.step``, which then pulls the parameters and, on
    the same keys, sums the gradients (``update_on_kvstore=False``). On the CPU MXNet 1.9.1 gives the pull and
    the sum no order between them, so a worker's pull could arrive after the first sum and write the summed
    gradients over its weights: 1 to 2 of 800 keys in a two-worker test, and 1 of about 20 short training
    runs on two workers diverged from the same run repeated. Starting the kvstore here and waiting for the
    pulls before any gradient is pushed removes the race. Uses Gluon's private start (MXNet 1.9.1 is final)."""
    import mxnet as mx
    if not trainer._kv_initialized:
        trainer._init_kvstore()
    if trainer._params_to_init:
        trainer._init_params()
    mx.nd.waitall()


STOP_KEY = 1 << 25          # kvstore key of the stop vote
START_KEY = STOP_KEY + 1    # kvstore key of the resume point every worker starts from
GATHER_KEY_OFFSET = 1 << 26  # kvstore keys of every worker's BatchNorm statistics, gathered on a stop


class Workers:
    """The workers of one run, as the stop and the resume point need them: one process (``kv`` None or not
    distributed), or the workers of a synchronous distributed kvstore, which agree through it. Each method is
    collective there: every worker calls it at the same point of its loop."""

    def __init__(self, kv=None, rank=0, num_workers=1):
        self.kv, self.rank, self.num_workers = kv, rank, num_workers
        self.synchronous = kv is not None and num_workers > 1 and "dist" in kv.type and "async" not in kv.type
        self._initialized = set()
        self._stepped = False

    def step(self, trainer, net, batch_size):
        """``trainer.step(batch_size)``. The first step of a process also broadcasts worker 0's parameters
        to every worker (Gluon's kvstore start), the BatchNorm statistics included, overwriting those each
        worker's batch has just updated; this step keeps them, so that a run continued mid-epoch keeps the
        same statistics as the run it continues. The broadcast is finished before the gradients are summed
        (:func:`broadcast_parameters`)."""
        if not self.synchronous or self._stepped:
            return trainer.step(batch_size)
        aux = [p for p in net.collect_params().values() if p.grad_req == "null"]
        kept = [p.data().copy() for p in aux]
        broadcast_parameters(trainer)
        trainer.step(batch_size)
        for param, data in zip(aux, kept):
            param.set_data(data)
        self._stepped = True

    def _sum(self, key, values):
        """The sum over the workers of ``values`` (a list of floats), pushed and pulled through ``key``."""
        import mxnet as mx
        import numpy as np
        data = mx.nd.array(np.asarray(values, dtype=np.float32))
        if key not in self._initialized:
            self.kv.init(key, mx.nd.zeros_like(data))
            self._initialized.add(key)
        self.kv.push(key, data)
        self.kv.pull(key, out=data)
        return data.asnumpy()

    def stop_signal(self, local, signals):
        """The stop signal every worker acts on (None: go on): the most urgent of ``signals`` (a tuple) that
        any worker received (``local``: this one's, or None)."""
        if not self.synchronous:
            return local
        votes = self._sum(STOP_KEY, [1.0 if s == local else 0.0 for s in signals])
        return next((s for s, v in zip(signals, votes) if v > 0), None)

    def check_same_start(self, epoch, batch):
        """Refuse a start where the workers would continue from different points (each reads the save folder:
        on several hosts it must be shared)."""
        if self.synchronous and list(self._sum(START_KEY, [epoch, batch])) != [epoch * self.num_workers,
                                                                                batch * self.num_workers]:
            raise UsageError("the workers found different checkpoints to continue from (worker %d: epoch %d, "
                             "batch %d): --save-dir must be one folder that every host shares" % (self.rank, epoch,
                                                                                                    batch))

    def gather_statistics(self, net):
        """Every worker's BatchNorm statistics of ``net``, as ``{"rank{r}:{index}": NDArray}`` (the same on
        every worker; {} for one process). The last collective of a stop: it returns once everything this
        worker sent through the kvstore has been exchanged (these pushes, the last step's gradients), since a
        worker that exits with a push still queued in MXNet's engine leaves the others waiting for it forever
        (the chief's write of the statistics would hang until ``--stop-grace`` ran out)."""
        import mxnet as mx
        if not self.synchronous:
            return {}
        aux = [p.data() for p in net.collect_params().values() if p.grad_req == "null"]
        gathered = {}
        for rank in range(self.num_workers):
            for index, data in enumerate(aux):
                key = GATHER_KEY_OFFSET + rank * len(aux) + index
                mine = data.copy() if rank == self.rank else mx.nd.zeros_like(data)  # x + 0 is x: exact
                if key not in self._initialized:
                    self.kv.init(key, mx.nd.zeros_like(data))
                    self._initialized.add(key)
                self.kv.push(key, mine)
                self.kv.pull(key, out=mine)
                gathered["rank%d:%d" % (rank, index)] = mine
        mx.nd.waitall()  # pushes and pulls are asynchronous: see the docstring
        return gathered
