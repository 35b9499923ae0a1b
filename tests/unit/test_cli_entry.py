"""cli.entry, the `sockscope` command: after a one-shot command that took a snapshot it
flushes and ends with os._exit(status), leaving the snapshot unfreed; nothing is kept for
a caller that goes on. (The real process is run in tests/test_list_cli.py.)"""

from __future__ import annotations

import gc
import json
import socket
import subprocess
import sys

import pytest

from sockscope.cli import common, entry


class Exited(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


def run_entry(monkeypatch, *argv: str) -> tuple[str, int]:
    """(how it ended: "_exit" or "SystemExit", the status)"""
    def fake_exit(status: int) -> None:
        raise Exited(status)

    monkeypatch.setattr("os._exit", fake_exit)
    monkeypatch.setattr(sys, "argv", ["sockscope", *argv])
    try:
        entry()
    except Exited as e:
        return "_exit", e.status
    except SystemExit as e:
        return "SystemExit", int(e.code or 0)
    raise AssertionError("entry() returned")


def test_a_one_shot_snapshot_ends_with_os_exit_and_its_status(monkeypatch, capsys):
    assert run_entry(monkeypatch, "list", "--collector", "procfs", "-p", "1", "--json") == ("_exit", 0)
    assert json.loads(capsys.readouterr().out) == []
    assert common.left_for_exit is None  # reset: nothing kept for whoever goes on
    with socket.socket() as s:  # a port this process listens on: a bind would fail, status 1
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        how, status = run_entry(monkeypatch, "check", "tcp", f"127.0.0.1:{port}", "--collector", "procfs")
    assert (how, status) in (("_exit", 1), ("_exit", 3)), capsys.readouterr()
    assert common.left_for_exit is None


def test_usage_errors_and_commands_without_a_snapshot_exit_as_before(monkeypatch, capsys):
    assert run_entry(monkeypatch, "list", "--port", "x") == ("SystemExit", 2)
    assert "port" in capsys.readouterr().err
    assert common.left_for_exit is None


def test_the_collector_is_off_during_a_one_shot_command_and_on_after_it(monkeypatch, capsys):
    import sockscope.cli.list_cmd as list_cmd
    from sockscope.cli import main

    seen: list[bool] = []
    real = list_cmd.run

    def spy(args):
        seen.append(gc.isenabled())
        return real(args)

    monkeypatch.setattr(list_cmd, "run", spy)
    was = gc.isenabled()
    gc.enable()
    try:
        assert main(["list", "--collector", "procfs", "-p", "1"]) == 0
        assert seen == [False] and gc.isenabled()
    finally:
        if not was:
            gc.disable()
    capsys.readouterr()


@pytest.mark.parametrize("closed", ["2>&-", "1>&-"])
def test_a_closed_stderr_or_stdout_is_no_crash(closed):
    """Started with stderr closed: no traceback, status 0, and no warning written to stdout
    instead (it would corrupt the JSON). With stdout closed: one line, status 1."""
    cmd = f"{sys.executable} -m sockscope list --collector procfs -p 1 --json {closed}"
    out = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=60)
    if closed == "2>&-":
        assert out.returncode == 0 and json.loads(out.stdout) == [], (out.stdout, out.stderr)
    else:
        assert out.returncode == 1 and "standard output is closed" in out.stderr
