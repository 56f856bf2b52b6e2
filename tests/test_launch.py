"""The distributed launcher as a process: signals reach everything it started, the first failing role (or
a timeout) ends the job with its status, and nothing it started outlives it.

The launcher runs from a stub package (no ``import mxnet``: it starts in milliseconds) and the roles are
tiny Python scripts that record their pids and those of a grandchild; only two tests start MXNet."""
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from binary_models.train import launch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# binary_models.launch without binary_models/__init__.py, which imports MXNet and GluonCV (seconds).
LAUNCHER = [sys.executable, "-c", "import sys, types; package = types.ModuleType('binary_models'); "
            "package.__path__ = [%r]; sys.modules['binary_models'] = package; "
            "from binary_models.commands import cli, launch; sys.exit(cli.run_script(launch.main))"
            % os.path.join(REPO, "binary_models")]

# A role: records its pid and a grandchild's (in its process group) in the folder argv[1], then behaves as
# argv[2] says: 'sleep', 'stubborn' (ignores SIGTERM), or '<role>=<status>' (that role exits with status).
ROLE = textwrap.dedent("""
    import os, signal, subprocess, sys, time
    folder, behaviour = sys.argv[1], sys.argv[2]
    role = os.environ["DMLC_ROLE"]
    grandchild = subprocess.Popen(["sleep", "60"])
    for name, pid in ((role, os.getpid()), ("grandchild", grandchild.pid)):
        open(os.path.join(folder, "%s-%d" % (name, pid)), "w").close()
    if behaviour == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if behaviour.startswith(role + "="):
        sys.exit(int(behaviour.split("=")[1]))
    time.sleep(60)
""")


@pytest.fixture
def role(tmp_path):
    script = tmp_path / "role.py"
    script.write_text(ROLE)
    folder = tmp_path / "pids"
    folder.mkdir()
    return lambda behaviour: ([sys.executable, str(script), str(folder), behaviour], folder)


