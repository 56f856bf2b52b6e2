"""Start a job on MXNet's parameter-server kvstore (ps-lite, inside the pip wheel).

    bm launch -n WORKERS -s SERVERS [--hosts FILE] -- bm train \\
        --kvstore dist_sync ...

Every process runs the same command; the ``DMLC_*`` environment tells it its role: one scheduler, ``-s``
servers and ``-n`` workers (``import mxnet`` turns a server or scheduler process into its service loop).
Without ``--hosts`` all of them run on this machine; with a host file (one host per line, ``#`` comments)
the scheduler runs here and servers and workers are spread round-robin over the hosts with ssh (passwordless
ssh and the same working directory and Python environment on every host are assumed, as with MXNet's
``dmlc-tracker``).

The launcher watches every process. The job ends when all workers have succeeded (the scheduler and servers
then end by themselves), or at the first non-zero exit of any role: the launcher stops the others and exits
with that status. SIGINT, SIGTERM, SIGHUP and SIGUSR1 are forwarded to the workers (which agree on a step
to stop at, and the first writes a checkpoint: :mod:`.stopping`); the scheduler and servers, whose kvstore the
workers need until then, ignore these signals (a cluster may send them to every process of a job) and are
killed once the workers have ended. Whatever still runs ``--grace`` seconds after the signal is killed, and
the launcher exits with 128 + the signal number. ``--timeout`` stops the job
the same way and exits with 124.
"""
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

from ..errors import UsageError

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1)
DEFAULT_GRACE_S = 25.0  # the workers' --stop-grace (20 s) and a margin; below Slurm's 30 s
POLL_S = 0.1
KILL_WAIT_S = 5  # for the remote watchers of killed commands to end (their ssh connections with them)
SETTLE_S = 30  # after the last worker: time for the servers and the scheduler to end by themselves
TIMEOUT_STATUS = 124  # as timeout(1)
# [user@]host, an IPv4 or IPv6 address, or an ssh_config alias; never an option ("-oProxyCommand=...").
HOST_NAME = re.compile(r"^[A-Za-z0-9_.@%:\[\]][A-Za-z0-9_.@%:\[\]-]*$")

