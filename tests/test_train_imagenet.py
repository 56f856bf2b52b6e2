"""train_imagenet.py end to end on small data made here: an image folder and a RecordIO file of three
learnable classes, and the embedded digits for the distributed run."""
import glob
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import cv2
import numpy as np
import pytest
import mxnet as mx

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from binary_models.commands import train_imagenet  # noqa: E402
from binary_models.commands.cli import run_script  # noqa: E402
from binary_models.train.recipes import RECIPES  # noqa: E402

CLASSES = ("red", "green", "blue")
# A 3-class folder at 16x16 with the thumbnail stem: every run takes seconds.
SMALL_RUN = ["--model", "meliusnet22", "--stem", "thumbnail", "--input-size", "16", "--crop-ratio", "1",
             "--batch-size", "4", "-j", "0", "--log-interval", "1", "--no-progress", "--save-frequency", "1"]


def write_class_images(root, per_class, rng, size=20):
    """Noisy images whose dominant colour channel is the class."""
    for k, name in enumerate(CLASSES):
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i in range(per_class):
            image = rng.randint(0, 90, size=(size, size, 3)).astype(np.uint8)
            image[:, :, 2 - k] += 150  # OpenCV writes BGR
            cv2.imwrite(os.path.join(root, name, "%03d.jpg" % i), image)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagefolder")
    rng = np.random.RandomState(0)
    write_class_images(str(root / "train"), 8, rng)
    write_class_images(str(root / "val"), 4, rng)
    return str(root)


def write_recordio(folder, prefix):
    """Pack ``folder/<class>/*.jpg`` into ``prefix.rec`` + ``prefix.idx`` with ``mx.recordio``."""
    record = mx.recordio.MXIndexedRecordIO(prefix + ".idx", prefix + ".rec", "w")
    index = 0
    for label, name in enumerate(CLASSES):
        for path in sorted(glob.glob(os.path.join(folder, name, "*.jpg"))):
            header = mx.recordio.IRHeader(0, float(label), index, 0)
            record.write_idx(index, mx.recordio.pack_img(header, cv2.imread(path), quality=95))
            index += 1
    record.close()


@pytest.fixture(scope="module")
def recordio(image_folder, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("rec"))
    for split in ("train", "val"):
        write_recordio(os.path.join(image_folder, split), os.path.join(root, split))
    return root


def train(args):
    assert train_imagenet.main(args) == 0