def alive(pid):
    """Whether ``pid`` runs (a zombie, left for a PID 1 that does not reap, counts as gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def pids(folder):
    return [int(name.rsplit("-", 1)[1]) for name in os.listdir(str(folder))]


def wait_for_files(folder, count, timeout=20):
    deadline = time.time() + timeout
    while len(os.listdir(str(folder))) < count:
        assert time.time() < deadline, "only %s started" % sorted(os.listdir(str(folder)))
        time.sleep(0.05)


def launch_process(args, env=None):
    return subprocess.Popen(LAUNCHER + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)


def finish(process, timeout=20):
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    return process.returncode, err


def assert_all_gone(folder, timeout=3):
    """Every role and grandchild recorded in ``folder`` has ended (within ``timeout``: a remote watcher
    may still be stopping its command when the launcher has ended)."""
    deadline = time.time() + timeout
    while any(alive(pid) for pid in pids(folder)) and time.time() < deadline:
        time.sleep(0.05)
    left = [name for name in os.listdir(str(folder)) if alive(int(name.rsplit("-", 1)[1]))]
    for name in left:
        os.kill(int(name.rsplit("-", 1)[1]), signal.SIGKILL)
    assert not left, "still running: %s" % left


@pytest.mark.parametrize("signum, behaviour", [(signal.SIGINT, "sleep"), (signal.SIGTERM, "stubborn"),
                                               (signal.SIGHUP, "sleep")], ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_signal_to_the_launcher_stops_every_process_and_exits_128_plus_signal(role, signum, behaviour):
    """The signal reaches each role's process group (so the grandchildren too); roles that ignore it are
    killed after --grace."""
    command, folder = role(behaviour)
    process = launch_process(["-n", "2", "-s", "1", "--grace", "1", "--"] + command)
    wait_for_files(folder, 8)  # scheduler, server, 2 workers, and a grandchild each
    tic = time.time()
    process.send_signal(signum)
    status, err = finish(process)
    assert status == 128 + signum, err
    assert "got %s: stopping the job" % signal.Signals(signum).name in err
    assert time.time() - tic < 5
    assert_all_gone(folder)


@pytest.mark.parametrize("failing, status", [("worker", 3), ("scheduler", 5), ("server", 7)])
def test_any_role_failing_ends_the_job_at_once_with_its_status(role, failing, status):
    command, folder = role("%s=%d" % (failing, status))
    tic = time.time()
    exit_status, err = finish(launch_process(["-n", "2", "-s", "1", "--"] + command))
    assert exit_status == status, err
    assert "%s" % failing in err and "exited with status %d: stopping the job" % status in err
    assert time.time() - tic < 8
    assert_all_gone(folder)


def test_timeout_stops_the_job_with_status_124(role):
    command, folder = role("sleep")
    tic = time.time()
    status, err = finish(launch_process(["-n", "1", "-s", "1", "--timeout", "1", "--"] + command))
    assert status == 124
    assert "error: --timeout 1: the job ran longer than 1 s" in err
    assert time.time() - tic < 6
    assert_all_gone(folder)


@pytest.fixture
def fake_ssh(tmp_path):
    """A folder with an ``ssh`` that runs the remote command here (with sh), for PATH."""
    folder = tmp_path / "bin"
    folder.mkdir()
    ssh = folder / "ssh"
    ssh.write_text("#!%s\nimport os, sys\nos.execvp('sh', ['sh', '-c', sys.argv[-1]])\n" % sys.executable)
    ssh.chmod(0o755)
    hosts = tmp_path / "hosts"
    hosts.write_text("node1\nnode2\n")
    return dict(os.environ, PATH="%s:%s" % (folder, os.environ["PATH"])), str(hosts)


def test_over_ssh_a_signal_reaches_the_remote_commands(role, fake_ssh):
    env, hosts = fake_ssh
    command, folder = role("sleep")
    process = launch_process(["-n", "2", "-s", "1", "--hosts", hosts, "--"] + command, env)
    wait_for_files(folder, 8)
    process.send_signal(signal.SIGINT)
    status, err = finish(process)
    assert status == 128 + signal.SIGINT, err
    assert_all_gone(folder)


def test_over_ssh_the_remote_commands_end_when_the_launcher_is_killed(role, fake_ssh):
    """SIGKILL leaves the launcher no chance to stop anything: the remote watchers see the end of their
    input and stop their commands (the scheduler, which runs here, is stopped by the test)."""
    env, hosts = fake_ssh
    command, folder = role("sleep")
    process = launch_process(["-n", "1", "-s", "1", "--grace", "1", "--hosts", hosts, "--"] + command, env)
    wait_for_files(folder, 6)
    process.kill()
    process.wait()  # not communicate(): the remote commands hold its stdout and stderr until they end
    scheduler = [int(name.split("-")[1]) for name in os.listdir(str(folder)) if name.startswith("scheduler")][0]
    os.killpg(scheduler, signal.SIGKILL)
    assert_all_gone(folder, timeout=5)


def test_local_roles_end_when_the_launcher_is_killed(role):
    """SIGKILL of the launcher: each local role gets SIGTERM from the kernel (its parent-death signal)."""
    command, folder = role("sleep")
    process = launch_process(["-n", "2", "-s", "1", "--"] + command)
    wait_for_files(folder, 8)
    process.kill()
    process.wait()
    roles = [pid for name, pid in zip(os.listdir(str(folder)), pids(folder)) if not name.startswith("grandchild")]
    deadline = time.time() + 3
    while any(alive(pid) for pid in roles) and time.time() < deadline:
        time.sleep(0.05)
    left = [pid for pid in roles if alive(pid)]
    for pid in pids(folder):
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    assert len(roles) == 4 and not left


def test_scheduler_that_cannot_bind_its_port_ends_the_job(tmp_path):
    """ps-lite's scheduler fails on a port in use (the command line refuses such a --port before starting:
    this is the race where it was taken in between); the workers, which would wait for it forever, are
    stopped."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # Only the scheduler imports MXNet (and so becomes ps-lite's scheduler); the others wait.
        command = [sys.executable, "-c", "import os, time\nif os.environ['DMLC_ROLE'] != 'scheduler': "
                   "time.sleep(60)\nimport mxnet"]
        tic = time.time()
        assert launch.run(launch.plan(2, 1, port=port), command, timeout=60, grace=1) == 1
    assert time.time() - tic < 30


def test_worker_with_a_bad_model_ends_the_distributed_job_with_status_2(tmp_path):
    """The real case: train_imagenet.py workers on dist_sync fail after joining the kvstore (the model is
    built after the data, which needs the worker's rank); each prints its error and exits at once instead
    of waiting at the kvstore's final barrier, and the launcher ends the job with status 2."""
    command = [sys.executable, os.path.join(REPO, "train_imagenet.py"), "--dataset", "digits", "--model",
               "no_such_model", "--kvstore", "dist_sync", "--no-progress", "--save-dir", str(tmp_path / "out")]
    tic = time.time()
    result = subprocess.run(LAUNCHER + ["-n", "2", "-s", "1", "--timeout", "100", "--"] + command,
                            capture_output=True, text=True, cwd=str(tmp_path), timeout=120,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 2, result.stderr[-3000:]
    assert "error: --model: unknown model 'no_such_model'" in result.stderr
    assert "Traceback" not in result.stderr
    assert "worker" in result.stderr and "exited with status 2" in result.stderr
    print("job ended in %.1f s" % (time.time() - tic))
