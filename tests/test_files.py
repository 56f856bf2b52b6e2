"""binary_models.files under interruption and concurrency: pairs replaced together survive SIGKILL at any
point (the old or the new pair loads, never a mix), temporaries of dead writers are removed, outputs honour
the umask, and the run lock refuses a second live run while taking over the lock of a dead one.

Killed writers are forked children of this process (a real process, killed for real, without the seconds of
a fresh ``import mxnet``)."""
import logging
import os
import random
import signal
import time

import numpy as np
import pytest
import mxnet as mx

import binary_models as bm
from binary_models import storage as files
from binary_models.storage import pairs, tempfiles
from binary_models.errors import FolderInUse
from binary_models.inference.convert import convert, load_packed, save_packed

PAIR_BYTES = 1 << 20  # large enough that a kill lands inside a write as often as between them


def write_pair(directory, generation):
    """Replace ``a.bin`` and ``b.bin`` together, both holding ``generation``."""
    targets = [os.path.join(directory, name) for name in ("a.bin", "b.bin")]
    with files.temporaries(targets) as staged:
        for path in staged:
            with open(path, "wb") as f:
                f.write(b"%08d" % generation + bytes(PAIR_BYTES))
        files.replace_together(os.path.join(directory, "ab.pair.json"), dict(zip(targets, staged)))


def read_pair(directory):
    """The generation of the pair in ``directory`` after checking it is one (finishing a killed commit)."""
    targets = [os.path.join(directory, name) for name in ("a.bin", "b.bin")]
    files.check_pair(os.path.join(directory, "ab.pair.json"), targets, "pair")
    generations = set()
    for path in targets:
        with open(path, "rb") as f:
            data = f.read()
        assert len(data) == 8 + PAIR_BYTES, path
        generations.add(int(data[:8]))
    assert len(generations) == 1, generations
    return generations.pop()


def in_child(work):
    """Run ``work()`` in a forked child (which never returns here); returns its pid."""
    pid = os.fork()
    if pid == 0:
        try:
            work()
        finally:
            os._exit(0)
    return pid


def kill(pid):
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def test_pair_survives_twenty_sigkills_at_random_points(tmp_path):
    directory = str(tmp_path)
    write_pair(directory, 0)
    last, rng = 0, random.Random(0)
    for round_ in range(1, 21):
        def write_forever(first=round_ * 1000):
            for generation in range(first, first + 1000):
                write_pair(directory, generation)
        pid = in_child(write_forever)
        time.sleep(rng.uniform(0.0, 0.15))
        kill(pid)
        generation = read_pair(directory)
        assert generation == last or generation >= round_ * 1000, (generation, last)
        last = generation
    assert last > 0  # some writes completed
    write_pair(directory, 99999)  # the next write removes what the killed writers left
    assert sorted(os.listdir(directory)) == ["a.bin", "ab.pair.json", "b.bin"]


@pytest.mark.parametrize("kill_at_rename", [1, 2])
def test_pair_killed_at_its_renames_loads_the_new_pair(tmp_path, kill_at_rename):
    directory = str(tmp_path)
    write_pair(directory, 1)

    def killed_at_a_rename():
        renames, move = [], pairs._move

        def move_then_die(source, target):
            renames.append(target)
            if len(renames) == kill_at_rename:
                os.kill(os.getpid(), signal.SIGKILL)
            move(source, target)
        pairs._move = move_then_die
        write_pair(directory, 2)

    pid = in_child(killed_at_a_rename)
    os.waitpid(pid, 0)
    assert read_pair(directory) == 2  # the commit point was passed: the reader finishes the renames
    assert sorted(os.listdir(directory)) == ["a.bin", "ab.pair.json", "b.bin"]


def test_pair_killed_before_its_record_keeps_the_old_pair(tmp_path, monkeypatch):
    directory = str(tmp_path)
    write_pair(directory, 1)

    def killed_before_the_record():
        pairs._write_record = lambda path, data: os.kill(os.getpid(), signal.SIGKILL)
        write_pair(directory, 2)

    os.waitpid(in_child(killed_before_the_record), 0)
    assert read_pair(directory) == 1
    assert len(os.listdir(directory)) == 5  # the dead writer's two temporaries, until the next write
    write_pair(directory, 3)
    assert sorted(os.listdir(directory)) == ["a.bin", "ab.pair.json", "b.bin"]


