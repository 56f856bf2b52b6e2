"""Training objective (label smoothing, mixup, distillation, bipolar term), RAdam and the lr schedule
against their formulas in NumPy."""
import argparse
import math

import numpy as np
import pytest
import mxnet as mx
from mxnet import gluon, nd

import binary_models as bm
from binary_models.nn import quantization
from binary_models.train import optimizers  # noqa: F401  (registers 'radam')
from binary_models.train.losses import TrainingObjective, mixup, smooth_targets
from binary_models.commands.cli import add_schedule_arguments
from binary_models.train.schedules import lr_schedule, optimizer_params


def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def cross_entropy(logits, label):
    return -log_softmax(logits)[np.arange(len(label)), label]


class Identity(gluon.HybridBlock):
    def hybrid_forward(self, F, x):
        return x


@pytest.fixture
def batch(rng):
    logits = rng.randn(6, 5).astype(np.float32)
    label = rng.randint(0, 5, size=6)
    return logits, label


def test_plain_objective_is_cross_entropy(batch):
    logits, label = batch
    objective = TrainingObjective(classes=5)
    data, targets = objective.inputs_and_targets(nd.array(logits), nd.array(label), lam=1.0)
    losses, _ = objective(Identity(), data, targets)
    np.testing.assert_allclose(losses.asnumpy(), cross_entropy(logits, label), rtol=1e-5)


def test_label_smoothing_mixes_cross_entropy_with_uniform_term(batch):
    logits, label = batch
    eta = 0.1
    objective = TrainingObjective(classes=5, label_smoothing=eta)
    data, targets = objective.inputs_and_targets(nd.array(logits), nd.array(label), lam=1.0)
    losses, _ = objective(Identity(), data, targets)
    expected = (1 - eta) * cross_entropy(logits, label) + eta * (-log_softmax(logits)).mean(axis=1)
    np.testing.assert_allclose(losses.asnumpy(), expected, rtol=1e-5)


def test_mixup_loss_is_lambda_weighted_cross_entropy_of_both_labels(batch):
    """On mixed inputs, the loss is lam * CE(y) + (1 - lam) * CE(y reversed)."""
    logits, label = batch
    lam = 0.7
    objective = TrainingObjective(classes=5, mixup_alpha=0.2, mixup_off_epoch=10)
    data, targets = objective.inputs_and_targets(nd.array(logits), nd.array(label), lam)
    mixed_logits = lam * logits + (1 - lam) * logits[::-1]
    np.testing.assert_allclose(data.asnumpy(), mixed_logits, rtol=1e-6)
    losses, _ = objective(Identity(), data, targets)
    expected = lam * cross_entropy(mixed_logits, label) + (1 - lam) * cross_entropy(mixed_logits, label[::-1])
    np.testing.assert_allclose(losses.asnumpy(), expected, rtol=1e-5)


def test_mixup_lambda_follows_beta_and_switches_off():
    objective = TrainingObjective(classes=5, mixup_alpha=0.4, mixup_off_epoch=3)
    np.random.seed(1)
    lams = [objective.mixup_lambda(epoch=0) for _ in range(2000)]
    assert abs(np.mean(lams) - 0.5) < 0.03 and abs(np.var(lams) - 0.25 / 1.8) < 0.02  # Beta(a,a) moments
    assert objective.mixup_lambda(epoch=3) == 1.0


def test_mixup_targets_sum_to_one_and_keep_smoothing(batch):
    _, label = batch
    _, targets = mixup(nd.zeros((6, 1)), nd.array(label), 0.3, 5, eta=0.1)
    t = targets.asnumpy()
    np.testing.assert_allclose(t.sum(axis=1), 1, rtol=1e-6)
    assert np.allclose(t.min(), 0.02)  # eta / K on classes neither label names
    np.testing.assert_allclose(smooth_targets(nd.array([2]), 5, 0.1).asnumpy(), [[0.02, 0.02, 0.92, 0.02, 0.02]])


def test_distillation_combines_soft_and_hard_loss(batch):
    """GluonCV's definition: (1 - h) T^2 CE(softmax(z/T), softmax(teacher/T)) + h CE(z, y)."""
    logits, label = batch
    teacher_logits = np.random.RandomState(3).randn(6, 5).astype(np.float32)
    T, h = 4.0, 0.3

    class Teacher(gluon.HybridBlock):
        def hybrid_forward(self, F, x):
            return F.array(teacher_logits) if F is nd else None

    objective = TrainingObjective(classes=5, teacher=Teacher(), temperature=T, hard_weight=h)
    data, targets = objective.inputs_and_targets(nd.array(logits), nd.array(label), 1.0)
    soft = objective.teacher_targets(data)
    losses, _ = objective(Identity(), data, targets, soft)
    p_teacher = np.exp(log_softmax(teacher_logits / T))
    soft_ce = -(p_teacher * log_softmax(logits / T)).sum(axis=1)
    expected = (1 - h) * T ** 2 * soft_ce + h * cross_entropy(logits, label)
    np.testing.assert_allclose(losses.asnumpy(), expected, rtol=1e-4)


