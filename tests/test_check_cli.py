"""`sockscope check` and `sockscope why` as scripts use them: exit status, JSON, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SOCKSCOPE = [sys.executable, "-m", "sockscope"]
P = 18181


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SOCKSCOPE, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "args, message",
    [
        (["check", "sctp", "0.0.0.0:80"], "tcp or udp"),
        (["check", "tcp", "::1:80"], "brackets"),
        (["check", "tcp", "[::1]80"], "[IPV6]:PORT"),
        (["check", "tcp", "1.2.3:80"], "not an IPv4 address"),
        (["check", "tcp", "0.0.0.0:99999"], "above 65535"),
        (["check", "tcp", "0.0.0.0:http"], "not a port number"),
        (["check", "tcp", "0.0.0.0:80", "--uid", "bob"], "bad uid 'bob'"),
        (["check", "tcp", "0.0.0.0:80", "--v6only"], "IPv6 addresses only"),
        (["why", "0"], "1-65535"),
        (["why", "[::1]:x"], "not a port number"),
    ],
)
def test_bad_input_is_one_line_and_status_2(args: list[str], message: str) -> None:
    r = run(*args)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


@pytest.mark.root
def test_unknown_device_and_namespace_are_usage_errors(netns) -> None:
    r = run("check", "tcp", "0.0.0.0:80", "--device", "nope0", "--netns", netns.name)
    assert r.returncode == 2 and "no interface 'nope0'" in r.stderr
    r = run("check", "tcp", "0.0.0.0:80", "--netns", "no-such-ns-here")
    assert r.returncode == 2 and "Traceback" not in r.stderr


@pytest.mark.root
def test_exit_status_and_json_contract(netns, holders) -> None:
    h = holders(1001)
    sid = h.socket("tcp", 4, reuseport=True)
    assert h.bind(sid, "0.0.0.0", P) is None and h.listen(sid) is None
    pid = h.call("ping")

    r = run("check", "tcp", f"127.0.0.1:{P}", "--reuseport", "--uid", "1001", "--json", "--netns", netns.name)
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads(r.stdout)
    assert data["verdict"] == "ok" and data["errno"] is None and data["blockers"] == []

    r = run("check", "tcp", f"127.0.0.1:{P}", "--reuseport", "--uid", "1002", "--json", "--netns", netns.name)
    assert r.returncode == 1
    data = json.loads(r.stdout)
    assert set(data) >= {"verdict", "errno", "stage", "blockers", "explanation", "suggestions"}
    assert (data["verdict"], data["errno"], data["stage"]) == ("conflict", "EADDRINUSE", "bind")
    b = data["blockers"][0]
    assert b["pid"] == pid and b["state"] == "LISTEN" and b["rule"] == "reuseport-uid" and b["reason"]
    for key in ("proto", "family", "local_addr", "local_port", "uid", "cookie", "reuseaddr", "reuseport", "owners"):
        assert key in b

    r = run("check", "tcp", f"0.0.0.0:{P}", "--netns", netns.name)
    assert r.returncode == 1
    assert r.stdout.startswith("CONFLICT") and f"pid {pid}" in r.stdout and "What would work" in r.stdout

    r = run("why", str(P), "--netns", netns.name)
    assert r.returncode == 0
    assert f"pid {pid}" in r.stdout and "Would bind now:" in r.stdout
    assert "with SO_REUSEPORT as uid 1001" in r.stdout.split("Would bind now:")[1].split("Would fail:")[0]
    data = json.loads(run("why", str(P), "--json", "--netns", netns.name).stdout)
    assert data["holders"][0]["pid"] == pid
    assert any(t["verdict"] == "ok" and t["candidate"]["uid"] == 1001 for t in data["trials"])


@pytest.mark.root
def test_unknown_exits_3(netns, holders) -> None:
    # A TIME_WAIT from a server that is gone: its SO_REUSEADDR cannot be known.
    h = holders(0)
    lst = h.socket("tcp", 4)
    assert h.bind(lst, "127.0.0.1", P) is None and h.listen(lst) is None
    cli = h.socket("tcp", 4)
    h.connect(cli, "127.0.0.1", P)
    child = h.accept(lst)
    h.close(child)
    h.close(cli)
    h.close(lst)
    r = run("check", "tcp", f"127.0.0.1:{P}", "--reuseaddr", "--netns", netns.name, "--no-bpf")
    assert r.returncode == 3, r.stdout
    assert r.stdout.startswith("UNKNOWN") and "TIME-WAIT" in r.stdout
    # The BPF iterator reads the TIME-WAIT's own flags: the answer becomes definite.
    r = run("check", "tcp", f"127.0.0.1:{P}", "--reuseaddr", "--netns", netns.name)
    assert r.returncode == 1, r.stdout
    assert r.stdout.startswith("CONFLICT") and "SO_REUSEADDR off" in r.stdout


def test_check_uses_the_callers_uid_by_default() -> None:
    from sockscope.cli import build_parser
    from sockscope.cli.check_cmd import build_candidate

    args = build_parser().parse_args(["check", "udp", "[::ffff:127.0.0.1]:53"])
    cand, notes = build_candidate(args)
    assert (cand.uid, cand.family, cand.addr, cand.port, cand.listen) == (os.getuid(), 6, "::ffff:127.0.0.1", 53, False)
    assert notes == []


@pytest.mark.root
def test_suggested_port_is_really_free(netns, holders) -> None:
    h = holders(0)
    for port in (P, P + 1):
        sid = h.socket("tcp", 4)
        assert h.bind(sid, "0.0.0.0", port) is None and h.listen(sid) is None
    data = json.loads(run("check", "tcp", f"0.0.0.0:{P}", "--json", "--netns", netns.name).stdout)
    port_hint = [s for s in data["suggestions"] if "another port" in s]
    assert port_hint and f":{P + 2} is free" in port_hint[0]