def interrupt_between_renames(monkeypatch):
    renames, move = [], pairs._move

    def move_then_interrupt(source, target):
        renames.append(target)
        if len(renames) == 2:
            raise KeyboardInterrupt
        move(source, target)
    monkeypatch.setattr(pairs, "_move", move_then_interrupt)


def small_packed(seed):
    mx.random.seed(seed)
    net = bm.QConv2D(4, 3, in_channels=4)
    net.initialize(mx.init.Normal())
    return net, convert(net)


def test_save_packed_interrupted_between_its_renames_loads_the_new_model(tmp_path, monkeypatch):
    prefix = str(tmp_path / "conv")
    x = mx.nd.random.normal(shape=(1, 4, 5, 5))
    old, packed_old = small_packed(1)
    save_packed(packed_old, prefix, (1, 4, 5, 5))
    new, packed_new = small_packed(2)
    assert not np.array_equal(old(x).asnumpy(), new(x).asnumpy())
    with monkeypatch.context() as patch:
        interrupt_between_renames(patch)
        with pytest.raises(KeyboardInterrupt):
            save_packed(packed_new, prefix, (1, 4, 5, 5))
    np.testing.assert_array_equal(load_packed(prefix)(x).asnumpy(), packed_new(x).asnumpy())
    assert sorted(os.listdir(str(tmp_path))) == ["conv-0000.params", "conv-symbol.json", "conv.pair.json"]


def trained(seed):
    """A small network and its trainer after one step (its states depend on the weights)."""
    mx.random.seed(seed)
    net = mx.gluon.nn.Dense(3, in_units=4)
    net.initialize(mx.init.Normal())
    trainer = mx.gluon.Trainer(net.collect_params(), "adam")
    with mx.autograd.record():
        loss = (net(mx.nd.ones((2, 4))) ** 2).sum()
    loss.backward()
    trainer.step(2)
    return net, trainer


def trained_checkpoint(prefix, seed):
    net, trainer = trained(seed)
    files.save_checkpoint(prefix, net, trainer)
    return net, trainer


def test_save_checkpoint_interrupted_between_its_renames_resumes_the_new_pair(tmp_path, monkeypatch):
    prefix = str(tmp_path / "run-0001")
    trained_checkpoint(prefix, 1)
    new, new_trainer = trained(2)
    with monkeypatch.context() as patch:
        interrupt_between_renames(patch)
        with pytest.raises(KeyboardInterrupt):
            files.save_checkpoint(prefix, new, new_trainer)
    net = mx.gluon.nn.Dense(3, in_units=4)
    files.load_parameters(net, prefix + ".params")
    np.testing.assert_array_equal(net.weight.data().asnumpy(), new.weight.data().asnumpy())
    trainer = mx.gluon.Trainer(net.collect_params(), "adam")
    files.load_states(trainer, prefix + ".states", params=prefix + ".params")
    assert sorted(os.listdir(str(tmp_path))) == ["run-0001.pair.json", "run-0001.params", "run-0001.states"]


def test_a_pair_record_that_cannot_be_written_is_named_and_keeps_the_old_pair(tmp_path, monkeypatch):
    prefix = str(tmp_path / "run-0001")
    old, _ = trained_checkpoint(prefix, 1)

    def disk_full(*args, **kwargs):
        raise OSError(28, os.strerror(28))
    monkeypatch.setattr(pairs.json, "dump", disk_full)  # the record is written after the files it pairs
    with pytest.raises(bm.errors.FileProblem) as err:
        files.save_checkpoint(prefix, *trained(2))
    assert str(err.value) == "cannot write %s.pair.json: %s" % (prefix, os.strerror(28))
    monkeypatch.undo()
    net = mx.gluon.nn.Dense(3, in_units=4)
    files.load_parameters(net, prefix + ".params")
    np.testing.assert_array_equal(net.weight.data().asnumpy(), old.weight.data().asnumpy())
    assert sorted(os.listdir(str(tmp_path))) == ["run-0001.pair.json", "run-0001.params", "run-0001.states"]