# The remote end of every ssh process. It runs the command in its own process group and forwards to that
# group each signal number the launcher writes to ssh's stdin; the end of stdin (the launcher stopped it or
# died, or the connection dropped) is SIGTERM, then SIGKILL after the grace period. Without it, a remote
# command outlives the local ssh: with no tty, sshd sends it no signal when the connection goes. ``ssh -tt``
# would give it a SIGHUP, but it forwards no other signal, merges stderr into stdout and rewrites line ends;
# this watcher needs only the Python that every host has for the command itself.
REMOTE_WATCHER = r"""
import os, signal, subprocess, sys, threading, time
grace, command = float(sys.argv[1]), sys.argv[2:]
stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1)
def ignore_stops():
    for s in stops:
        signal.signal(s, signal.SIG_IGN)
try:
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True,
                             preexec_fn=None if os.environ.get("DMLC_ROLE") == "worker" else ignore_stops)
except OSError as err:
    print("error: %s: cannot run %s: %s" % (os.uname()[1], command[0], err.strerror), file=sys.stderr)
    sys.exit(127)
def group(signum, frame=None):
    try:
        os.killpg(child.pid, signum)
    except OSError:
        pass
def watch():
    for line in sys.stdin:
        if line.strip().isdigit():
            group(int(line))
    group(signal.SIGTERM)
    time.sleep(grace)
    group(signal.SIGKILL)
for s in stops:
    signal.signal(s, group)
threading.Thread(target=watch, daemon=True).start()
code = child.wait()
group(signal.SIGKILL)
sys.exit(128 - code if code < 0 else code)
"""


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def check_port(port):
    """Refuse a scheduler port that cannot be listened on here (ps-lite's scheduler would abort on it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as ZeroMQ does: TIME_WAIT is no obstacle
        try:
            s.bind(("", port))
        except OSError as err:
            raise UsageError("port %d: the scheduler cannot listen on it (%s)" % (port, err.strerror), "port")


def local_ip():
    """The address other hosts reach this machine at (the interface of the default route)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def read_hosts(path):
    """The hosts of a host file: one per line, ``#`` starts a comment. A missing or unreadable file, a
    line that is not a host name, or no host at all raises :class:`UsageError` naming the file."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not a text file"
        raise UsageError("hosts %s: cannot read it (%s)" % (path, reason), "hosts")
    hosts = []
    for number, line in enumerate(lines, 1):
        host = line.split("#")[0].strip()
        if host and not HOST_NAME.match(host):
            raise UsageError("hosts %s line %d: %r is not a host name (one [user@]host per line; "
                                 "# starts a comment)" % (path, number, host), "hosts")
        if host:
            hosts.append(host)
    if not hosts:
        raise UsageError("hosts %s lists no hosts (one [user@]host per line; # starts a comment)" % path, "hosts")
    return hosts


def find_command(command):
    """Refuse an empty command or one whose program is neither on PATH nor an executable file."""
    if not command:
        raise UsageError("no command: give the command every process runs after -- "
                             "(e.g. -- python train_imagenet.py --kvstore dist_sync ...)")
    if shutil.which(command[0]) is None:
        raise UsageError("command not found: %s (the program after -- must be on PATH or a path to an "
                             "executable file)" % command[0])


def plan(num_workers, num_servers, hosts=None, port=None, root=None):
    """The processes to start: a list of ``(role, host or None, environment)``."""
    for name, value in (("num_workers", num_workers), ("num_servers", num_servers)):
        if not isinstance(value, int) or value < 1:
            raise ValueError("%s must be an integer >= 1, got %r" % (name, value))
    root = root or (local_ip() if hosts else "127.0.0.1")
    common = {"DMLC_PS_ROOT_URI": root, "DMLC_PS_ROOT_PORT": str(port or free_port()),
              "DMLC_NUM_SERVER": str(num_servers), "DMLC_NUM_WORKER": str(num_workers)}
    processes = [("scheduler", None, dict(common, DMLC_ROLE="scheduler"))]
    roles = ["server"] * num_servers + ["worker"] * num_workers
    for i, role in enumerate(roles):
        host = hosts[i % len(hosts)] if hosts else None
        env = dict(common, DMLC_ROLE=role)
        if host:
            env["DMLC_NODE_HOST"] = host
        processes.append((role, host, env))
    return processes


def ssh_command(host, env, command, cwd, grace=DEFAULT_GRACE_S, watcher=REMOTE_WATCHER):
    """ssh to ``host`` running ``command`` in ``cwd`` with ``env`` under the ``watcher`` source
    (:data:`REMOTE_WATCHER`; ``--dry-run`` shows its name instead)."""
    exports = " ".join("%s=%s" % (k, shlex.quote(v)) for k, v in sorted(env.items()))
    watched = [sys.executable, "-c", watcher, "%g" % grace] + list(command)
    remote = "cd %s && exec env %s %s" % (shlex.quote(cwd), exports, " ".join(shlex.quote(c) for c in watched))
    return ["ssh", "-o", "StrictHostKeyChecking=no", "-o", "BatchMode=yes", host, remote]


def _end_with_launcher(role):
    """In a local child before it runs its command (Linux): SIGTERM when the launcher dies, even of a
    SIGKILL that leaves it no chance to stop the job (prctl PR_SET_PDEATHSIG); SIGKILL for a scheduler or
    server, which ignores the stop signals (the workers need it until they end)."""
    if role != "worker":
        for s in FORWARDED_SIGNALS:
            signal.signal(s, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM if role == "worker" else signal.SIGKILL)


def exit_status(returncode):
    """A shell's status for a Popen return code: a process killed by signal N is 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