def test_distributional_loss_is_the_kl_divergence_to_the_teachers_softmax_without_labels(batch):
    """ReActNet Eq. 5: sum_c p_c (log p_c - log q_c) at temperature 1, whatever --temperature and the labels say."""
    logits, label = batch
    teacher_logits = np.random.RandomState(3).randn(6, 5).astype(np.float32)

    class Teacher(gluon.HybridBlock):
        def hybrid_forward(self, F, x):
            return F.array(teacher_logits) if F is nd else None

    objective = TrainingObjective(classes=5, teacher=Teacher(), temperature=4.0, distributional=True)
    data, targets = objective.inputs_and_targets(nd.array(logits), nd.array(label), 1.0)
    losses, _ = objective(Identity(), data, targets, objective.teacher_targets(data))
    log_p = log_softmax(teacher_logits)
    expected = (np.exp(log_p) * (log_p - log_softmax(logits))).sum(axis=1)
    np.testing.assert_allclose(losses.asnumpy(), expected, rtol=1e-4, atol=1e-6)
    shuffled, _ = objective(Identity(), data, targets[::-1], objective.teacher_targets(data))
    np.testing.assert_array_equal(shuffled.asnumpy(), losses.asnumpy())


def test_distributional_loss_without_a_teacher_names_the_argument():
    with pytest.raises(bm.errors.UsageError, match="^distributional_loss needs a teacher"):
        TrainingObjective(classes=5, distributional=True)


def test_bipolar_term_is_added_per_sample():
    net = bm.QDense(3, in_units=4)
    net.initialize(mx.init.Uniform(0.5))
    w = net.weight.data().asnumpy()
    x, y = nd.ones((2, 4)), nd.array([0, 1])
    plain, _ = TrainingObjective(classes=3)(net, x, y)
    regular, _ = TrainingObjective(classes=3, bipolar=0.01)(net, x, y)
    np.testing.assert_allclose((regular - plain).asnumpy(), 0.01 * (1 - w ** 2).sum(), rtol=1e-5)


def radam_reference(w, grads, lr, beta1=0.9, beta2=0.999, eps=1e-8):
    """Liu et al. (2020), Algorithm 2, in NumPy."""
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    rho_inf = 2 / (1 - beta2) - 1
    for t, g in enumerate(grads, start=1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1 ** t)
        rho = rho_inf - 2 * t * beta2 ** t / (1 - beta2 ** t)
        if rho > 4:
            r = math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
            w = w - lr * r * m_hat / (np.sqrt(v / (1 - beta2 ** t)) + eps)
        else:
            w = w - lr * m_hat
    return w


def test_radam_matches_algorithm_2(rng):
    w0 = rng.randn(7).astype(np.float64)
    grads = [rng.randn(7) for _ in range(12)]  # rho_t crosses 4 at step 6
    weight = nd.array(w0, dtype="float64")
    update = mx.optimizer.get_updater(mx.optimizer.create("radam", learning_rate=0.01))
    for g in grads:
        update(0, nd.array(g, dtype="float64"), weight)
    np.testing.assert_allclose(weight.asnumpy(), radam_reference(w0, grads, 0.01), rtol=1e-10)


def test_lr_schedule_warmup_then_cosine():
    schedule = lr_schedule("cosine", 0.002, num_epochs=10, iters_per_epoch=10, warmup_epochs=2)
    assert schedule(0) == pytest.approx(0.0)
    assert schedule(10) == pytest.approx(0.002 * 10 / 19)  # linear over the 20 warm-up iterations
    n = 80 - 1  # GluonCV: cosine over the remaining iterations
    for t in (20, 40, 60, 99):
        expected = 0.002 * (1 + math.cos(math.pi * min(t - 20, n) / n)) / 2
        assert schedule(t) == pytest.approx(expected, rel=1e-6, abs=1e-12)


def test_lr_schedule_step_decays_at_absolute_epochs_after_warmup():
    schedule = lr_schedule("step", 1e-3, num_epochs=120, iters_per_epoch=1, warmup_epochs=5,
                           decay=0.1, decay_epochs=[100, 110])
    assert schedule(50) == pytest.approx(1e-3)
    assert schedule(100) == pytest.approx(1e-4)
    assert schedule(99) == pytest.approx(1e-3)
    assert schedule(115) == pytest.approx(1e-5)