def test_states_beside_params_of_another_save_are_refused(tmp_path):
    prefix = str(tmp_path / "run-0001")
    trained_checkpoint(prefix, 1)
    states = open(prefix + ".states", "rb").read()
    trained_checkpoint(prefix, 2)
    with open(prefix + ".states", "wb") as f:
        f.write(states)  # the old states beside the new parameters
    net = mx.gluon.nn.Dense(3, in_units=4)
    files.load_parameters(net, prefix + ".params")
    with pytest.raises(files.FileProblem, match="run-0001.states is not the file written together with .*"
                                                "run-0001.params \\(it changed since the pair record"):
        files.load_states(mx.gluon.Trainer(net.collect_params(), "adam"), prefix + ".states",
                          params=prefix + ".params")


def dead_pid():
    pid = in_child(lambda: None)
    os.waitpid(pid, 0)
    return pid


def test_next_write_removes_temporaries_of_dead_writers_and_logs_one_line(tmp_path):
    directory = str(tmp_path)
    dead = os.path.join(directory, ".history.json.abcdefgh.%d.tmp" % dead_pid())
    legacy = os.path.join(directory, ".model-0000.params.ijklmnop.tmp")  # an older version's, no pid
    legacy_folder = os.path.join(directory, ".packing-qrstuvwx")
    live_fd, live = tempfiles.new_temporary(directory, "summary.json")  # a live writer's: kept
    users = os.path.join(directory, ".notes.tmp")  # not a name this package writes: kept
    for path in (dead, legacy, users):
        with open(path, "wb") as f:
            f.write(bytes(1000))
    os.makedirs(legacy_folder)
    old = time.time() - 2 * tempfiles.STALE_AFTER_S
    os.utime(legacy, (old, old))
    os.utime(legacy_folder, (old, old))
    logger = logging.getLogger("binary_models")
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger.addHandler(handler)
    try:
        files.write_json(os.path.join(directory, "history.json"), {})
    finally:
        logger.removeHandler(handler)
        os.close(live_fd)
    assert sorted(os.listdir(directory)) == sorted([".notes.tmp", os.path.basename(live), "history.json"])
    assert len(messages) == 1 and "removed 3 temporary file(s) of interrupted writers in %s" % directory \
        in messages[0], messages


def test_outputs_honour_the_umask(tmp_path):
    mask = os.umask(0o027)
    try:
        files.write_json(str(tmp_path / "a.json"), {})
        trained_checkpoint(str(tmp_path / "c"), 1)
        save_packed(small_packed(1)[1], str(tmp_path / "p"), (1, 4, 5, 5))
    finally:
        os.umask(mask)
    for name in ("a.json", "c.params", "c.states", "c.pair.json", "p-symbol.json", "p-0000.params"):
        assert os.stat(str(tmp_path / name)).st_mode & 0o777 == 0o640, name


def wait_until_held(lock):
    deadline = time.time() + 30
    while not (os.path.exists(lock) and open(lock).read()):
        assert time.time() < deadline, "the child never took the lock"
        time.sleep(0.01)


def test_run_lock_refuses_a_live_run_and_takes_over_a_dead_ones(tmp_path):
    lock = str(tmp_path / "run.lock")

    def hold_the_lock():
        files.lock_run(lock, "runs/x")
        time.sleep(60)

    holder = in_child(hold_the_lock)
    try:
        wait_until_held(lock)
        with pytest.raises(FolderInUse, match="runs/x is in use by another training run \\(process %d on " % holder):
            files.lock_run(lock, "runs/x")
    finally:
        kill(holder)
    files.lock_run(lock, "runs/x")  # the holder died: its lock is taken over
    assert "process %d" % os.getpid() in open(lock).read()
    files.unlock_run(lock)
    assert not os.path.exists(lock)  # a run that ends removes its lock file


