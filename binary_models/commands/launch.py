"""``bm launch``: start a distributed job on this machine or over ssh (see
:mod:`binary_models.train.launch`)::

    bm launch -n 2 -s 2 -- bm train --kvstore dist_sync --dataset digits --model meliusnet22
"""
import argparse
import os
import shlex
import shutil
import sys

from ..train import launch
from . import cli


def main(argv=None):
    parser = cli.ArgumentParser(prog="bm launch", description=launch.__doc__.split("\n\n")[0],
                                usage="%(prog)s -n WORKERS [-s SERVERS] [--hosts FILE] -- COMMAND ...")
    parser.add_argument("-n", "--num-workers", type=cli.positive_int, required=True, help="number of worker processes")
    parser.add_argument("-s", "--num-servers", type=cli.positive_int, default=None,
                        help="number of servers (default: workers)")
    parser.add_argument("--hosts", help="host file: start servers and workers on these hosts over ssh")
    parser.add_argument("--port", type=cli.number(int, minimum=1, maximum=65535),
                        help="scheduler port (default: a free one)")
    parser.add_argument("--timeout", type=cli.positive_float, help="stop everything after this many seconds "
                        "and exit with status 124")
    parser.add_argument("--grace", type=cli.non_negative_float, default=launch.DEFAULT_GRACE_S,
                        help="seconds between forwarding a signal (or stopping the job) and killing what is left "
                             "(more than the workers' --stop-grace)")
    parser.add_argument("--dry-run", action="store_true", help="print the processes instead of starting them "
                        "(the source of the watcher that runs each remote command is shown as REMOTE_WATCHER)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- followed by the command every process runs")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    launch.find_command(command)
    hosts = launch.read_hosts(args.hosts) if args.hosts else None
    if hosts and not args.dry_run and shutil.which("ssh") is None:
        raise cli.UsageError("--hosts %s: starting processes on other hosts needs ssh, which is not on PATH"
                             % args.hosts)
    if args.port and not args.dry_run:
        launch.check_port(args.port)
    processes = launch.plan(args.num_workers, args.num_servers or args.num_workers, hosts, args.port)
    if args.dry_run:
        for role, host, env in processes:
            line = launch.ssh_command(host, env, command, os.getcwd(), args.grace, "REMOTE_WATCHER") if host else (
                ["env"] + ["%s=%s" % kv for kv in sorted(env.items())] + command)
            print("%-9s %s" % (role, " ".join(shlex.quote(c) for c in line)))
        return 0
    return launch.run(processes, command, args.timeout, args.grace)


if __name__ == "__main__":
    sys.exit(cli.run_script(main))
