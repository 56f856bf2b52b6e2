"""The sweep of bad files: every kind of file the package reads (trained parameters, trainer states, a packed
model's symbol and parameters, the run file, pretrained weights), missing, empty, truncated, garbage or of
another model, through each command line that reads it (exit status 2 and one ``error:`` line naming the
file) and through the API (a ``ValueError`` or ``FileNotFoundError`` naming the file).

One tiny model's checkpoint is made once for the module; every command line runs in this process."""
import json
import os
import shutil
import sys

import numpy as np
import pytest
import mxnet as mx

import binary_models as bm
from binary_models import storage as files
from binary_models.commands import predict
from binary_models.commands import convert as convert_command
from binary_models.inference import convert as convert_module
from binary_models.commands.cli import run_script

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from binary_models.commands import detect, train_imagenet  # noqa: E402
from test_train_imagenet import SMALL_RUN, write_class_images  # noqa: E402

MODEL = "imagenet-meliusnet22"
GARBAGE = b"these bytes are no model file\n" * 40
CORRUPTIONS = ("empty", "truncated", "garbage")


def corrupt(source, target, how):
    """Write ``target`` as a copy of ``source`` that is empty, cut in half, or replaced by text."""
    with open(source, "rb") as f:
        data = f.read()
    with open(target, "wb") as f:
        f.write({"empty": b"", "truncated": data[:len(data) // 2], "garbage": GARBAGE}[how])
    return target


def copy_packed(source, target, damaged=None, how=None):
    """A copy of the packed model ``source`` at ``target`` (with its run file, without its pair record), its
    ``damaged`` file ('symbol' or 'params') corrupted ``how``."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    for suffix in ("-symbol.json", "-0000.params", "-run.json"):
        shutil.copy(source + suffix, target + suffix)
    if damaged:
        suffix = {"symbol": "-symbol.json", "params": "-0000.params"}[damaged]
        corrupt(source + suffix, target + suffix, how)
    return target


def one_step(net, shape):
    """``net`` initialised and its Adam trainer after one step, as after training."""
    net.initialize(mx.init.Xavier())
    with mx.autograd.record():
        loss = (net(mx.nd.ones(shape)) ** 2).sum()
    loss.backward()
    trainer = mx.gluon.Trainer(net.collect_params(), "adam")
    trainer.step(shape[0])
    return trainer


def save_trained_checkpoint(prefix):
    """What ``train_imagenet.py --model meliusnet22 --stem thumbnail --input-size 16`` writes on three classes:
    ``{prefix}-0.params/.states`` (a pair), ``{prefix}-best.params`` and the run file."""
    net = bm.get_model("meliusnet22", stem="thumbnail", classes=3)
    trainer = one_step(net, (2, 3, 16, 16))
    files.save_checkpoint(prefix + "-0", net, trainer)
    files.save_checkpoint(prefix + "-best", net)
    files.write_run_file(files.run_file(prefix), "meliusnet22", dict(classes=3, stem="thumbnail"), 16, 3,
                         dataset="imagenet", crop_ratio=1.0)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Paths of good and bad files: ``{name}`` placeholders of the rows."""
    root = str(tmp_path_factory.mktemp("bad_files"))
    rng = np.random.RandomState(0)
    images = os.path.join(root, "images")
    write_class_images(os.path.join(images, "train"), 4, rng)
    write_class_images(os.path.join(images, "val"), 2, rng)
    run = os.path.join(root, "run")
    prefix = os.path.join(run, MODEL)
    save_trained_checkpoint(prefix)
    packed = os.path.join(root, "packed", "m")
    assert convert_command.main(["--params", prefix + "-0.params", "--output", packed]) == 0
    paths = dict(root=root, images=images, run=run, params=prefix + "-0.params", states=prefix + "-0.states",
                 best=prefix + "-best.params", run_file=prefix + "-run.json", packed=packed,
                 image=os.path.join(images, "val", "red", "000.jpg"))

    bad = os.path.join(root, "bad")
    os.makedirs(bad)
    paths["bad"] = bad
    for how in CORRUPTIONS:
        for kind, source in (("params", paths["params"]), ("states", paths["states"]), ("run", paths["run_file"])):
            corrupt(source, os.path.join(bad, "%s.%s" % (how, kind)), how)
        paths["packed_" + how + "_symbol"] = copy_packed(packed, os.path.join(root, "p-%s-symbol" % how, "m"),
                                                         "symbol", how)
        paths["packed_" + how + "_params"] = copy_packed(packed, os.path.join(root, "p-%s-params" % how, "m"),
                                                         "params", how)
        pretrained = os.path.join(root, "pretrained-" + how, "models")
        os.makedirs(pretrained)
        corrupt(paths["params"], os.path.join(pretrained, "meliusnet22.params"), how)
    nodes = copy_packed(packed, os.path.join(root, "p-nodes", "m"))
    with open(nodes + "-symbol.json", "w") as f:
        json.dump({"nodes": 5}, f)
    paths["packed_nodes"] = nodes

    # Another model's files: its parameters, its trainer's states, its run file, its packed model.
    other = bm.get_model("resnet_e18", stem="thumbnail", classes=3)
    trainer = one_step(other, (2, 3, 16, 16))
    other.save_parameters(os.path.join(bad, "other.params"))
    trainer.save_states(os.path.join(bad, "other.states"))
    with open(paths["run_file"]) as f:
        record = json.load(f)
    files.write_json(os.path.join(bad, "other-run.json"), dict(record, model="resnet_e18"))
    files.write_json(os.path.join(bad, "fieldless-run.json"), {"model": "meliusnet22"})
    files.write_json(os.path.join(bad, "float-run.json"), dict(record, model_kwargs=dict(
        record["model_kwargs"], bits=32, bits_a=32)))
    pretrained = os.path.join(root, "pretrained-other-model", "models")
    os.makedirs(pretrained)
    shutil.copy(os.path.join(bad, "other.params"), os.path.join(pretrained, "meliusnet22.params"))
    other_packed = os.path.join(root, "other-packed", "m")
    convert_module.save_packed(convert_module.convert(other), other_packed, (1, 3, 16, 16))
    mixed = copy_packed(packed, os.path.join(root, "p-mixed", "m"))
    shutil.copy(other_packed + "-0000.params", mixed + "-0000.params")
    paths["packed_mixed"] = mixed
    # A pair whose record says that its parameters were replaced after it was written.
    replaced = copy_packed(packed, os.path.join(root, "p-replaced", "m"))
    shutil.copy(packed + ".pair.json", replaced + ".pair.json")
    with open(replaced + "-0000.params", "ab") as f:
        f.write(b"\0")
    paths["packed_replaced"] = replaced
    with open(os.path.join(bad, "a-file"), "w") as f:
        f.write("not a folder\n")
    return paths


MAINS = {"convert": convert_command.main, "train": train_imagenet.main, "predict": predict.main,
         "detect": detect.main}
TRAIN = "--data-dir {images} --num-epochs 1 --save-dir {root}/t " + " ".join(SMALL_RUN) + " "
CONVERT = "--output {root}/out/m "


def cli(name, command, args, *fragments):
    return pytest.param(command, args, fragments, id=name)


CLI_ROWS = [
    # convert: --params, --run, the model and its options
    cli("convert-params-missing", "convert", CONVERT + "--run {run_file} --params {bad}/missing.params",
        "--params not found: {bad}/missing.params"),
    cli("convert-params-empty", "convert", CONVERT + "--run {run_file} --params {bad}/empty.params",
        "--params {bad}/empty.params is empty"),
    cli("convert-params-truncated", "convert", CONVERT + "--run {run_file} --params {bad}/truncated.params",
        "--params {bad}/truncated.params is not a parameter file, or it is truncated"),
    cli("convert-params-garbage", "convert", CONVERT + "--run {run_file} --params {bad}/garbage.params",
        "--params {bad}/garbage.params is not a parameter file"),
    cli("convert-params-other-model", "convert", CONVERT + "--run {run_file} --params {bad}/other.params",
        "--params {bad}/other.params does not match the model: "),
    cli("convert-run-missing", "convert", CONVERT + "--params {params} --run {bad}/missing-run.json",
        "--run not found: {bad}/missing-run.json"),
    cli("convert-run-empty", "convert", CONVERT + "--params {params} --run {bad}/empty.run",
        "cannot read run file {bad}/empty.run"),
    cli("convert-run-truncated", "convert", CONVERT + "--params {params} --run {bad}/truncated.run",
        "cannot read run file {bad}/truncated.run"),
    cli("convert-run-garbage", "convert", CONVERT + "--params {params} --run {bad}/garbage.run",
        "cannot read run file {bad}/garbage.run"),
    cli("convert-run-without-fields", "convert", CONVERT + "--params {params} --run {bad}/fieldless-run.json",
        "run file {bad}/fieldless-run.json lacks model_kwargs, input_size, classes"),
    cli("convert-run-other-model", "convert", CONVERT + "--params {params} --run {bad}/other-run.json",
        "--params {params} does not match the model: ", "resnet_e18"),
    cli("convert-unknown-model", "convert", CONVERT + "--params {params} --model meliusnet23",
        "unknown model 'meliusnet23'"),
    cli("convert-classes-mismatch", "convert", CONVERT + "--params {params} --classes 5",
        "--params {params} does not match the model: ", "saved (3,"),
    cli("convert-input-size-0", "convert", CONVERT + "--params {params} --input-size 0",
        "argument --input-size: must be an integer >= 1, got 0"),
    cli("convert-no-binary-layer", "convert", CONVERT + "--params {params} --run {bad}/float-run.json",
        "--params {params}: meliusnet22 has no binary layer to convert"),
    cli("convert-output-under-a-file", "convert", "--params {params} --output {bad}/a-file/m",
        "--output {bad}/a-file/m: cannot write {bad}/a-file/m-symbol.json: {bad}/a-file is a file, not a folder"),
    # train_imagenet.py: --resume-params, --resume-states, --use-pretrained, --save-dir
    cli("train-resume-params-missing", "train", TRAIN + "--resume-params {bad}/missing.params",
        "--resume-params not found: {bad}/missing.params"),
    cli("train-resume-params-empty", "train", TRAIN + "--resume-params {bad}/empty.params",
        "--resume-params {bad}/empty.params is empty"),
    cli("train-resume-params-truncated", "train", TRAIN + "--resume-params {bad}/truncated.params",
        "--resume-params {bad}/truncated.params is not a parameter file, or it is truncated (Invalid NDArray"),
    cli("train-resume-params-garbage", "train", TRAIN + "--resume-params {bad}/garbage.params",
        "--resume-params {bad}/garbage.params is not a parameter file"),
    cli("train-resume-params-other-model", "train", TRAIN + "--resume-params {bad}/other.params",
        "--resume-params {bad}/other.params does not match the model: "),
    cli("train-resume-states-missing", "train", TRAIN + "--resume-states {bad}/missing.states",
        "--resume-states not found: {bad}/missing.states"),
    cli("train-resume-states-empty", "train", TRAIN + "--resume-states {bad}/empty.states",
        "--resume-states {bad}/empty.states is empty"),
    cli("train-resume-states-truncated", "train", TRAIN + "--resume-states {bad}/truncated.states",
        "--resume-states {bad}/truncated.states is not a trainer-states file, or it is truncated"),
    cli("train-resume-states-garbage", "train", TRAIN + "--resume-states {bad}/garbage.states",
        "--resume-states {bad}/garbage.states is not a trainer-states file"),
    cli("train-resume-states-other-model", "train", TRAIN + "--resume-states {bad}/other.states",
        "--resume-states {bad}/other.states holds the states of another model"),
    cli("train-resume-states-of-another-checkpoint", "train",
        TRAIN + "--resume-params {best} --resume-states {states}",
        "--resume-states: {best} is not the file written together with {states}", "pair record"),
    cli("train-pretrained-missing", "train", TRAIN + "--use-pretrained",
        "no weights for 'meliusnet22' at {root}/pretrained-missing/models/meliusnet22.params"),
    cli("train-pretrained-empty", "train", TRAIN + "--use-pretrained",
        "pretrained=True: the weights of 'meliusnet22' {root}/pretrained-empty/models/meliusnet22.params is empty"),
    cli("train-pretrained-truncated", "train", TRAIN + "--use-pretrained",
        "{root}/pretrained-truncated/models/meliusnet22.params is not a parameter file, or it is truncated"),
    cli("train-pretrained-garbage", "train", TRAIN + "--use-pretrained",
        "{root}/pretrained-garbage/models/meliusnet22.params is not a parameter file"),
    cli("train-pretrained-other-model", "train", TRAIN + "--use-pretrained",
        "{root}/pretrained-other-model/models/meliusnet22.params does not match the model: "),
    cli("train-save-dir-is-a-file", "train", TRAIN.replace("{root}/t", "{bad}/a-file"),
        "--save-dir {bad}/a-file is a file, not a folder"),
    # predict: --params and --packed
    cli("predict-params-missing", "predict", "{image} --run {run_file} --params {bad}/missing.params",
        "--params not found: {bad}/missing.params"),
    cli("predict-params-truncated", "predict", "{image} --run {run_file} --params {bad}/truncated.params",
        "--params {bad}/truncated.params is not a parameter file, or it is truncated"),
    cli("predict-params-other-model", "predict", "{image} --run {run_file} --params {bad}/other.params",
        "--params {bad}/other.params does not match the model: "),
    cli("predict-packed-missing", "predict", "{image} --packed {bad}/nothing",
        "no packed model at {bad}/nothing: {bad}/nothing-symbol.json is missing"),
    cli("predict-packed-symbol-empty", "predict", "{image} --packed {packed_empty_symbol}",
        "{packed_empty_symbol}-symbol.json is empty"),
    cli("predict-packed-symbol-truncated", "predict", "{image} --packed {packed_truncated_symbol}",
        "{packed_truncated_symbol}-symbol.json is not a model's symbol file, or it is truncated"),
    cli("predict-packed-symbol-garbage", "predict", "{image} --packed {packed_garbage_symbol}",
        "{packed_garbage_symbol}-symbol.json is not a model's symbol file"),
    cli("predict-packed-symbol-nodes-5", "predict", "{image} --packed {packed_nodes}",
        "{packed_nodes}-symbol.json is not a model's symbol file"),
    cli("predict-packed-params-empty", "predict", "{image} --packed {packed_empty_params}",
        "{packed_empty_params}-0000.params is empty"),
    cli("predict-packed-params-truncated", "predict", "{image} --packed {packed_truncated_params}",
        "{packed_truncated_params}-0000.params is not a parameter file, or it is truncated"),
    cli("predict-packed-params-garbage", "predict", "{image} --packed {packed_garbage_params}",
        "{packed_garbage_params}-0000.params is not a parameter file"),
    cli("predict-packed-params-other-model", "predict", "{image} --packed {packed_mixed}",
        "packed model {packed_mixed}: {packed_mixed}-symbol.json and {packed_mixed}-0000.params are not one model"),
    cli("predict-packed-params-replaced", "predict", "{image} --packed {packed_replaced}",
        "{packed_replaced}-0000.params is not the file written together with {packed_replaced}-symbol.json"),
    # detection/detect.py: --params
    cli("detect-params-missing", "detect", "{image} --network ssd_300_binary_densenet28_custom --classes a,b "
        "--params {bad}/missing.params", "--params not found: {bad}/missing.params"),
    cli("detect-params-truncated", "detect", "{image} --network ssd_300_binary_densenet28_custom --classes a,b "
        "--params {bad}/truncated.params", "--params {bad}/truncated.params is not a parameter file"),
    cli("detect-params-other-model", "detect", "{image} --network ssd_300_binary_densenet28_custom --classes a,b "
        "--params {params}", "--params {params} does not match the model: "),
]


@pytest.mark.parametrize("command, args, fragments", CLI_ROWS)
def test_bad_file_on_the_command_line_exits_2_with_one_line_naming_it(made, command, args, fragments, capsys,
                                                                      monkeypatch, request):
    pretrained = request.node.callspec.id.replace("train-pretrained-", "pretrained-")
    monkeypatch.setenv("MXNET_HOME", os.path.join(made["root"], pretrained))
    argv = args.format(**made).split()
    with pytest.raises(SystemExit) as exit_info:
        run_script(MAINS[command], argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment.format(**made) in err, err


def api(name, call, error, *fragments):
    return pytest.param(call, error, fragments, id=name)


def pretrained(made, which):
    return bm.get_model("meliusnet22", stem="thumbnail", classes=3, pretrained=True,
                        root=os.path.join(made["root"], "pretrained-" + which, "models"))


def load_into_meliusnet(path, what="parameter file"):
    return files.load_parameters(bm.get_model("meliusnet22", stem="thumbnail", classes=3), path, what)


def load_states_into_meliusnet(made, path, params=None):
    net = bm.get_model("meliusnet22", stem="thumbnail", classes=3)
    files.load_parameters(net, made["params"])
    return files.load_states(mx.gluon.Trainer(net.collect_params(), "adam"), path, params=params)


load_packed = convert_module.load_packed
API_ROWS = [
    api("load_packed-missing", lambda m: load_packed(m["bad"] + "/nothing"), FileNotFoundError,
        "{bad}/nothing-symbol.json is missing"),
    api("load_packed-symbol-empty", lambda m: load_packed(m["packed_empty_symbol"]), ValueError,
        "{packed_empty_symbol}-symbol.json is empty"),
    api("load_packed-symbol-truncated", lambda m: load_packed(m["packed_truncated_symbol"]), ValueError,
        "{packed_truncated_symbol}-symbol.json is not a model's symbol file, or it is truncated (JSONDecodeError"),
    api("load_packed-symbol-garbage", lambda m: load_packed(m["packed_garbage_symbol"]), ValueError,
        "{packed_garbage_symbol}-symbol.json is not a model's symbol file"),
    api("load_packed-symbol-nodes-5", lambda m: load_packed(m["packed_nodes"]), ValueError,
        "{packed_nodes}-symbol.json is not a model's symbol file, or it is truncated (TypeError"),
    api("load_packed-params-empty", lambda m: load_packed(m["packed_empty_params"]), ValueError,
        "{packed_empty_params}-0000.params is empty"),
    api("load_packed-params-truncated", lambda m: load_packed(m["packed_truncated_params"]), ValueError,
        "{packed_truncated_params}-0000.params is not a parameter file, or it is truncated"),
    api("load_packed-params-garbage", lambda m: load_packed(m["packed_garbage_params"]), ValueError,
        "{packed_garbage_params}-0000.params is not a parameter file"),
    api("load_packed-params-other-model", lambda m: load_packed(m["packed_mixed"]), ValueError,
        "{packed_mixed}-0000.params are not one model"),
    api("load_packed-params-replaced", lambda m: load_packed(m["packed_replaced"]), ValueError,
        "{packed_replaced}-0000.params is not the file written together with"),
    api("get_model-pretrained-missing", lambda m: pretrained(m, "missing"), FileNotFoundError,
        "no weights for 'meliusnet22' at {root}/pretrained-missing/models/meliusnet22.params"),
    api("get_model-pretrained-empty", lambda m: pretrained(m, "empty"), ValueError,
        "{root}/pretrained-empty/models/meliusnet22.params is empty"),
    api("get_model-pretrained-truncated", lambda m: pretrained(m, "truncated"), ValueError,
        "{root}/pretrained-truncated/models/meliusnet22.params is not a parameter file, or it is truncated"),
    api("get_model-pretrained-garbage", lambda m: pretrained(m, "garbage"), ValueError,
        "{root}/pretrained-garbage/models/meliusnet22.params is not a parameter file"),
    api("get_model-pretrained-other-model", lambda m: pretrained(m, "other-model"), ValueError,
        "{root}/pretrained-other-model/models/meliusnet22.params does not match the model: "),
    api("load_parameters-missing", lambda m: load_into_meliusnet(m["bad"] + "/missing.params"), FileNotFoundError,
        "parameter file not found: {bad}/missing.params"),
    api("load_parameters-truncated", lambda m: load_into_meliusnet(m["bad"] + "/truncated.params"), ValueError,
        "parameter file {bad}/truncated.params is not a parameter file, or it is truncated"),
    api("load_parameters-garbage", lambda m: load_into_meliusnet(m["bad"] + "/garbage.params", "--weights"),
        ValueError, "--weights {bad}/garbage.params is not a parameter file"),
    api("load_parameters-other-model", lambda m: load_into_meliusnet(m["bad"] + "/other.params"), ValueError,
        "parameter file {bad}/other.params does not match the model: ", "(the model is meliusnet22)"),
    api("load_states-truncated", lambda m: load_states_into_meliusnet(m, m["bad"] + "/truncated.states"),
        ValueError, "trainer states {bad}/truncated.states is not a trainer-states file"),
    api("load_states-other-model", lambda m: load_states_into_meliusnet(m, m["bad"] + "/other.states"),
        ValueError, "trainer states {bad}/other.states holds the states of another model"),
    api("load_states-of-another-checkpoint", lambda m: load_states_into_meliusnet(m, m["states"], m["best"]),
        ValueError, "{best} is not the file written together with {states}"),
    api("read_run_file-garbage", lambda m: files.read_run_file(m["bad"] + "/garbage.run"), ValueError,
        "cannot read run file {bad}/garbage.run"),
    api("read_run_file-other-kinds", lambda m: files.read_run_file(m["bad"] + "/other.states"), ValueError,
        "cannot read run file {bad}/other.states"),
]


@pytest.mark.parametrize("call, error, fragments", API_ROWS)
def test_bad_file_through_the_api_raises_naming_it(made, call, error, fragments):
    with pytest.raises(error) as raised:
        call(made)
    for fragment in fragments:
        assert fragment.format(**made) in str(raised.value)


def test_good_files_of_the_sweep_load(made):
    """The fixture's own files are good: the rows fail for the file's fault alone."""
    net = load_packed(made["packed"])
    assert net(mx.nd.zeros((1, 3, 16, 16))).shape == (1, 3)
    load_states_into_meliusnet(made, made["states"], made["params"])
    for how in CORRUPTIONS:
        assert os.path.getsize(made["packed_%s_symbol" % how] + "-0000.params") > 0