def test_second_training_with_the_same_save_dir_exits_2_naming_the_first(tmp_path, capsys):
    import sys
    from binary_models.commands import train_imagenet
    from binary_models.commands.cli import run_script
    from test_train_imagenet import SMALL_RUN, write_class_images
    images, out = str(tmp_path / "images"), str(tmp_path / "run")
    rng = np.random.RandomState(0)
    write_class_images(os.path.join(images, "train"), 4, rng)
    write_class_images(os.path.join(images, "val"), 2, rng)
    lock = os.path.join(out, "run.lock")  # held by another model's run: the folder is locked, whatever the model
    holder = in_child(lambda: (files.lock_run(lock, out), time.sleep(60)))
    try:
        wait_until_held(lock)
        with pytest.raises(SystemExit) as exit_info:
            run_script(train_imagenet.main, ["--data-dir", images, "--num-epochs", "1", "--save-dir", out]
                       + SMALL_RUN)
    finally:
        kill(holder)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert "%s is in use by another training run (process %d" % (os.path.abspath(out), holder) in err, err
    assert sorted(os.listdir(out)) == ["run.lock"], "the refused run wrote no log line"


def test_packed_model_saved_repeatedly_and_sigkilled_loads_one_model_completely(tmp_path):
    """The real writer (``save_packed``) in a forked child, killed at random points: each time the model
    loads and computes what one of the two saved models computes."""
    prefix = str(tmp_path / "conv")
    x = mx.nd.random.normal(shape=(1, 4, 5, 5))
    models = [small_packed(seed)[1] for seed in (1, 2)]
    expected = [model(x).asnumpy() for model in models]
    save_packed(models[0], prefix, (1, 4, 5, 5))
    first_record, rng = open(prefix + ".pair.json").read(), random.Random(1)

    def save_forever():
        for i in range(1, 1000):
            save_packed(models[i % 2], prefix, (1, 4, 5, 5))

    for round_ in range(8):
        pid = in_child(save_forever)
        deadline = time.time() + 60
        while round_ == 0 and open(prefix + ".pair.json").read() == first_record:  # the child does write
            assert time.time() < deadline
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.5))
        kill(pid)
        output = load_packed(prefix)(x).asnumpy()
        assert sum(np.array_equal(output, e) for e in expected) == 1


# ---- pair records name files in their own folder only (issue 27, cause 1) -----------------------------------

# Records a hostile or careless writer could leave beside a pair: each names a file outside the record's
# folder, or something that is not a file name. {params}: a file of the pair; {other}: its partner; {outside}: a
# folder beside the record's. bm-predict refuses the same records with the same line (test_deploy.py).
HOSTILE_STAGED = [
    {"{params}": "../outside/victim"},
    {"{params}": "{outside}/victim"},
    {"{params}": "staged", "../outside/escaped": "staged"},
    {"{params}": "staged", "{outside}/escaped": "staged"},
    {"{params}": ".packing-abcdefgh.1/model-0000.params"},  # a link to {outside}, named like a staging folder
    {"{params}": ".packing-file0000.1/model-0000.params"},  # a file named like one
    {"{params}": ".packing-real0000.1/../../outside/victim"},
    {"{params}": ".packing-real0000.1\n/model-symbol.json"},  # not a staging folder's name
    {"{params}": "sub/victim"},
    {"{params}": ""},
    {"{params}": "."},
    {"{params}": ".."},
    {"": "staged"},
    {".": "staged"},
    {"..": "staged"},
    {"{params}": 7},
    {"{params}": None},
    {"{params}": ["staged"]},
    # a good entry moves nothing either, before the bad one or after it
    {"{other}": ".packing-real0000.1/model-symbol.json", "{params}": "../outside/victim"},
    {"{params}": "staged", "{other}": "../outside/victim"},
]


def plant_hostile_record(root, prefix, names, staged):
    """Give the pair ``prefix`` (in ``root/pack``) a record whose ``staged`` is ``staged`` ({params}, {other}:
    the base names of ``names``), beside the decoys that record points at: ``root/outside`` with its victim, a
    link named like a staging folder, a real staging folder, a subfolder, a plain staged file."""
    import json
    pack, outside = root / "pack", root / "outside"
    outside.mkdir()
    (outside / "victim").write_bytes(b"a file outside the pack")
    (outside / "model-0000.params").write_bytes(b"reached through a link")
    os.symlink(str(outside), str(pack / ".packing-abcdefgh.1"))
    (pack / ".packing-file0000.1").write_bytes(b"a file named like a staging folder")
    (pack / "staged").write_bytes(b"a staged file")
    (pack / "sub").mkdir()
    (pack / "sub" / "victim").write_bytes(b"a file in a subfolder")
    (pack / ".packing-real0000.1").mkdir()
    (pack / ".packing-real0000.1" / "model-symbol.json").write_bytes(b"a staged file in a staging folder")
    fill = dict(params=os.path.basename(names[0]), other=os.path.basename(names[1]), outside=str(outside))
    with open(prefix + ".pair.json") as f:
        record = json.load(f)
    record["staged"] = {k.format(**fill): v.format(**fill) if isinstance(v, str) else v for k, v in staged.items()}
    with open(prefix + ".pair.json", "w") as f:
        json.dump(record, f)


