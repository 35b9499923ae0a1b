"""`sockscope list` as a user runs it: a real process against a private namespace."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from scenario import build

pytestmark = pytest.mark.root

CONTRACT = {
    "proto": str, "family": int, "state": str, "local_addr": str, "local_port": int, "peer_addr": str,
    "peer_port": int, "uid": int, "inode": int, "cookie": int, "device": (str, type(None)),
    "v6only": (bool, type(None)), "reuseaddr": (bool, type(None)), "reuseport": (bool, type(None)),
    "pid": (int, type(None)), "process": (str, type(None)), "owners": list, "recv_q": int, "send_q": int,
    "timer": (dict, type(None)), "option_source": dict,
}


def sockscope(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sockscope", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def scene(netns, holders):
    made = build(netns, holders(0), holders(1001))
    return netns, made


def test_table_fits_80_columns_and_shows_options(scene):
    ns, _made = scene
    out = sockscope("list", "--netns", ns.name)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["Net", "State", "Local", "Peer", "Opt", "Owner"]
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    listen = [line for line in lines if "127.0.0.1:8080" in line and "LISTEN" in line][0]
    assert " A- " in listen and "python" in listen
    dev = [line for line in lines if "%d0:8083" in line]
    assert dev, "bound device shown as %DEV like ss"


def test_json_follows_the_contract(scene):
    ns, made = scene
    out = sockscope("list", "--json", "--netns", ns.name)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert rows
    for row in rows:
        assert set(row) == set(CONTRACT)
        for key, kind in CONTRACT.items():
            assert isinstance(row[key], kind), (key, row[key])
        assert row["state"] in {"LISTEN", "ESTAB", "SYN-SENT", "SYN-RECV", "FIN-WAIT-1", "FIN-WAIT-2",
                                "TIME-WAIT", "CLOSE-WAIT", "LAST-ACK", "CLOSING", "UNCONN"}
        for o in row["owners"]:
            assert set(o) == {"pid", "fd", "process", "user"}
    mapped = [r for r in rows if r["local_port"] == 8084][0]
    assert mapped["local_addr"] == "::ffff:127.0.0.1" and mapped["family"] == 6
    ra = [r for r in rows if r["local_port"] == 8080 and r["state"] == "LISTEN"][0]
    assert ra["reuseaddr"] is True and ra["reuseport"] is False and ra["v6only"] is None
    assert ra["pid"] == min(o["pid"] for o in ra["owners"])


HOLD_UDP = r"""
import resource, socket, sys
want = int(sys.argv[1]) + 64
resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
socks = []
for port in range(20000, 20000 + int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    socks.append(s)
print("ready", flush=True)
sys.stdin.read()
"""


def test_the_command_prints_every_piece_and_its_status_then_exits_at_once(netns, capsys):
    """`sockscope list --json` as a process: more sockets than one piece of the streamed
    JSON (serialize.CHUNK), and the exit that leaves the snapshot unfreed (cli.entry) after
    the last piece and the warnings are out; the same text as main() in this process."""
    from sockscope.cli import common, main
    from sockscope.serialize import CHUNK

    n = 2 * CHUNK + 100
    holder = subprocess.Popen(["nsenter", f"--net={netns.path}", sys.executable, "-c", HOLD_UDP, str(n)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        out = sockscope("list", "--json", "--netns", netns.name)
        assert out.returncode == 0, out.stderr
        assert out.stdout.endswith("]\n")
        rows = json.loads(out.stdout)
        assert sorted(r["local_port"] for r in rows) == list(range(20000, 20000 + n))
        assert common.left_for_exit is None  # in-process callers keep nothing
        assert main(["list", "--json", "--netns", netns.name]) == 0
        assert capsys.readouterr().out == out.stdout
        bad = sockscope("list", "--json", "--netns", netns.name, "--port", "x")
        assert bad.returncode == 2 and bad.stdout == "" and "port" in bad.stderr
    finally:
        holder.kill()
        holder.wait(10)


def test_filters(scene):
    ns, made = scene
    rows = json.loads(sockscope("list", "--json", "--netns", ns.name, "--udp").stdout)
    assert rows and {r["proto"] for r in rows} == {"udp"}
    rows = json.loads(sockscope("list", "--json", "--netns", ns.name, "--state", "listen,time-wait").stdout)
    assert {r["state"] for r in rows} == {"LISTEN", "TIME-WAIT"}
    rows = json.loads(sockscope("list", "--json", "--netns", ns.name, "--port", "8081").stdout)
    assert rows and {r["local_port"] for r in rows} == {8081}
    # `--port` takes a one-port snapshot: the same objects as the whole listing's, for
    # every port of the scene (TCP and UDP, states, owners, options), in the same order.
    def settled(rows):  # timers count down between the two runs
        return [{**r, "timer": r["timer"] and r["timer"]["kind"]} for r in rows]

    everything = settled(json.loads(sockscope("list", "--json", "--netns", ns.name).stdout))
    for port in sorted({r["local_port"] for r in everything}):
        one = settled(json.loads(sockscope("list", "--json", "--netns", ns.name, "--port", str(port)).stdout))
        assert one == [r for r in everything if r["local_port"] == port], port
    pid = made["udp6_conn"].holder.pid
    rows = json.loads(sockscope("list", "--json", "--netns", ns.name, "--pid", str(pid)).stdout)
    assert rows and all(any(o["pid"] == pid for o in r["owners"]) for r in rows)
    rows = json.loads(sockscope("list", "--json", "--netns", ns.name, "-t", "-s", "listening").stdout)
    assert {(r["proto"], r["state"]) for r in rows} <= {("tcp", "LISTEN"), ("tcp", "UNCONN")}


@pytest.mark.parametrize("args, message", [
    (["--state", "bogus"], "unknown state 'bogus'"),
    (["--port", "70000"], "out of range"),
    (["--port", "http"], "bad port"),
    (["--pid", "-3"], "bad pid"),
    (["--netns", "no-such-ns-here"], "no network namespace"),
    (["--collector", "magic"], "invalid choice"),
])
def test_bad_input_is_one_clear_line_and_exit_2(args, message):
    out = sockscope("list", *args)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr
