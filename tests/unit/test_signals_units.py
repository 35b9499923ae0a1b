"""Root-free checks of the signals and the exporter: parsing, the series budget at
100,000 sockets, text rendering of hostile names."""

from __future__ import annotations

import time

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sockscope.collectors.netstat import NetstatError, parse_netstat
from sockscope.exporter.metrics import apply_budget, build_families
from sockscope.exporter.runner import ExporterRunner
from sockscope.model import HostFacts, Owner, Snapshot, SocketRecord, Timer
from sockscope.signals import Observation, SignalTracker

NETSTAT = """TcpExt: SyncookiesSent ListenOverflows ListenDrops
TcpExt: 0 7 9
IpExt: InNoRoutes
IpExt: 3
"""


def test_parse_netstat() -> None:
    got = parse_netstat(NETSTAT)
    assert got["TcpExt"] == {"SyncookiesSent": 0, "ListenOverflows": 7, "ListenDrops": 9}
    assert got["IpExt"] == {"InNoRoutes": 3}
    for bad in ("TcpExt: A B\nTcpExt: 1\n", "TcpExt: A\nIpExt: 1\n", "TcpExt: A\n", "TcpExt: A\nTcpExt: x\n"):
        try:
            parse_netstat(bad)
        except NetstatError:
            continue
        raise AssertionError(f"accepted {bad!r}")


def rec(state: str, lport: int, peer: str = "0.0.0.0", pport: int = 0, cookie: int = 0, **kw) -> SocketRecord:
    return SocketRecord("tcp", 4, state, kw.pop("laddr", "10.0.0.1"), lport, peer, pport, 0, cookie, cookie, **kw)


def synthetic(n: int = 100_000) -> Snapshot:
    """A busy host: 2,000 listeners, connections to 5,000 destinations, TIME_WAIT on 20,000
    ports, CLOSE_WAIT spread over processes."""
    socks: list[SocketRecord] = []
    c = 1
    for i in range(2000):
        socks.append(rec("LISTEN", 1000 + i, cookie=c, recv_q=i % 7, send_q=128))
        c += 1
    while len(socks) < n:
        i = len(socks)
        kind = i % 4
        if kind == 0:
            socks.append(rec("ESTAB", 32768 + i % 28000, f"10.1.{(i // 250) % 20}.{i % 250}", 443, c))
        elif kind == 1:
            socks.append(rec("TIME-WAIT", 32768 + (i * 7) % 20000, "10.2.0.1", 80 + i % 50, c,
                             timer=Timer("timewait", 30000)))
        elif kind == 2:
            socks.append(rec("ESTAB", 1000 + i % 2000, f"10.3.{i % 200}.{i % 251}", 40000 + i % 20000, c))
        else:
            socks.append(rec("CLOSE-WAIT", 1000 + i % 2000, f"10.4.0.{i % 250}", 50000 + i % 9000, c,
                             owners=[Owner(100 + i % 300, 3, "worker")]))
        c += 1
    return Snapshot(sockets=socks, facts=HostFacts())


class FixedCollector:
    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def snapshot(self) -> Snapshot:
        self.snap.taken_at = time.time()
        return self.snap

    def close(self) -> None:
        pass