def test_schedule_flags_give_a_periodic_step_schedule_and_momentum_only_for_sgd():
    parser = argparse.ArgumentParser()
    parser.add_argument("--wd", type=float, default=1e-4)
    add_schedule_arguments(parser, lr=0.1, lr_mode="step", lr_decay_epoch="100,110")
    opt = parser.parse_args(["--lr-decay-period", "30", "--lr-decay", "0.5"])
    params = optimizer_params(opt, "sgd", num_epochs=90, iters_per_epoch=2)
    assert params["learning_rate"] == 0.1 and params["wd"] == 1e-4 and params["momentum"] == 0.9
    schedule = params["lr_scheduler"]
    assert [schedule(2 * e) for e in (29, 30, 59, 60, 89)] == pytest.approx([0.1, 0.05, 0.05, 0.025, 0.025])
    assert "momentum" not in optimizer_params(opt, "adam", num_epochs=90, iters_per_epoch=2)
    explicit = parser.parse_args(["--lr-decay-epoch", "10"])
    assert optimizer_params(explicit, "adam", 20, 1)["lr_scheduler"](15) == pytest.approx(0.01)


def bop_reference(w, m, g, gamma, threshold):
    """larq's Bop._resource_apply_dense in NumPy: m += gamma (g - m); w = sign(-sign(w m - threshold) w), sign(0)=+1."""
    m = m + gamma * (g - m)
    kept = -np.sign(w * m - threshold) * w
    return np.where(kept >= 0, 1.0, -1.0).astype(np.float32), m


def test_bop_flips_as_larq_and_helwegen_algorithm_1(rng):
    w = rng.randn(200).astype(np.float32)
    m = np.zeros(200, np.float32)
    bop = optimizers.Bop(threshold=1e-3, gamma=0.1, rescale_grad=0.5)
    weight, state = nd.array(w), bop.create_state(0, nd.array(w))
    for _ in range(5):
        g = rng.randn(200).astype(np.float32)
        bop.update(0, weight, nd.array(g), state)
        w, m = bop_reference(w, m, g * 0.5, 0.1, 1e-3)
        np.testing.assert_array_equal(weight.asnumpy(), w)
        np.testing.assert_allclose(state.asnumpy(), m, rtol=1e-6)
    assert set(np.unique(w)) == {-1.0, 1.0}


def test_case_optimizer_gives_binary_weights_to_bop_and_the_rest_to_adam(rng):
    net = gluon.nn.HybridSequential()
    net.add(bm.QDense(6, in_units=8), gluon.nn.Dense(3, in_units=6))
    net.initialize(mx.init.Normal(1.0))
    before = {name: p.data().asnumpy().copy() for name, p in net.collect_params().items()}
    trainer = gluon.Trainer(net.collect_params(), optimizers.bop_for_binary_weights(
        mx.optimizer.Adam(learning_rate=0.01), threshold=0.0, gamma=1.0))
    x, y = nd.array(rng.randn(4, 8)), nd.array(rng.randint(0, 3, 4))
    with mx.autograd.record():
        loss = gluon.loss.SoftmaxCrossEntropyLoss()(net(x), y)
    loss.backward()
    binary_grad = net[0].weight.grad().asnumpy().copy()
    trainer.step(4)
    binary = net[0].weight.data().asnumpy()
    expected, _ = bop_reference(before[net[0].weight.name], 0, binary_grad / 4, 1.0, 0.0)
    np.testing.assert_array_equal(binary, expected)
    dense = net[1].weight.data().asnumpy()
    assert np.abs(dense - before[net[1].weight.name]).max() == pytest.approx(0.01, rel=1e-3)  # Adam's first step
    assert trainer.learning_rate == 0.01
    assert optimizers.is_binary_weight(net[0].weight) and not optimizers.is_binary_weight(net[1].weight)
    assert optimizers.is_binary_weight(bm.QDense(3, weight_quantizer=quantization.NoOp(precision=1)).weight)


@pytest.mark.parametrize("bad", [dict(gamma=0), dict(gamma=2), dict(threshold=-1), dict(gamma=float("nan"))])
def test_bop_refuses_bad_hyperparameters(bad):
    with pytest.raises(bm.UsageError, match=next(iter(bad))):
        optimizers.Bop(**bad)


def test_flip_ratio_is_the_share_of_binary_weights_that_changed_sign(rng):
    """larq metrics_test.py test_flip_ratio: the mean over steps of (changed signs) / (weights)."""
    from binary_models.train.metrics import FlipRatio
    net = gluon.nn.HybridSequential()
    net.add(bm.QDense(5, in_units=4), gluon.nn.Dense(3, in_units=5), bm.QDense(2, in_units=3))
    net.initialize(mx.init.Normal(1.0))
    flips = FlipRatio(net)
    flips.watch()
    assert flips.get() is None and flips.size == 5 * 4 + 2 * 3
    first = net[0].weight.data().asnumpy()
    first[0, :3] *= -1  # 3 of 26 flip; the float layer changing does not count
    net[0].weight.set_data(nd.array(first))
    net[1].weight.set_data(-net[1].weight.data())
    assert flips.update() == pytest.approx(3 / 26)
    assert flips.update() == 0.0
    assert flips.get() == pytest.approx(3 / 26 / 2)
    flips.reset()
    assert flips.get() is None
    assert FlipRatio(gluon.nn.Dense(2, in_units=2)).update() is None
