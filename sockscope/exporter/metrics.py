"""The exporter's metric families, built from one namespace's snapshot and signal report.

Pure (no I/O, no prometheus_client): a list of `Family` that runner.py turns into
prometheus_client metric families. Names: `sockscope_` prefix, base units (seconds,
ratios 0..1), `_total` only on counters. No per-flow labels: the finest label sets are a
local port, a listener's address:port, and a (source, destination address:port) pair for
the top destinations of the ephemeral range.

The series budget (apply_budget): every family gets a fair share of `max_series`, a
family smaller than its share leaves the rest to the others, and each family keeps its
largest (most urgent) samples; what did not fit is counted in
sockscope_series_dropped{family}. Meta families (collector
success, durations, the budget itself) are always written and not counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sockscope.model import Snapshot
from sockscope.signals import SignalReport

DEFAULT_MAX_SERIES = 5000
DEFAULT_TOP_DESTINATIONS = 20
LabelValues = tuple[str, ...]


@dataclass(slots=True)
class Family:
    name: str  # without _total for counters (prometheus_client adds it)
    kind: str  # "gauge" or "counter"
    help: str
    labels: tuple[str, ...]
    samples: list[tuple[LabelValues, float]] = field(default_factory=list)
    meta: bool = False  # outside the budget

    def add(self, values: LabelValues, value: float) -> None:
        self.samples.append((values, float(value)))


@dataclass(slots=True)
class BindWatch:
    """A --watch-port verdict, computed by the runner with sockscope.predict.check."""

    proto: str
    port: int
    verdict: str  # "ok", "conflict", "unknown"


@dataclass(slots=True)
class CollectorStatus:
    name: str
    success: bool
    seconds: float


def _fam(name: str, kind: str, help_text: str, *labels: str) -> Family:
    return Family(name, kind, help_text, ("netns", *labels))


def build_families(
    ns: str,
    snapshot: Snapshot | None,
    report: SignalReport | None,
    watches: list[BindWatch],
    statuses: list[CollectorStatus],
    top_destinations: int = DEFAULT_TOP_DESTINATIONS,
) -> list[Family]:
    """Every family of one namespace, in priority order, samples largest first."""
    fams: list[Family] = []
    success = _fam("sockscope_collector_success", "gauge",
                   "1 if the collector's last run succeeded, 0 if it failed", "collector")
    duration = _fam("sockscope_collector_duration_seconds", "gauge",
                    "How long the collector's last run took", "collector")
    for st in statuses:
        success.add((ns, st.name), 1 if st.success else 0)
        duration.add((ns, st.name), st.seconds)
    success.meta = duration.meta = True
    fams += [success, duration]
    if snapshot is None:
        return fams
    stamp = _fam("sockscope_snapshot_timestamp_seconds", "gauge", "When the last snapshot was taken (Unix time)")
    stamp.add((ns,), snapshot.taken_at)
    stamp.meta = True
    fams.append(stamp)

    by_state = _fam("sockscope_sockets", "gauge", "Sockets by protocol and state", "proto", "state")
    counts: Counter[tuple[str, str]] = Counter((r.proto, r.state) for r in snapshot.sockets)
    for (proto, state), n in counts.most_common():
        by_state.add((ns, proto, state), n)
    fams.append(by_state)

    verdict = _fam("sockscope_bind_verdict", "gauge",
                   "1 for the predicted outcome of a new listener's bind()+listen() on a watched port "
                   "(verdict ok, conflict or unknown), 0 for the others", "proto", "port", "verdict")
    for w in watches:
        for v in ("ok", "conflict", "unknown"):
            verdict.add((ns, w.proto, str(w.port), v), 1 if w.verdict == v else 0)
    fams.append(verdict)

    if report is not None:
        sev = _fam("sockscope_signals", "gauge", "Signals by severity (see the README)", "severity")
        for s, n in report.counts().items():
            sev.add((ns, s), n)
        fams.append(sev)

    # per-state counts per listener port
    listen_ports = {r.local_port for r in snapshot.sockets if r.proto == "tcp" and r.state == "LISTEN"}
    per_port: Counter[tuple[int, str]] = Counter(
        (r.local_port, r.state) for r in snapshot.sockets if r.proto == "tcp" and r.local_port in listen_ports)
    lp = _fam("sockscope_listener_port_sockets", "gauge",
              "TCP sockets whose local port is a listener's port, by state", "port", "state")
    for (port, state), n in per_port.most_common():
        lp.add((ns, str(port), state), n)
    fams.append(lp)

    if report is not None:
        # one series per listening address:port: the fullest socket there (reuseport members
        # share an address:port; the fullest is the one that overflows first)
        fullest: dict[tuple[str, int], Any] = {}
        for h in report.listeners:
            k = (h.rec.local_addr, h.rec.local_port)
            if k not in fullest or h.fill > fullest[k].fill:
                fullest[k] = h
        ordered = sorted(fullest.items(), key=lambda kv: (-kv[1].fill, -kv[1].recv_q, kv[0]))
        qlen = _fam("sockscope_listen_queue_length", "gauge",
                    "Accept queue of the fullest listener on the address:port (connections)", "addr", "port")
        qmax = _fam("sockscope_listen_queue_capacity", "gauge",
                    "Connections its accept queue holds before it is full (backlog + 1)", "addr", "port")
        qfill = _fam("sockscope_listen_queue_fill_ratio", "gauge", "Accept queue length / capacity (0..1)",
                     "addr", "port")
        for (addr, port), h in ordered:
            lv: LabelValues = (ns, addr, str(port))
            qlen.add(lv, h.recv_q)
            qmax.add(lv, h.capacity)
            qfill.add(lv, h.fill)
        attributed = _fam("sockscope_listen_overflows_attributed", "counter",
                          "TcpExt ListenOverflows attributed to the listeners that were full when it moved "
                          "(an attribution: the kernel counts per namespace)", "addr", "port")
        totals: Counter[tuple[str, int]] = Counter()
        for h in report.listeners:
            totals[(h.rec.local_addr, h.rec.local_port)] += h.overflows_total
        for (addr, port), _h in ordered:  # the queue families' order: one budget cut for all four
            attributed.add((ns, addr, str(port)), totals[(addr, port)])
        fams += [qfill, qlen, qmax, attributed]
        ov = report.overflow
        if ov["read"]:
            for key, name in (("ListenOverflows", "sockscope_tcpext_listen_overflows"),
                              ("ListenDrops", "sockscope_tcpext_listen_drops")):
                f = _fam(name, "counter", f"The namespace's TcpExt {key} (/proc/net/netstat)")
                f.add((ns,), ov[key] or 0)
                fams.append(f)

        sp = report.space
        usable = _fam("sockscope_ephemeral_ports_usable", "gauge",
                      "Ports connect() may pick per destination: ip_local_port_range minus reserved ports "
                      "minus ports bound by bind()")
        usable.add((ns,), sp.usable)
        inrange = _fam("sockscope_ephemeral_range_listeners", "gauge",
                       "TCP listeners on a port inside ip_local_port_range")
        inrange.add((ns,), len(sp.listeners_in_range))
        fams += [usable, inrange]
        dests = report.ephemeral[:top_destinations]
        e_use = _fam("sockscope_ephemeral_ports_in_use", "gauge",
                     "Local ports of the range used by connections from src to dst:dport", "src", "dst", "dport")
        e_left = _fam("sockscope_ephemeral_ports_left", "gauge",
                      "Ports connect() from src to dst:dport can still pick (an estimate when "
                      "sockscope_ephemeral_estimate is 1)", "src", "dst", "dport")
        e_tw = _fam("sockscope_ephemeral_time_wait_ratio", "gauge",
                    "Share of those ports held by TIME_WAIT", "src", "dst", "dport")
        e_est = _fam("sockscope_ephemeral_estimate", "gauge",
                     "1 when ports_left is an estimate (TIME_WAIT reuse, bind-before-connect unknown)",
                     "src", "dst", "dport")
        e_exh = _fam("sockscope_ephemeral_exhaustion_seconds", "gauge",
                     "At the current trend, seconds until no port is left (only while in use grows)",
                     "src", "dst", "dport")
        e_rel = _fam("sockscope_ephemeral_relief_seconds", "gauge",
                     "With no port left: seconds until the first TIME_WAIT of it expires", "src", "dst", "dport")
        for d in dests:
            _, src, dst, dport = d.key
            lv4: LabelValues = (ns, src, dst, str(dport))
            e_use.add(lv4, d.in_use)
            e_left.add(lv4, d.ports_left)
            e_tw.add(lv4, d.tw_share)
            e_est.add(lv4, 1 if d.estimate else 0)
            if d.exhaustion_seconds is not None:
                e_exh.add(lv4, d.exhaustion_seconds)
            if d.relief_seconds is not None:
                e_rel.add(lv4, d.relief_seconds)
        e_left.samples.sort(key=lambda s: s[1])  # the scarcest first
        fams += [e_left, e_use, e_tw, e_est, e_exh, e_rel]

    tw: Counter[int] = Counter()
    cw: Counter[int] = Counter()
    for r in snapshot.sockets:
        if r.proto == "tcp":
            if r.timewait:
                tw[r.local_port] += 1
            elif r.state == "CLOSE-WAIT":
                cw[r.local_port] += 1
    f_cw = _fam("sockscope_close_wait_sockets", "gauge", "TCP sockets in CLOSE_WAIT by local port", "port")
    f_tw = _fam("sockscope_time_wait_sockets", "gauge", "TCP sockets in TIME_WAIT by local port", "port")
    for port, n in cw.most_common():
        f_cw.add((ns, str(port)), n)
    for port, n in tw.most_common():
        f_tw.add((ns, str(port)), n)
    fams += [f_cw]

    if report is not None:
        g_size = _fam("sockscope_reuseport_group_members", "gauge",
                      "Sockets in a SO_REUSEPORT group (same protocol, address and port)", "proto", "addr", "port")
        g_exe = _fam("sockscope_reuseport_group_executables", "gauge",
                     "Distinct executables among the group's owners (more than 1 raises the alarm)",
                     "proto", "addr", "port")
        g_alarm = _fam("sockscope_reuseport_group_alarm", "gauge",
                       "1 when the group mixes executables or start times far apart", "proto", "addr", "port")
        for g in report.reuseport:
            proto, _, addr, port, _ = g.key
            lvg: LabelValues = (ns, proto, addr, str(port))
            g_size.add(lvg, len(g.members))
            g_exe.add(lvg, len(g.executables))
            g_alarm.add(lvg, 1 if g.alarms else 0)
        fams += [g_alarm, g_size, g_exe]
    fams.append(f_tw)  # last: the most numerous on a busy server, and the least urgent
    return fams


def apply_budget(families: list[Family], max_series: int) -> tuple[list[Family], dict[str, int]]:
    """Keep at most `max_series` samples outside the meta families.

    Fair shares ("water-filling"): each family may use an equal share of the budget, and a
    family smaller than its share gives what it does not use to the others; the remainder
    of an uneven split goes to the earlier (more urgent) families. So the small, urgent
    families (bind verdicts, ephemeral ports of the top destinations, reuseport groups)
    are always whole, and per-port families share the rest, largest values first.
    Returns the trimmed families and the dropped samples per family."""
    budget = max(max_series, 0)
    sized = [(i, len(f.samples)) for i, f in enumerate(families) if not f.meta]
    alloc: dict[int, int] = {}
    pending = sorted(sized, key=lambda t: (t[1], t[0]))
    while pending:
        share = budget // len(pending)
        i, size = pending[0]
        if size <= share:
            alloc[i] = size
            budget -= size
            pending.pop(0)
            continue
        extra = budget - share * len(pending)
        for j, _ in sorted(pending):  # list order = priority
            alloc[j] = share + (1 if extra > 0 else 0)
            extra -= 1
        break
    out: list[Family] = []
    dropped: dict[str, int] = {}
    for i, f in enumerate(families):
        if f.meta:
            out.append(f)
            continue
        keep = f.samples[:alloc.get(i, 0)]
        if len(keep) < len(f.samples):
            dropped[f.name] = dropped.get(f.name, 0) + len(f.samples) - len(keep)
        out.append(Family(f.name, f.kind, f.help, f.labels, keep))
    return out, dropped


def budget_families(max_series: int, dropped: dict[str, int], used: int) -> list[Family]:
    b = Family("sockscope_series_budget", "gauge", "The exporter's --max-series", ())
    b.add((), max_series)
    u = Family("sockscope_series", "gauge", "Series written within the budget", ())
    u.add((), used)
    d = Family("sockscope_series_dropped", "gauge",
               "Series left out of the last collection to stay within --max-series", ("family",))
    for name, n in sorted(dropped.items()):
        d.add((name,), n)
    for f in (b, u, d):
        f.meta = True
    return [b, u, d]