def tree(root):
    """Every path under ``root`` -> its bytes (files) or its target (symbolic links)."""
    found = {}
    for folder, dirs, names in os.walk(str(root)):
        for name in dirs + names:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                found[path] = "-> " + os.readlink(path)
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    found[path] = f.read()
            else:
                found[path] = "folder"
    return found


@pytest.fixture(scope="module")
def pairs_to_attack(tmp_path_factory):
    """A packed model and a checkpoint (each with its pair record), to be copied."""
    root = tmp_path_factory.mktemp("pairs")
    save_packed(small_packed(1)[1], str(root / "conv"), (1, 4, 5, 5))
    trained_checkpoint(str(root / "run-0001"), 1)
    return root


def read_packed(prefix):
    load_packed(prefix)


def resume(prefix):
    net, trainer = trained(1)
    files.load_parameters(net, prefix + ".params")
    files.load_states(trainer, prefix + ".states", params=prefix + ".params")


def write_beside(prefix):
    files.write_json(os.path.join(os.path.dirname(prefix), "history.json"), {})


# reader -> (the pair it reads, its two files)
READERS = {read_packed: ("conv", ("-0000.params", "-symbol.json")), resume: ("run-0001", (".params", ".states")),
           write_beside: ("conv", ("-0000.params", "-symbol.json"))}


@pytest.mark.parametrize("reader", list(READERS), ids=lambda reader: reader.__name__)
@pytest.mark.parametrize("staged", HOSTILE_STAGED, ids=[str(i) for i in range(len(HOSTILE_STAGED))])
def test_a_pair_record_naming_files_outside_its_folder_is_refused_and_nothing_is_moved(pairs_to_attack, tmp_path,
                                                                                       reader, staged):
    """predict --packed (load_packed), resume (load_parameters, load_states) and the clean-up before every write
    in the folder: one line, and no file anywhere moved, created or removed."""
    import shutil
    name, suffixes = READERS[reader]
    (tmp_path / "pack").mkdir()
    prefix = str(tmp_path / "pack" / name)
    for suffix in suffixes + (".pair.json",):
        shutil.copy(str(pairs_to_attack / name) + suffix, prefix + suffix)
    plant_hostile_record(tmp_path, prefix, [prefix + s for s in suffixes], staged)
    before = tree(tmp_path)
    with pytest.raises(files.FileProblem) as refused:
        reader(prefix)
    assert tree(tmp_path) == before
    message = str(refused.value)
    assert message.startswith("pair record %s.pair.json: " % prefix), message
    assert message.endswith(" is not the name of a file in its folder") and "\n" not in message.replace("\\n", "")


def test_a_pair_record_naming_a_missing_staging_folder_is_a_finished_commit(pairs_to_attack, tmp_path):
    """save_packed's record after its staging folder went: nothing left to rename, the pair loads."""
    import shutil
    for suffix in ("-0000.params", "-symbol.json", ".pair.json"):
        shutil.copy(str(pairs_to_attack / "conv") + suffix, str(tmp_path / "conv") + suffix)
    load_packed(str(tmp_path / "conv"))
    assert sorted(os.listdir(str(tmp_path))) == ["conv-0000.params", "conv-symbol.json", "conv.pair.json"]


def test_write_json_writes_numpy_scalars_as_numbers(tmp_path):
    """A metric summed from float32 losses stays a float32 under NumPy 2 (NEP 50): still a number in JSON."""
    import json
    total = 0.0 + np.float32(0.25) + np.float32(0.5)
    files.write_json(str(tmp_path / "h.json"), {"loss": [total], "count": np.int64(3), "path": tmp_path})
    with open(tmp_path / "h.json") as f:
        assert json.load(f) == {"loss": [0.75], "count": 3, "path": str(tmp_path)}
