"""Start a job on MXNet's parameter-server kvstore (ps-lite, inside the pip wheel).

    python -m binary_models.launch -n WORKERS -s SERVERS [--hosts FILE] -- python train_imagenet.py \\
        --kvstore dist_sync ...

Every process runs the same command; the ``DMLC_*`` environment tells it its role: one scheduler, ``-s``
servers and ``-n`` workers (``import mxnet`` turns a server or scheduler process into its service loop).
Without ``--hosts`` all of them run on this machine; with a host file (one host per line, ``#`` comments)
the scheduler runs here and servers and workers are spread round-robin over the hosts with ssh (passwordless
ssh and the same working directory and Python environment on every host are assumed, as with MXNet's
``dmlc-tracker``). The launcher returns the first non-zero exit status of a worker, or 0.
"""
import argparse
import os
import shlex
import signal
import socket
import subprocess
import sys
import time


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def local_ip():
    """The address other hosts reach this machine at (the interface of the default route)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def read_hosts(path):
    with open(path) as f:
        hosts = [line.split("#")[0].strip() for line in f]
    hosts = [h for h in hosts if h]
    if not hosts:
        raise SystemExit("error: host file %s lists no hosts" % path)
    return hosts


def plan(num_workers, num_servers, hosts=None, port=None, root=None):
    """The processes to start: a list of ``(role, host or None, environment)``."""
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


def ssh_command(host, env, command, cwd):
    exports = " ".join("%s=%s" % (k, shlex.quote(v)) for k, v in sorted(env.items()))
    remote = "cd %s && env %s %s" % (shlex.quote(cwd), exports, " ".join(shlex.quote(c) for c in command))
    return ["ssh", "-o", "StrictHostKeyChecking=no", "-o", "BatchMode=yes", host, remote]


def start(processes, command, cwd=None):
    cwd = cwd or os.getcwd()
    started = []
    for role, host, env in processes:
        if host:
            popen = subprocess.Popen(ssh_command(host, env, command, cwd))
        else:
            popen = subprocess.Popen(command, env=dict(os.environ, **env), cwd=cwd)
        started.append((role, popen))
    return started


def stop(started):
    for _, popen in started:
        if popen.poll() is None:
            popen.send_signal(signal.SIGTERM)
    for _, popen in started:
        try:
            popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            popen.kill()


def wait_for_workers(started, timeout=None):
    """Wait for every worker; stop all processes as soon as one worker fails (or at ``timeout``)."""
    workers = [p for role, p in started if role == "worker"]
    deadline = None if timeout is None else time.time() + timeout
    while True:
        codes = [p.poll() for p in workers]
        failed = [c for c in codes if c not in (None, 0)]
        if failed or all(c == 0 for c in codes):
            break
        if deadline is not None and time.time() > deadline:
            failed = [124]
            break
        time.sleep(0.2)
    if failed:
        stop(started)
        return failed[0]
    # Servers and the scheduler end once every worker has finalised its kvstore.
    for _, popen in started:
        try:
            popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    stop(started)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m binary_models.launch", description=__doc__.split("\n\n")[0],
                                     usage="%(prog)s -n WORKERS [-s SERVERS] [--hosts FILE] -- COMMAND ...")
    parser.add_argument("-n", "--num-workers", type=int, required=True, help="number of worker processes")
    parser.add_argument("-s", "--num-servers", type=int, default=None, help="number of servers (default: workers)")
    parser.add_argument("--hosts", help="host file: start servers and workers on these hosts over ssh")
    parser.add_argument("--port", type=int, help="scheduler port (default: a free one)")
    parser.add_argument("--timeout", type=float, help="stop everything after this many seconds")
    parser.add_argument("--dry-run", action="store_true", help="print the processes instead of starting them")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- followed by the command every process runs")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    if args.num_workers < 1 or (args.num_servers is not None and args.num_servers < 1):
        parser.error("-n and -s must be at least 1")
    hosts = read_hosts(args.hosts) if args.hosts else None
    processes = plan(args.num_workers, args.num_servers or args.num_workers, hosts, args.port)
    if args.dry_run:
        for role, host, env in processes:
            line = ssh_command(host, env, command, os.getcwd()) if host else (
                ["env"] + ["%s=%s" % kv for kv in sorted(env.items())] + command)
            print("%-9s %s" % (role, " ".join(shlex.quote(c) for c in line)))
        return 0
    started = start(processes, command)
    try:
        return wait_for_workers(started, args.timeout)
    except KeyboardInterrupt:
        stop(started)
        return 130


if __name__ == "__main__":
    sys.exit(main())
