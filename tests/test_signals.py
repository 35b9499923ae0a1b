"""Signals against real sockets in private namespaces: the kernel is the judge."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from sockscope.collectors.signal_inputs import SignalInputReader
from sockscope.collectors.snapshotter import Collector
from sockscope.signals import Observation, SignalTracker
from sockscope.signals.reuseport import member_pids

pytestmark = pytest.mark.root


class Watcher:
    """One namespace's collector, signal inputs and tracker, as the exporter keeps them."""

    def __init__(self, name: str) -> None:
        self.collector = Collector(netns=name)
        self.inputs = SignalInputReader(name)
        self.tracker = SignalTracker()

    def observe(self):  # type: ignore[no-untyped-def]
        snap = self.collector.snapshot()
        got = self.inputs.read(member_pids(snap))
        return self.tracker.observe(Observation(snap, got.tcpext, got.procs))

    def close(self) -> None:
        self.collector.close()


@pytest.fixture
def watcher(netns):  # type: ignore[no-untyped-def]
    w = Watcher(netns.name)
    yield w
    w.close()


def test_full_accept_queue_shows_fill_and_overflow_attribution(netns, holders, watcher):
    server, client = holders(), holders()
    ls = server.socket("tcp", 4)
    assert server.bind(ls, "127.0.0.1", 8080) is None
    assert server.listen(ls, 2) is None  # holds 3: the kernel's queue is full past backlog
    other = server.socket("tcp", 4)
    assert server.bind(other, "127.0.0.1", 8081) is None
    assert server.listen(other, 16) is None
    first = watcher.observe()
    h0 = next(h for h in first.listeners if h.rec.local_port == 8080)
    assert (h0.recv_q, h0.backlog, h0.capacity, h0.full) == (0, 2, 3, False)

    for _ in range(6):  # never accepted
        s = client.socket("tcp", 4, nonblock=True)
        client.call("connect", s, "127.0.0.1", 8080)
    deadline = time.monotonic() + 5
    while True:
        report = watcher.observe()
        h = next(h for h in report.listeners if h.rec.local_port == 8080)
        if h.full and h.overflows or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert (h.recv_q, h.capacity, h.fill, h.full) == (3, 3, 1.0, True)
    # the namespace's counter moved while only 8080 was full: all of it is attributed to 8080
    assert report.overflow["delta_overflows"] is not None
    assert h.overflows >= 1 and h.attribution == "sole"
    assert h.overflows_total >= h.overflows  # a counter over the tracker's life
    idle = next(h for h in report.listeners if h.rec.local_port == 8081)
    assert idle.overflows == 0 and idle.attribution == "none"
    sig = next(s for s in report.signals if s.kind == "listener" and s.data["local_port"] == 8080)
    assert sig.severity == "critical" and "attributed" in sig.summary
    assert report.signals[0].severity == "critical"
    assert h.rec.cookie in sig.cookies


