"""Weight constraints (larq's ``kernel_constraint``): objects that project a weight after each optimizer step.

A layer takes one as ``weight_constraint=`` (an object, or larq's name ``'weight_clip'``); it is kept on the
weight parameter (``param.constraint``), and :func:`apply_constraints` applies every parameter's constraint in
place, on every context (the training loops call it after ``trainer.step``). Gluon has no constraint hook of
its own, so a custom loop calls it too.
"""
import math
import numbers

from mxnet import nd

from ..errors import UsageError


class Constraint:
    """``c(F, w)`` is the projected weight; subclasses implement ``__call__``."""

    name = "constraint"

    def __call__(self, F, w):
        return w

    def apply(self, param):
        """Project ``param`` in place on every context."""
        for data in param.list_data():
            data[:] = self(nd, data)


class WeightClip(Constraint):
    """Clip weights to [-clip_value, clip_value] (larq's ``WeightClip``; BinaryConnect, Courbariaux et al.
    2015 section 2.4: latent weights outside [-1, 1] would grow without changing their sign)."""

    name = "weight_clip"

    def __init__(self, clip_value=1.0):
        if isinstance(clip_value, bool) or not isinstance(clip_value, numbers.Real) or not (
                math.isfinite(clip_value) and clip_value > 0):
            raise UsageError("WeightClip: clip_value must be a finite number > 0, got %r" % (clip_value,))
        self.clip_value = float(clip_value)

    def __call__(self, F, w):
        return F.clip(w, -self.clip_value, self.clip_value)

    def apply(self, param):
        for data in param.list_data():
            nd.clip(data, -self.clip_value, self.clip_value, out=data)

    def __repr__(self):
        return "weight_clip(clip_value=%g)" % self.clip_value


CONSTRAINTS = {WeightClip.name: WeightClip}  # larq's string names -> class (default arguments)


def check_constraint(name, constraint):
    """``constraint`` as a :class:`Constraint` (None stays None; a name of :data:`CONSTRAINTS` gives its
    default object); ``UsageError`` naming the argument ``name`` otherwise."""
    if constraint is None or isinstance(constraint, Constraint):
        return constraint
    if isinstance(constraint, str) and constraint in CONSTRAINTS:
        return CONSTRAINTS[constraint]()
    raise UsageError("%s must be a binary_models.constraints.Constraint or one of %s, got %r"
                     % (name, ", ".join(sorted(CONSTRAINTS)), constraint))


def apply_constraints(net):
    """Apply the constraint of every parameter of ``net`` that has one (call after each optimizer step)."""
    for param in net.collect_params().values():
        constraint = getattr(param, "constraint", None)
        if constraint is not None and param._data is not None:
            constraint.apply(param)