def expect_usage_error(args, capsys, *fragments):
    with pytest.raises(SystemExit) as exit_info:
        run_script(train_imagenet.main, args)
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_one_epoch_on_an_image_folder_logs_and_writes_every_output(image_folder, tmp_path):
    out = str(tmp_path / "run")
    train(["--data-dir", image_folder, "--num-epochs", "1", "--save-dir", out] + SMALL_RUN)
    log = open(os.path.join(out, "train_imagenet.log")).read()
    for line in ("Epoch[0] Batch [0]\tSpeed:", "[Epoch 0] training: accuracy=", "[Epoch 0] speed:",
                 "[Epoch 0] validation: top1="):
        assert line in log
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert summary["model"] == "meliusnet22" and summary["epochs"] == 1 and summary["classes"] == 3
    assert 0 <= summary["best_top1"] <= 1 and summary["model_kwargs"] == {"classes": 3, "stem": "thumbnail"}
    with open(os.path.join(out, "training_curve.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    for name in ("imagenet-meliusnet22-0.params", "imagenet-meliusnet22-0.states", "imagenet-meliusnet22-best.params"):
        assert os.path.getsize(os.path.join(out, name)) > 0
    assert not glob.glob(os.path.join(out, ".*.tmp"))


def test_one_epoch_on_recordio(recordio, tmp_path):
    out = str(tmp_path / "rec")
    rec = lambda split, ext: os.path.join(recordio, split + ext)
    train(["--use-rec", "--rec-train", rec("train", ".rec"), "--rec-train-idx", rec("train", ".idx"),
           "--rec-val", rec("val", ".rec"), "--rec-val-idx", rec("val", ".idx"), "--classes", "3",
           "--num-epochs", "1", "--save-dir", out] + SMALL_RUN)
    log = open(os.path.join(out, "train_imagenet.log")).read()
    assert "Epoch[0] Batch [5]" in log  # 24 records / batch 4
    assert "[Epoch 0] validation: top1=" in log
    assert json.load(open(os.path.join(out, "summary.json")))["classes"] == 3


def saved_teacher(tmp_path):
    """A thumbnail resnet_e18 of 3 classes saved as a teacher: the flags that name it."""
    import binary_models as bm
    teacher = bm.get_model("resnet_e18", stem="thumbnail", classes=3)
    teacher.initialize(mx.init.Xavier())
    teacher(mx.nd.zeros((1, 3, 16, 16)))
    teacher.save_parameters(str(tmp_path / "teacher.params"))
    return ["--teacher", "resnet_e18", "--teacher-params", str(tmp_path / "teacher.params")]


def test_mixup_label_smoothing_and_distillation_train_together(image_folder, tmp_path):
    out = str(tmp_path / "kd")
    train(["--data-dir", image_folder, "--num-epochs", "1", "--save-dir", out, "--mixup", "--label-smoothing",
           "--temperature", "4"] + saved_teacher(tmp_path) + SMALL_RUN)
    log = open(os.path.join(out, "train_imagenet.log")).read()
    assert "[Epoch 0] training: rmse=" in log  # GluonCV's metric under mixup
    losses = [float(line.split("loss=")[1].split()[0]) for line in log.splitlines() if "Batch [" in line]
    assert len(losses) == 6 and all(np.isfinite(losses))


def test_distributional_loss_trains_a_reactnet_from_a_teacher(image_folder, tmp_path):
    out = str(tmp_path / "reactnet")
    run = ["--model", "reactnet_a"] + SMALL_RUN[2:] + ["--max-batches", "2"]
    train(["--data-dir", image_folder, "--num-epochs", "1", "--save-dir", out, "--distributional-loss"]
          + saved_teacher(tmp_path) + run)
    log = open(os.path.join(out, "train_imagenet.log")).read()
    losses = [float(line.split("loss=")[1].split()[0]) for line in log.splitlines() if "Batch [" in line]
    assert len(losses) == 2 and all(np.isfinite(losses)) and all(loss >= 0 for loss in losses)


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_every_recipe_step_sets_flags_that_command_line_flags_override(recipe):
    for step, defaults in enumerate(RECIPES[recipe], 1):
        opt = train_imagenet.parse_args(["--recipe", recipe, "--recipe-step", str(step), "--dataset", "digits"])
        for flag, value in defaults.flags.items():
            assert getattr(opt, flag) == value or str(getattr(opt, flag)) == str(value), (flag, value)
    assert train_imagenet.parse_args(["--recipe", recipe, "--dataset", "digits", "--lr", "0.123"]).lr == 0.123


def test_reactnet_recipe_has_two_steps_binarizing_the_weights_in_the_second():
    first = train_imagenet.parse_args(["--recipe", "reactnet_a", "--dataset", "digits"])
    second = train_imagenet.parse_args(["--recipe", "reactnet_a", "--recipe-step", "2", "--dataset", "digits"])
    assert (first.bits, first.wd, second.bits, second.wd) == (32, 1e-5, 1, 0.0)
    assert first.optimizer == "adam" and first.lr == 5e-4 and first.lr_mode == "linear" and first.distributional_loss


def test_unknown_recipe_or_step_exits_2_naming_the_flag(capsys):
    expect_usage_error(["--recipe", "reactnet_b"], capsys, "--recipe 'reactnet_b' is unknown", "reactnet_a")
    expect_usage_error(["--recipe", "quicknet", "--recipe-step", "2"], capsys, "--recipe-step 2", "1 step")
    expect_usage_error(["--dataset", "digits"], capsys, "--model is required")


def load(path):
    return {k: v.asnumpy() for k, v in mx.nd.load(path).items()}


def test_run_killed_mid_epoch_resumes_to_the_same_weights(image_folder, tmp_path):
    """SIGKILL during epoch 2 leaves epoch 1's checkpoint intact; resuming from it ends with exactly the
    weights of an uninterrupted run (same data order, schedule and optimizer state)."""
    args = ["--data-dir", image_folder, "--num-epochs", "2"] + SMALL_RUN
    reference = str(tmp_path / "reference")
    train(args + ["--save-dir", reference])

    killed = str(tmp_path / "killed")
    command = [sys.executable, os.path.join(REPO, "train_imagenet.py")] + args + ["--save-dir", killed]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    log_path = os.path.join(killed, "train_imagenet.log")
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if os.path.exists(log_path) and "Epoch[1] Batch [0]" in open(log_path).read():
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not os.path.exists(os.path.join(killed, "imagenet-meliusnet22-1.params")), "not killed mid-epoch"
    first = os.path.join(killed, "imagenet-meliusnet22-0")
    np.testing.assert_array_equal(load(first + ".params")["output.weight"],
                                  load(os.path.join(reference, "imagenet-meliusnet22-0.params"))["output.weight"])

    train(args + ["--save-dir", killed, "--resume-epoch", "1", "--resume-params", first + ".params",
                  "--resume-states", first + ".states"])
    resumed = load(os.path.join(killed, "imagenet-meliusnet22-1.params"))
    expected = load(os.path.join(reference, "imagenet-meliusnet22-1.params"))
    assert resumed.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(resumed[name], expected[name], err_msg=name)
    history = json.load(open(os.path.join(killed, "history.json")))
    assert len(history["val_top1"]) == 2


def binary_weight_values(path):
    import binary_models as bm
    net = bm.get_model("meliusnet22", stem="thumbnail", classes=3)
    net.load_parameters(path)
    return np.concatenate([w.data().asnumpy().ravel() for w in bm.binary_weights(net)])


def test_bipolar_regularizer_drives_binary_weights_to_plus_minus_one(image_folder, tmp_path):
    args = ["--data-dir", image_folder, "--num-epochs", "1", "--lr", "0.2", "--lr-mode", "step"] + SMALL_RUN
    train(args + ["--save-dir", str(tmp_path / "plain")])
    train(args + ["--save-dir", str(tmp_path / "bipolar"), "--bipolar-reg", "1"])
    plain = binary_weight_values(str(tmp_path / "plain" / "imagenet-meliusnet22-0.params"))
    bipolar = binary_weight_values(str(tmp_path / "bipolar" / "imagenet-meliusnet22-0.params"))
    assert np.abs(bipolar).max() <= 1.0 and np.mean(np.abs(bipolar) == 1) > 0.9  # pushed out, clipped
    assert np.abs(plain).max() > 1.0 and np.mean(np.abs(plain) == 1) < 0.01     # no clip without the flag
    assert np.mean(1 - bipolar ** 2) < 0.5 * np.mean(1 - plain ** 2)            # the regularizer's value


def test_missing_data_exits_2_naming_it(tmp_path, capsys):
    expect_usage_error(["--data-dir", str(tmp_path / "nowhere")] + SMALL_RUN, capsys, "--data-dir not found")
    expect_usage_error(["--use-rec", "--rec-train", str(tmp_path / "train.rec")] + SMALL_RUN, capsys,
                       "--rec-train not found", "train.rec")


def test_unknown_model_exits_2_with_closest_names(image_folder, capsys):
    args = ["--data-dir", image_folder] + SMALL_RUN
    args[args.index("meliusnet22")] = "meliusnet23"
    expect_usage_error(args, capsys, "unknown model 'meliusnet23'", "meliusnet22")


def test_mismatched_resume_and_teacher_files_exit_2(image_folder, tmp_path, capsys):
    import binary_models as bm
    other = bm.get_model("meliusnet22", stem="thumbnail", classes=5)
    other.initialize()
    other(mx.nd.zeros((1, 3, 16, 16)))
    path = str(tmp_path / "five_classes.params")
    other.save_parameters(path)
    args = ["--data-dir", image_folder, "--save-dir", str(tmp_path / "out")] + SMALL_RUN
    expect_usage_error(args + ["--resume-params", path], capsys, "--resume-params", "does not match the model")
    expect_usage_error(args + ["--teacher", "meliusnet22", "--teacher-params", path], capsys, "--teacher-params",
                       "does not match")


def test_bad_input_exit_status_is_2_from_the_command_line(tmp_path):
    result = subprocess.run([sys.executable, os.path.join(REPO, "train_imagenet.py"), "--model", "meliusnet22",
                             "--data-dir", str(tmp_path / "missing")], capture_output=True, text=True, cwd=str(tmp_path))
    assert result.returncode == 2
    assert "error: --data-dir not found" in result.stderr and "Traceback" not in result.stderr
    assert os.listdir(str(tmp_path)) == []  # no run folder for a run that never started


def test_launcher_plans_scheduler_servers_and_workers_over_ssh(tmp_path, capsys):
    from binary_models.commands import launch
    hosts = tmp_path / "hosts"
    hosts.write_text("# cluster\nnode1\nnode2\n")
    assert launch.main(["-n", "2", "-s", "2", "--hosts", str(hosts), "--port", "9091", "--dry-run", "--",
                        "python", "train_imagenet.py", "--kvstore", "dist_sync"]) == 0
    lines = capsys.readouterr().out.splitlines()
    roles = [line.split()[0] for line in lines]
    assert roles == ["scheduler", "server", "server", "worker", "worker"]
    assert "ssh" not in lines[0] and "DMLC_ROLE=scheduler" in lines[0]
    assert [("node1" in line, "node2" in line) for line in lines[1:]] == [(True, False), (False, True)] * 2
    assert all("DMLC_NUM_WORKER=2" in line and "DMLC_PS_ROOT_PORT=9091" in line for line in lines)


def test_distributed_sync_training_on_digits_matches_a_single_process(tmp_path):
    """1 scheduler, 1 server and 2 workers on 127.0.0.1: both workers finish with identical weights
    (gradients aggregated by the kvstore, BatchNorm statistics averaged), as accurate as one process."""
    args = [os.path.join(REPO, "train_imagenet.py"), "--dataset", "digits", "--model", "resnet_e18",
            "--input-size", "8", "--num-epochs", "2", "--batch-size", "32", "--log-interval", "0",
            "--no-progress", "--lr", "0.005"]
    single = str(tmp_path / "single")
    train(args[1:] + ["--save-dir", single])
    dist = str(tmp_path / "dist")
    result = subprocess.run([sys.executable, "-m", "binary_models.launch", "-n", "2", "-s", "1", "--timeout", "600",
                             "--", sys.executable] + args + ["--save-dir", dist, "--kvstore", "dist_sync",
                                                             "--batch-size", "16"],
                            cwd=REPO, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr[-3000:]
    rank0 = load(os.path.join(dist, "imagenet-resnet_e18-final-rank0.params"))
    rank1 = load(os.path.join(dist, "imagenet-resnet_e18-final-rank1.params"))
    for name in rank0:
        np.testing.assert_array_equal(rank0[name], rank1[name], err_msg=name)
    single_top1 = json.load(open(os.path.join(single, "summary.json")))["final_top1"]
    dist_summary = json.load(open(os.path.join(dist, "summary.json")))
    assert dist_summary["num_workers"] == 2
    print("single-process top-1 %.4f, 2 workers %.4f" % (single_top1, dist_summary["final_top1"]))
    assert dist_summary["final_top1"] >= single_top1 - 0.03, (dist_summary["final_top1"], single_top1)


FIRST_STEP = textwrap.dedent("""
    import os, sys
    import numpy as np
    import mxnet as mx
    from mxnet import autograd, gluon
    from binary_models.train import distributed
    out, count = sys.argv[1], int(sys.argv[2])
    kv, rank, num_workers, _ = distributed.create_kvstore("dist_sync")
    params = gluon.ParameterDict("p_")
    weights = [params.get("w%d" % i, shape=(4,), init=mx.init.Constant(i + 1 + 1000 * rank)) for i in range(count)]
    params.initialize(ctx=mx.cpu())
    trainer = gluon.Trainer(params, "sgd", {"learning_rate": 1.0}, kvstore=kv, update_on_kvstore=False)
    with autograd.record():
        loss = mx.nd.add_n(*[(w.data() * (rank + 1)).sum() for w in weights])
    loss.backward()
    net = type("Net", (), {"collect_params": lambda self: params})()
    distributed.Workers(kv, rank, num_workers).step(trainer, net, 1)
    np.save(os.path.join(out, "rank%d.npy" % rank), np.stack([w.data().asnumpy() for w in weights]))
""")


def test_first_distributed_step_gives_every_worker_worker_0s_weights_minus_the_summed_gradients(tmp_path):
    """The first step of a dist_sync run (the kvstore's start): both workers end with worker 0's initial
    weights minus the summed gradients, for every one of 400 parameters. Before the broadcast was waited for,
    a worker's pull of the weights could arrive after the sum of the gradients on the same key, and the
    worker's weight became that sum (1 parameter in about 1000 per step)."""
    script = tmp_path / "first_step.py"
    script.write_text(FIRST_STEP)
    result = subprocess.run([sys.executable, "-m", "binary_models.launch", "-n", "2", "-s", "1", "--timeout", "300",
                             "--", sys.executable, str(script), str(tmp_path), "400"], cwd=REPO, capture_output=True,
                            text=True, env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO))
    assert result.returncode == 0, result.stderr[-3000:]
    # worker r's gradient is r + 1 everywhere: the sum is 3; SGD with learning rate 1 and rescale 1 / batch 1
    expected = np.repeat(np.arange(1, 401, dtype=np.float32)[:, None] - 3, 4, axis=1)
    for rank in (0, 1):
        np.testing.assert_array_equal(np.load(str(tmp_path / ("rank%d.npy" % rank))), expected,
                                      err_msg="worker %d" % rank)


def test_max_batches_limits_each_epoch_and_the_history_keeps_every_batch_loss(image_folder, tmp_path):
    """--max-batches 2 of 6: two per-batch losses per epoch, placed at (epoch, epoch + 1], whose mean is the
    epoch's logged training loss (equal batches); summary.json has the data's 3 classes, not --classes."""
    out = str(tmp_path / "run")
    assert run_script(train_imagenet.main, ["--data-dir", image_folder, "--num-epochs", "2", "--max-batches", "2",
                                            "--save-dir", out] + SMALL_RUN) == 0
    history = json.load(open(os.path.join(out, "history.json")))
    batches = history["train_loss_per_batch"]
    assert [round(x, 6) for x, _ in batches] == [0.5, 1.0, 1.5, 2.0]
    for epoch in (0, 1):
        losses = [loss for x, loss in batches if epoch < x <= epoch + 1]
        assert np.isclose(np.mean(losses), history["train_loss"][epoch], rtol=1e-5)
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert summary["classes"] == 3 and summary["args"]["classes"] == 3
    assert not os.path.exists(os.path.join(out, "run.lock"))


def test_bop_trains_the_binary_weights_as_signs_and_adam_the_rest(image_folder, tmp_path):
    """--optimizer bop (Helwegen et al. 2019): every binary weight ends +-1 (Bop's update), the full-precision
    ones keep real values (Adam)."""
    out = tmp_path / "bop"
    train(["--data-dir", image_folder, "--num-epochs", "1", "--optimizer", "bop", "--bop-gamma", "0.01",
           "--bop-threshold", "1e-6", "--save-dir", str(out)] + SMALL_RUN)
    binary = binary_weight_values(str(out / "imagenet-meliusnet22-0.params"))
    assert set(np.unique(binary)) == {-1.0, 1.0}
    import binary_models as bm
    net = bm.get_model("meliusnet22", stem="thumbnail", classes=3)
    net.load_parameters(str(out / "imagenet-meliusnet22-0.params"))
    assert len(np.unique(net.output.weight.data().asnumpy())) > 2
    # the flip ratio (larq's FlipRatio) in the log and the history, for the curves
    with open(out / "train_imagenet.log") as f:
        assert "flip_ratio=" in f.read()
    with open(out / "history.json") as f:
        flip_ratio = json.load(f)["flip_ratio"]
    assert len(flip_ratio) == 1 and 0 < flip_ratio[0] < 1


def test_bop_flags_are_checked(image_folder, capsys):
    expect_usage_error(["--data-dir", image_folder, "--optimizer", "bop", "--bop-gamma", "2"] + SMALL_RUN, capsys,
                       "--bop-gamma")
