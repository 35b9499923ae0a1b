"""`sockscope kill`: destroys exactly the selected socket (its peer sees a reset),
signals exactly the selected process, refuses without confirmation and under
--readonly. Real sockets and processes in a private namespace."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

SOCKSCOPE = [sys.executable, "-m", "sockscope"]
P = 18380

pytestmark = pytest.mark.root


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SOCKSCOPE, *args], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                          env={**os.environ, **(env or {})})


def two_connections(server, client):
    lst = server.socket("tcp", 4)
    assert server.bind(lst, "127.0.0.1", P) is None and server.listen(lst) is None
    c1 = client.socket("tcp", 4)
    port1 = client.connect(c1, "127.0.0.1", P)[1]
    a1 = server.accept(lst)
    c2 = client.socket("tcp", 4)
    client.connect(c2, "127.0.0.1", P)
    a2 = server.accept(lst)
    return lst, (c1, port1, a1), (c2, a2)


def _alive(pid: int) -> bool:
    """Running (not a zombie), without reaping it: the holder fixture reaps it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_kill_destroys_exactly_the_selected_socket(netns, holders) -> None:
    server, client = holders(0), holders(0)
    lst, (c1, port1, a1), (c2, a2) = two_connections(server, client)
    # Select the server side of the first connection by PID:FD.
    spec = f"{server.call('ping')}:{server.fileno(a1)}"
    r = run("kill", spec, "--yes", "--netns", netns.name)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("Will destroy 1 socket(s)") and f"127.0.0.1:{port1}" in r.stdout
    assert "will be reset" in r.stdout and "destroyed:" in r.stdout
    assert client.attempt("send", c1, "x") in ("ECONNRESET", "EPIPE")  # the peer saw a reset
    assert client.attempt("send", c2, "x") is None  # the other connection is untouched
    assert server.attempt("send", a2, "y") is None
    assert server.listen(lst) is None  # the listener is still there (listen() again is a no-op)
    out = netns.ss("-tanH", "state", "listening")
    assert f"127.0.0.1:{P}" in out


def test_kill_refuses_without_confirmation(netns, holders) -> None:
    server, client = holders(0), holders(0)
    lst, (c1, _p, a1), _ = two_connections(server, client)
    spec = f"{server.call('ping')}:{server.fileno(a1)}"
    r = run("kill", spec, "--netns", netns.name)  # stdin is not a terminal and no --yes
    assert r.returncode == 1 and "nothing was done" in r.stderr
    assert "Will destroy 1 socket(s)" in r.stdout  # the preview is still shown
    assert client.attempt("send", c1, "x") is None


def test_kill_does_nothing_under_readonly(netns, holders) -> None:
    server, client = holders(0), holders(0)
    lst, (c1, _p, a1), _ = two_connections(server, client)
    spec = f"{server.call('ping')}:{server.fileno(a1)}"
    for args, env in ((("--readonly",), None), ((), {"SOCKSCOPE_READONLY": "1"})):
        r = run("kill", spec, "--yes", *args, "--netns", netns.name, env=env)
        assert r.returncode == 1 and "read-only" in r.stderr
    r = run("kill", spec, "--yes", "--process", "--readonly", "--netns", netns.name)
    assert r.returncode == 1
    assert client.attempt("send", c1, "x") is None
    assert _alive(server.pid)


def test_kill_process_signals_exactly_the_selected_process(netns, holders) -> None:
    a, b = holders(1001), holders(1001)
    for h in (a, b):
        s = h.socket("tcp", 4, reuseport=True)
        assert h.bind(s, "127.0.0.1", P) is None and h.listen(s) is None
    spec = str(a.cookie(1))
    r = run("kill", spec, "--process", "--yes", "--netns", netns.name)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"pid {a.pid}" in r.stdout and "SIGTERM sent" in r.stdout and f"pid {a.pid} exited" in r.stdout
    assert f"pid {b.pid}" not in r.stdout
    time.sleep(0.1)
    assert not _alive(a.pid)
    assert _alive(b.pid) and b.call("ping") == b.pid


def test_kill_reports_a_gone_socket_and_bad_input(netns, holders) -> None:
    r = run("kill", "999999999", "--yes", "--netns", netns.name)
    assert r.returncode == 2 and "no socket with cookie" in r.stderr
    r = run("kill", "x:y", "--yes", "--netns", netns.name)
    assert r.returncode == 2 and r.stderr.count("\n") == 1


def test_kill_a_timewait_frees_its_port(netns, holders) -> None:
    import json

    h = holders(0)
    lst = h.socket("tcp", 4)
    assert h.bind(lst, "127.0.0.1", P) is None and h.listen(lst) is None
    c = h.socket("tcp", 4)
    h.connect(c, "127.0.0.1", P)
    a = h.accept(lst)
    h.close(a)
    h.close(c)
    h.close(lst)
    data = json.loads(run("check", "tcp", f"127.0.0.1:{P}", "--json", "--netns", netns.name).stdout)
    assert data["verdict"] == "conflict" and data["blockers"][0]["state"] == "TIME-WAIT"
    r = run("kill", str(data["blockers"][0]["cookie"]), "--yes", "--netns", netns.name)
    assert r.returncode == 0 and "TIME_WAIT socket: the kernel removes it" in r.stdout, r.stdout + r.stderr
    s = h.socket("tcp", 4)
    assert h.bind(s, "127.0.0.1", P) is None and h.listen(s) is None