def test_series_budget_holds_with_100000_sockets() -> None:
    snap = synthetic()
    assert len(snap.sockets) == 100_000
    runner = ExporterRunner(lambda: [(None, "")], max_series=2000, top_destinations=50,
                            watch=[("tcp", 1000), ("tcp", 65000)],
                            make_collector=lambda name: FixedCollector(snap))
    kept = runner.collect_once()
    runner.collect_once()  # a second cycle: trends, counters
    text = generate_latest(runner.registry).decode()
    series = {}
    for fam in text_string_to_metric_families(text):
        series[fam.name] = len(fam.samples)
    meta = {"sockscope_collector_success", "sockscope_collector_duration_seconds", "sockscope_snapshot_timestamp_seconds",
            "sockscope_series_budget", "sockscope_series", "sockscope_series_dropped",
            "sockscope_cycle_duration_seconds"}
    budgeted = sum(n for name, n in series.items() if name not in meta)
    assert budgeted <= 2000
    assert series["sockscope_series"] == 1
    values = {s.name: s.value for fam in text_string_to_metric_families(text) for s in fam.samples
              if s.name in ("sockscope_series", "sockscope_series_budget")}
    assert values["sockscope_series"] == budgeted and values["sockscope_series_budget"] == 2000
    dropped = {s.labels["family"]: s.value for fam in text_string_to_metric_families(text)
               for s in fam.samples if s.name == "sockscope_series_dropped"}
    assert dropped and sum(dropped.values()) > 0
    # the most urgent families come first and survive: verdicts, per-state totals, queue fill
    assert series.get("sockscope_bind_verdict", 0) == 6
    assert series.get("sockscope_sockets", 0) == 4
    # never a per-flow label
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            assert not {"sport", "peer_port", "cookie", "inode"} & set(s.labels)
    assert kept
    # scrapes read the last collection: they never collect
    cycles = runner.cycles
    for _ in range(3):
        generate_latest(runner.registry)
    assert runner.cycles == cycles == 2


def test_budget_zero_left_keeps_meta() -> None:
    snap = synthetic(5000)
    tracker = SignalTracker()
    report = tracker.observe(Observation(snap))
    fams = build_families("", snap, report, [], [])
    kept, dropped = apply_budget(fams, 0)
    assert all(not f.samples for f in kept if not f.meta)
    assert sum(dropped.values()) == sum(len(f.samples) for f in fams if not f.meta)


def test_text_output_sanitizes_host_strings() -> None:
    from sockscope.cli.signals_cmd import render

    evil = "\x1b]0;pwned\x07"
    socks = [rec("CLOSE-WAIT", 80, "10.0.0.9", 5000 + i, i + 1, owners=[Owner(42, 3, evil)]) for i in range(3)]
    report = SignalTracker().observe(Observation(Snapshot(sockets=socks)))
    text = render(report)
    assert "\x1b" not in text and "\x07" not in text and "\\x1b" in text


def test_several_namespaces_share_one_family_each() -> None:
    """The --all-netns shape: several targets, one family per metric name, a netns label each;
    a target that vanishes is closed and its series go."""
    snaps = {"a": synthetic(400), "b": synthetic(300)}
    closed: list[str] = []

    class Closing(FixedCollector):
        def __init__(self, name: str) -> None:
            super().__init__(snaps[name])
            self.name = name

        def close(self) -> None:
            closed.append(self.name)

    targets = [("a", "a"), ("b", "b")]
    runner = ExporterRunner(lambda: list(targets), make_collector=lambda name: Closing(name))
    runner.collect_once()
    text = generate_latest(runner.registry).decode()
    names = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert len(names) == len(set(names))
    sockets = {s.labels["netns"]: s.value for fam in text_string_to_metric_families(text) for s in fam.samples
               if s.name == "sockscope_sockets" and s.labels["state"] == "LISTEN"}
    assert set(sockets) == {"a", "b"}
    targets.pop()
    runner.collect_once()
    text = generate_latest(runner.registry).decode()
    assert closed == ["b"] and 'netns="b"' not in text and 'netns="a"' in text


def test_tui_signals_read_the_host_namespace_only_with_several() -> None:
    """--all-netns in the TUI: two namespaces' loopback flows must not be added up."""
    from sockscope.model import HostFacts, NetnsRef, NetnsView, Snapshot, SocketRecord
    from sockscope.tui.signals_worker import host_only

    host, other = NetnsRef(1, "host", "host"), NetnsRef(2, "web", "netns")
    recs = []
    for ref in (host, other):
        r = SocketRecord("tcp", 4, "LISTEN", "127.0.0.1", 80, "0.0.0.0", 0, 0, ref.inode, ref.inode)
        r.netns = ref
        recs.append(r)
    snap = Snapshot(recs, namespaces={1: NetnsView(host, HostFacts()), 2: NetnsView(other, HostFacts())})
    only = host_only(snap)
    assert [r.netns for r in only.sockets] == [host]
    one = Snapshot(recs[:1])
    assert host_only(one) is one
