"""Bad input to the distributed launcher: one ``error: ...`` line naming the flag or file and what is
allowed, exit status 2, nothing started; from the API, an exception naming the argument or file.

Each row runs ``python -m binary_models.launch`` in this process. ``{python}`` is this interpreter (a
command that exists), ``{tmp}`` a folder of prepared host files, ``{busy_port}`` a port a socket listens on,
``{no_ssh_path}`` a PATH without ssh."""
import os
import socket
import sys

import pytest

from binary_models.commands import cli
from binary_models.commands import launch as launch_command
from binary_models.train import launch

HOST_FILES = {
    "empty": "",
    "comments": "# no host yet\n\n   # still none\n",
    "two_words": "node1\nnode2 slots=4\n",
    "option": "-oProxyCommand=touch-me\n",
    "binary": b"\xff\xfe\x00node\n",
    "good": "node1\nnode2  # comment\n",
}

CLI_ROWS = [
    # (id, argv, fragments of the one error line)
    ("workers_zero", "-n 0 -- {python} -c pass", ["-n/--num-workers", "integer >= 1", "got 0"]),
    ("workers_not_a_number", "-n two -- {python} -c pass", ["-n/--num-workers", "got 'two'"]),
    ("workers_missing", "-- {python} -c pass", ["required", "-n/--num-workers"]),
    ("servers_zero", "-n 2 -s 0 -- {python} -c pass", ["-s/--num-servers", "integer >= 1", "got 0"]),
    ("servers_negative", "-n 2 -s -3 -- {python} -c pass", ["-s/--num-servers", "got -3"]),
    ("port_zero", "-n 1 --port 0 -- {python} -c pass", ["--port", ">= 1 and <= 65535", "got 0"]),
    ("port_too_big", "-n 1 --port 65536 -- {python} -c pass", ["--port", "<= 65535", "got 65536"]),
    ("port_in_use", "-n 1 --port {busy_port} -- {python} -c pass", ["--port {busy_port}", "cannot listen"]),
    ("timeout_zero", "-n 1 --timeout 0 -- {python} -c pass", ["--timeout", "> 0", "got 0"]),
    ("timeout_nan", "-n 1 --timeout nan -- {python} -c pass", ["--timeout", "> 0", "got nan"]),
    ("grace_negative", "-n 1 --grace -1 -- {python} -c pass", ["--grace", ">= 0", "got -1"]),
    ("unknown_flag", "-n 1 --workers 2 -- {python} -c pass", ["unrecognized arguments: --workers"]),
    ("no_command_after_dashes", "-n 2 --", ["no command", "after --"]),
    ("no_command_at_all", "-n 2", ["no command", "after --"]),
    ("command_not_found", "-n 2 -- no-such-program --flag", ["command not found: no-such-program", "PATH"]),
    ("command_not_executable", "-n 2 -- {tmp}/good", ["command not found: {tmp}/good", "executable"]),
    ("hosts_missing", "-n 2 --hosts {tmp}/missing --dry-run -- {python}",
     ["--hosts {tmp}/missing", "No such file"]),
    ("hosts_is_a_folder", "-n 2 --hosts {tmp} --dry-run -- {python}", ["--hosts {tmp}", "Is a directory"]),
    ("hosts_empty", "-n 2 --hosts {tmp}/empty --dry-run -- {python}", ["--hosts {tmp}/empty", "lists no hosts"]),
    ("hosts_only_comments", "-n 2 --hosts {tmp}/comments --dry-run -- {python}", ["{tmp}/comments", "no hosts"]),
    ("hosts_line_of_two_words", "-n 2 --hosts {tmp}/two_words --dry-run -- {python}",
     ["--hosts {tmp}/two_words line 2", "'node2 slots=4' is not a host name"]),
    ("hosts_option_as_host", "-n 2 --hosts {tmp}/option --dry-run -- {python}",
     ["{tmp}/option line 1", "is not a host name"]),
    ("hosts_binary_file", "-n 2 --hosts {tmp}/binary --dry-run -- {python}", ["{tmp}/binary", "not a text file"]),
    ("hosts_without_ssh", "-n 2 --hosts {tmp}/good -- {python} -c pass", ["--hosts {tmp}/good", "needs ssh"]),
]


@pytest.fixture
def fill(tmp_path, monkeypatch):
    for name, text in HOST_FILES.items():
        (tmp_path / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    with socket.socket() as busy:
        busy.bind(("", 0))
        busy.listen()
        no_ssh = tmp_path / "no-ssh-bin"
        no_ssh.mkdir()
        yield dict(python=sys.executable, tmp=str(tmp_path), busy_port=busy.getsockname()[1],
                   no_ssh_path=str(no_ssh))


def run_launcher(argv, capsys):
    with pytest.raises(SystemExit) as exit:
        sys.exit(cli.run_script(launch_command.main, argv))
    return exit.value.code, capsys.readouterr().err


@pytest.mark.parametrize("argv, fragments", [row[1:] for row in CLI_ROWS], ids=[row[0] for row in CLI_ROWS])
def test_bad_command_line_is_one_error_line_and_status_2(argv, fragments, fill, capsys, monkeypatch):
    if "needs ssh" in fragments:  # a PATH without ssh (the command is given by its full path)
        monkeypatch.setenv("PATH", fill["no_ssh_path"])
    status, err = run_launcher(argv.format(**fill).split(), capsys)
    assert status == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment.format(**fill) in lines[0]


API_ROWS = [
    # (id, call, exception type, fragments)
    ("plan_zero_workers", lambda tmp: launch.plan(0, 1), ValueError, ["num_workers", ">= 1", "got 0"]),
    ("plan_zero_servers", lambda tmp: launch.plan(1, 0), ValueError, ["num_servers", "got 0"]),
    ("plan_workers_not_int", lambda tmp: launch.plan("2", 1), ValueError, ["num_workers", "got '2'"]),
    ("read_hosts_missing", lambda tmp: launch.read_hosts(os.path.join(tmp, "missing")), cli.UsageError,
     ["missing", "No such file"]),
    ("read_hosts_empty", lambda tmp: launch.read_hosts(os.path.join(tmp, "empty")), cli.UsageError,
     ["empty", "lists no hosts"]),
    ("find_command_empty", lambda tmp: launch.find_command([]), cli.UsageError, ["no command"]),
]


@pytest.mark.parametrize("call, error, fragments", [row[1:] for row in API_ROWS], ids=[row[0] for row in API_ROWS])
def test_bad_api_arguments_raise_naming_the_argument(call, error, fragments, fill):
    with pytest.raises(error) as raised:
        call(fill["tmp"])
    for fragment in fragments:
        assert fragment in str(raised.value)


def test_good_host_file_with_comments_is_read(fill):
    assert launch.read_hosts(os.path.join(fill["tmp"], "good")) == ["node1", "node2"]
