"""Training targets and losses of GluonCV's ImageNet recipe: label smoothing, mixup, knowledge
distillation (``gluoncv.loss.DistillationSoftmaxCrossEntropyLoss``), plus Tang et al.'s bipolar term.

With label smoothing ``eta`` the target is ``(1 - eta) * onehot + eta / K``, so the loss is
``(1 - eta) * CE(y) + eta * mean_k(-log p_k)``. Mixup (Zhang et al., 2018) trains on
``lam * x + (1 - lam) * x[::-1]`` against ``lam * t(y) + (1 - lam) * t(y[::-1])``, ``lam ~ Beta(a, a)``.
"""
import numpy as np
from mxnet import gluon, nd

from .regularization import bipolar_regularization


def smooth_targets(label, classes, eta=0.0):
    """Dense targets: ``one_hot(label)`` with ``eta`` of the mass spread evenly over all ``classes``."""
    return nd.one_hot(label, classes, on_value=1 - eta + eta / classes, off_value=eta / classes)


def mixup(data, label, lam, classes, eta=0.0):
    """Mix every sample with the batch reversed: returns ``(mixed data, mixed dense targets)``."""
    mixed = lam * data + (1 - lam) * data[::-1]
    targets = smooth_targets(label, classes, eta)
    return mixed, lam * targets + (1 - lam) * targets[::-1]


class DistributionalLoss(gluon.loss.Loss):
    """ReActNet's distributional loss (section 4.3, Eq. 5): per sample, the KL divergence from the teacher's class
    distribution ``soft_target`` (a softmax, temperature 1) to the student's, ``sum_c p_c (log p_c - log q_c)``;
    no label term. Its gradient is the cross-entropy's with the teacher's distribution as target."""

    def __init__(self, **kwargs):
        super().__init__(weight=None, batch_axis=0, **kwargs)

    def hybrid_forward(self, F, output, soft_target):
        entropy_part = soft_target * F.log(F.maximum(soft_target, 1e-30))  # 0 where the teacher gives 0
        return F.sum(entropy_part - soft_target * F.log_softmax(output, axis=-1), axis=-1)


class TrainingObjective:
    """The per-batch loss of ``train_imagenet.py``: cross-entropy on sparse labels, or on dense targets
    with ``label_smoothing`` / ``mixup_alpha``; distillation from ``teacher`` at ``temperature`` with
    ``hard_weight`` on the labels, or with ``distributional`` ReActNet's :class:`DistributionalLoss` to the
    teacher alone (temperature 1, labels unused); plus ``bipolar`` * sum(1 - W^2) over the binary weights of
    ``net``."""

    def __init__(self, classes, label_smoothing=0.0, mixup_alpha=0.0, mixup_off_epoch=0, teacher=None,
                 temperature=1.0, hard_weight=0.5, bipolar=0.0, distributional=False):
        from gluoncv.loss import DistillationSoftmaxCrossEntropyLoss
        from ..errors import UsageError
        if distributional and teacher is None:
            raise UsageError("distributional_loss needs a teacher (the real-valued network whose outputs the "
                             "binary one learns)", "distributional_loss")
        self.classes, self.eta = classes, label_smoothing
        self.mixup_alpha, self.mixup_off_epoch = mixup_alpha, mixup_off_epoch
        self.teacher, self.temperature, self.bipolar = teacher, 1.0 if distributional else temperature, bipolar
        self.distributional = distributional
        self.dense = bool(label_smoothing or mixup_alpha)
        if distributional:
            self.loss = DistributionalLoss()
        elif teacher is not None:
            self.loss = DistillationSoftmaxCrossEntropyLoss(temperature, hard_weight, sparse_label=not self.dense)
        else:
            self.loss = gluon.loss.SoftmaxCrossEntropyLoss(sparse_label=not self.dense)

    def mixup_lambda(self, epoch):
        """A fresh ``lam ~ Beta(alpha, alpha)`` (NumPy's global generator), or 1 when mixup is off."""
        if self.mixup_alpha > 0 and epoch < self.mixup_off_epoch:
            return float(np.random.beta(self.mixup_alpha, self.mixup_alpha))
        return 1.0

    def inputs_and_targets(self, data, label, lam):
        """``(data, targets)`` for one device's share of a batch."""
        if lam < 1:
            return mixup(data, label, lam, self.classes, self.eta)
        return data, (smooth_targets(label, self.classes, self.eta) if self.dense else label)

    def teacher_targets(self, data):
        """The teacher's softened predictions for ``data`` (run outside ``autograd.record``, so the teacher
        is in inference mode), or None without a teacher."""
        if self.teacher is None:
            return None
        return nd.softmax(self.teacher(data) / self.temperature)

    def __call__(self, net, data, targets, soft_targets=None):
        """Per-sample losses (to be back-propagated inside ``autograd.record``) and the outputs."""
        outputs = net(data)
        if self.distributional:
            losses = self.loss(outputs, soft_targets)
        elif self.teacher is not None:
            losses = self.loss(outputs, targets, soft_targets)
        else:
            losses = self.loss(outputs, targets)
        if self.bipolar:
            # lam * R(W) added once per sample, so that trainer.step(batch_size)'s mean keeps lam * R(W).
            losses = losses + bipolar_regularization(net, self.bipolar, data.context)
        return losses, outputs