class Job:
    """The processes of a job. Each is the leader of its own process group, so that a signal reaches what
    it started too (DataLoader workers, a shell's children), and whatever is left in its group when it
    exits is killed at once. An ssh process instead gets the signal numbers on its stdin, for its
    :data:`REMOTE_WATCHER`."""

    def __init__(self, grace=DEFAULT_GRACE_S):
        self.grace = grace
        self.processes = []  # (name, Popen, over ssh)
        self.signals = []  # signals received, appended by the handler of :meth:`handle_signals`
        self.reaped = set()

    def start(self, processes, command, cwd=None):
        cwd = cwd or os.getcwd()
        counts = {}
        for role, host, env in processes:
            index = counts[role] = counts.get(role, -1) + 1
            name = role if role == "scheduler" else "%s %d" % (role, index)
            if host:
                popen = subprocess.Popen(ssh_command(host, env, command, cwd, self.grace), stdin=subprocess.PIPE,
                                         start_new_session=True)
            else:
                popen = subprocess.Popen(command, env=dict(os.environ, **env), cwd=cwd, stdin=subprocess.DEVNULL,
                                         start_new_session=True, preexec_fn=lambda role=role: _end_with_launcher(role))
            self.processes.append((name, popen, bool(host)))

    def handle_signals(self):
        """Record SIGINT, SIGTERM and SIGHUP for :meth:`wait` (which forwards them) instead of dying of them;
        returns the previous handlers, for :meth:`restore_signals`."""
        def record(signum, frame):
            self.signals.append(signum)
        if threading.current_thread() is not threading.main_thread():
            return {}  # only the main thread may handle signals
        return {s: signal.signal(s, record) for s in FORWARDED_SIGNALS}

    @staticmethod
    def restore_signals(previous):
        for s, handler in previous.items():
            signal.signal(s, handler)

    def poll(self, popen):
        """``popen``'s return code, or None while it runs; once it has exited, its group's leftovers are killed."""
        code = popen.poll()
        if code is not None and popen.pid not in self.reaped:
            self.reaped.add(popen.pid)
            self._signal_group(popen, signal.SIGKILL)
        return code

    def running(self):
        return [(name, p, ssh) for name, p, ssh in self.processes if self.poll(p) is None]

    @staticmethod
    def _signal_group(popen, signum):
        try:
            os.killpg(popen.pid, signum)
        except OSError:  # the group is gone already
            pass

    def send(self, signum, workers=None):
        """Forward ``signum`` to every running process (``workers`` True: the workers only, False: the
        others): to its group, or over ssh to its remote watcher."""
        for name, popen, ssh in self.running():
            if workers is not None and name.startswith("worker") != workers:
                continue
            if not ssh:
                self._signal_group(popen, signum)
                continue
            try:
                popen.stdin.write(b"%d\n" % signum)
                popen.stdin.flush()
            except OSError:  # ssh is gone
                pass

    def stop(self, signum=signal.SIGTERM):
        """Send ``signum`` to the workers, give them ``grace`` seconds to end (a further signal to the launcher
        cuts it short), then kill what is left, the scheduler and servers included."""
        received = len(self.signals)
        self.send(signum, workers=True)
        deadline = time.monotonic() + self.grace
        while time.monotonic() < deadline and len(self.signals) == received and any(
                name.startswith("worker") for name, popen, ssh in self.running()):
            time.sleep(POLL_S)
        self.send(signal.SIGKILL)  # over ssh: the remote watchers kill their commands, and end
        deadline = time.monotonic() + KILL_WAIT_S
        while any(ssh for name, popen, ssh in self.running()) and time.monotonic() < deadline:
            time.sleep(POLL_S)
        for name, popen, ssh in self.processes:
            if ssh and not popen.stdin.closed:
                try:
                    popen.stdin.close()  # the remote watcher sees the end of its input and stops the command
                except OSError:
                    pass
            if self.poll(popen) is None:
                self._signal_group(popen, signal.SIGKILL)
        for name, popen, ssh in self.processes:
            popen.wait()
            self.poll(popen)

    def failure(self):
        """``(name, exit status)`` of an exited process with a non-zero status (workers first), or None."""
        order = sorted(self.processes, key=lambda item: not item[0].startswith("worker"))
        for name, popen, ssh in order:
            code = self.poll(popen)
            if code:
                return name, exit_status(code)
        return None

    def wait(self, timeout=None):
        """Wait for the job to end: returns 0, the first non-zero status of a process, 128 + a signal the
        launcher received (forwarded), or 124 after ``timeout`` seconds; nothing of the job runs after it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        settle = None
        while True:
            if self.signals:
                signum = self.signals[0]
                say("got %s: stopping the job" % signal.Signals(signum).name)
                self.stop(signum)
                return 128 + signum
            failed = self.failure()
            if failed:
                say("%s exited with status %d: stopping the job" % failed)
                self.stop()
                return failed[1]
            if not self.running():
                return 0
            workers = [p for name, p, ssh in self.processes if name.startswith("worker")]
            if all(p.returncode == 0 for p in workers):
                # Servers and the scheduler end once every worker has finalised its kvstore.
                settle = settle or time.monotonic() + SETTLE_S
                if time.monotonic() > settle:
                    say("%s still running %d s after the last worker: stopping it"
                        % (", ".join(name for name, p, ssh in self.running()), SETTLE_S))
                    self.stop()
                    return 0
            if deadline is not None and time.monotonic() > deadline:
                say("--timeout %g: the job ran longer than %g s: stopping it" % (timeout, timeout), "error")
                self.stop()
                return TIMEOUT_STATUS
            time.sleep(POLL_S)


def say(message, prefix="launch"):
    try:
        print("%s: %s" % (prefix, message), file=sys.stderr, flush=True)
    except OSError:  # stderr is gone (a closed pipe): the job must still be stopped
        pass


def run(processes, command, timeout=None, grace=DEFAULT_GRACE_S, cwd=None):
    """Start ``processes`` (from :func:`plan`) running ``command`` and wait for the job (:meth:`Job.wait`),
    forwarding SIGINT, SIGTERM and SIGHUP to it; returns the launcher's exit status. Nothing it started
    outlives it, whatever happens in the launcher."""
    job = Job(grace)
    previous = job.handle_signals()
    try:
        try:
            job.start(processes, command, cwd)
        except OSError as err:  # e.g. a command that is not executable after all
            raise UsageError("cannot start %s: %s" % (command[0], err.strerror))
        return job.wait(timeout)
    finally:
        if any(job.poll(p) is None for name, p, ssh in job.processes):
            job.stop()
        Job.restore_signals(previous)