def test_ephemeral_pressure_predicts_eaddrnotavail(netns, holders, watcher):
    netns.sysctl("net.ipv4.ip_local_port_range", "40000 40019")
    netns.sysctl("net.ipv4.ip_local_reserved_ports", "40003")
    netns.sysctl("net.ipv4.tcp_tw_reuse", "0")  # TIME_WAIT 4-tuples are never reused: exact
    watcher.collector._facts = None  # re-read the sysctls now
    server, client = holders(), holders()
    ls = server.socket("tcp", 4)
    assert server.bind(ls, "127.0.0.1", 8080) is None
    assert server.listen(ls, 128) is None
    inrange = server.socket("tcp", 4)
    assert server.bind(inrange, "127.0.0.1", 40010) is None  # bound by bind(): connect() skips it
    assert server.listen(inrange, 4) is None
    # one connection closed by the client first: its port stays in TIME_WAIT (FIN-WAIT-2 timewait)
    s = client.socket("tcp", 4)
    client.connect(s, "127.0.0.1", 8080)
    client.close(s)
    time.sleep(0.1)

    report = watcher.observe()
    assert report.space.usable == 20 - 1 - 1
    assert [r.local_port for r in report.space.listeners_in_range] == [40010]
    assert any(sg.kind == "listener-in-range" and sg.data["local_port"] == 40010 for sg in report.signals)

    outcomes = []
    for _ in range(25):
        dest = next((d for d in report.ephemeral if d.key[2:] == ("127.0.0.1", 8080)), None)
        left = dest.ports_left if dest else report.space.usable
        if dest is not None:
            assert not dest.estimate, dest.estimate_reasons
        s = client.socket("tcp", 4)
        err = client.attempt("connect", s, "127.0.0.1", 8080)
        outcomes.append((left, err))
        if err is not None:
            break
        time.sleep(0.02)
        report = watcher.observe()
        mid = next(d for d in report.ephemeral if d.key[2:] == ("127.0.0.1", 8080))
        if 0 < mid.ports_left and len(outcomes) > 3:
            assert mid.slope is not None and mid.slope > 0
            assert mid.exhaustion_seconds is not None and mid.exhaustion_seconds > 0
    # every connect succeeded while ports were left, and the first failure came exactly at 0
    assert [left for left, err in outcomes if err is None] == list(range(17, 0, -1))
    assert outcomes[-1] == (0, "EADDRNOTAVAIL")

    dest = next(d for d in report.ephemeral if d.key[2:] == ("127.0.0.1", 8080))
    assert dest.in_use == 18 and dest.time_wait == 1 and dest.ports_left == 0
    assert dest.by_state["ESTAB"] == 17
    assert dest.relief_seconds is not None and 30 < dest.relief_seconds <= 60
    sig = next(sg for sg in report.signals if sg.kind == "ephemeral")
    assert sig.severity == "critical" and "EADDRNOTAVAIL" in sig.summary


def test_close_wait_leak_shows_a_slope(netns, holders, watcher):
    server, client = holders(), holders()
    ls = server.socket("tcp", 4)
    assert server.bind(ls, "127.0.0.1", 7000) is None
    assert server.listen(ls, 64) is None
    reports = []
    for _ in range(4):
        for _ in range(2):
            s = client.socket("tcp", 4)
            client.connect(s, "127.0.0.1", 7000)
            server.accept(ls)  # accepted, and never closed
            client.close(s)  # the peer closes: the server's socket sits in CLOSE_WAIT
        time.sleep(0.15)
        reports.append(watcher.observe())
    last = reports[-1]
    group = next(g for g in last.close_wait if g.key == (server.pid, "127.0.0.1"))
    assert group.count == 8
    assert group.slope is not None and group.slope > 0
    assert group.age_seconds >= 0.3
    sig = next(sg for sg in last.signals if sg.kind == "close-wait")
    assert sig.severity == "warning" and f"pid {server.pid}" in sig.subject
    assert sig.data["slope_per_minute"] > 0
    assert last.time_wait.total == 8 and last.time_wait.client_closed == 8  # client closed first


def test_reuseport_group_with_two_executables_raises_alarm(netns, holders, watcher, tmp_path):
    exe = os.path.realpath(sys.executable)
    copy = tmp_path / "python-copy"
    shutil.copy2(exe, copy)
    h = holders()
    s = h.socket("tcp", 4, reuseport=True)
    assert h.bind(s, "127.0.0.1", 9000) is None
    assert h.listen(s, 16) is None
    code = ("import socket,sys,time\n"
            "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)\n"
            "s.bind(('127.0.0.1', 9000)); s.listen(16); print('ready', flush=True); sys.stdin.read()\n")
    proc = subprocess.Popen(["ip", "netns", "exec", netns.name, str(copy), "-c", code],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        report = watcher.observe()
        group = next(g for g in report.reuseport if g.key[3] == 9000)
        assert len(group.members) == 2
        assert sorted(group.executables) == sorted([exe, str(copy)])
        assert any("different executables" in a for a in group.alarms)
        sig = next(sg for sg in report.signals if sg.kind == "reuseport")
        assert sig.severity == "warning"
        assert {m["pid"] for m in sig.data["members"]} == {h.pid, proc.pid}
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(timeout=10)
