"""SignalTracker: the signals of each new snapshot, with what earlier ones tell (trends).

Pure: the caller passes the snapshot, the namespace's TcpExt counters and the process
facts it read. The tracker keeps only small, bounded history: per-series counts of the
last HISTORY_POINTS observations within HISTORY_SECONDS (top MAX_SERIES series each),
the first-seen time of current CLOSE_WAIT sockets, and the listeners that were full.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sockscope.model import Snapshot

from .ephemeral import DestPressure, PortSpace, ephemeral_pressure, ephemeral_signal, listener_in_range_signal, port_space
from .leaks import CloseWaitGroup, TimeWaitSummary, close_wait_groups, close_wait_signal, time_wait_signals, time_wait_summary
from .listeners import ListenerHealth, ListenerKey, attribute, listener_health, listener_signal
from .reuseport import ProcFacts, ReuseportGroup, reuseport_groups, reuseport_signal
from .types import RANK, Signal

HISTORY_SECONDS = 600.0
HISTORY_POINTS = 120
MAX_SERIES = 200  # series kept in the history per kind (the largest)
MAX_REMEMBERED = 100_000  # CLOSE_WAIT first-seen times and attributed totals
MAX_SIGNALS_PER_KIND = 100  # the most severe of each kind; the rest are counted in `dropped`
MAX_JSON_ITEMS = 100  # per section of to_json(), largest first; totals say how many there were


@dataclass(slots=True)
class Observation:
    snapshot: Snapshot
    tcpext: dict[str, int] | None = None  # None: /proc/net/netstat not read
    procs: Mapping[int, ProcFacts] = field(default_factory=dict)
    now: float | None = None  # wall clock of the observation (default: the snapshot's)


@dataclass(slots=True)
class SignalReport:
    taken_at: float
    netns: str | None
    signals: list[Signal]  # most severe first
    listeners: list[ListenerHealth]
    overflow: dict[str, Any]
    space: PortSpace
    ephemeral: list[DestPressure]
    close_wait: list[CloseWaitGroup]
    time_wait: TimeWaitSummary
    reuseport: list[ReuseportGroup]
    dropped: dict[str, int] = field(default_factory=dict)  # kind -> signals left out (bound)
    severity_counts: dict[str, int] = field(default_factory=dict)  # every signal, kept or not

    @property
    def worst(self) -> Signal | None:
        return self.signals[0] if self.signals else None

    def counts(self) -> dict[str, int]:
        """Signals per severity, including those left out of `signals` by the bound."""
        if self.severity_counts:
            return dict(self.severity_counts)
        out = {s: 0 for s in RANK}
        for sig in self.signals:
            out[sig.severity] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        sp = self.space
        cap = MAX_JSON_ITEMS
        return {
            "taken_at": self.taken_at,
            "netns": self.netns,
            "counts": self.counts(),
            "signals": [s.to_json() for s in self.signals],
            "signals_left_out": self.dropped,
            "listeners": [h.to_json() for h in sorted(self.listeners, key=lambda h: -h.fill)[:cap]],
            "listeners_total": len(self.listeners),
            "listen_overflow": self.overflow,
            "ephemeral_range": {"low": sp.low, "high": sp.high, "reserved": sp.reserved,
                                "bound_by_bind": len(sp.bound), "usable": sp.usable,
                                "listeners_in_range": [r.local_port for r in sp.listeners_in_range]},
            "ephemeral": [d.to_json() for d in self.ephemeral[:cap]],
            "ephemeral_total": len(self.ephemeral),
            "close_wait": [g.to_json() for g in self.close_wait[:cap]],
            "close_wait_total": len(self.close_wait),
            "time_wait": self.time_wait.to_json(),
            "reuseport": [g.to_json() for g in self.reuseport[:cap]],
            "reuseport_total": len(self.reuseport),
        }


class History:
    """Counts per series key over time (bounded), and least-squares slopes."""

    def __init__(self) -> None:
        self.points: deque[tuple[float, dict[Hashable, int]]] = deque(maxlen=HISTORY_POINTS)

    def add(self, t: float, counts: dict[Hashable, int]) -> None:
        if len(counts) > MAX_SERIES:
            counts = dict(sorted(counts.items(), key=lambda kv: -kv[1])[:MAX_SERIES])
        while self.points and t - self.points[0][0] > HISTORY_SECONDS:
            self.points.popleft()
        self.points.append((t, counts))

    def slope(self, key: Hashable) -> float | None:
        pts = [(t, c.get(key, 0)) for t, c in self.points]
        if len(pts) < 2:
            return None
        n = len(pts)
        mt = sum(t for t, _ in pts) / n
        mv = sum(v for _, v in pts) / n
        den = sum((t - mt) ** 2 for t, _ in pts)
        if den <= 0:
            return None
        return sum((t - mt) * (v - mv) for t, v in pts) / den


class SignalTracker:
    def __init__(self, start_spread: float | None = None) -> None:
        self.ephemeral_history = History()
        self.close_wait_history = History()
        self.first_seen: dict[int, float] = {}  # CLOSE_WAIT cookie -> wall clock
        self.was_full: set[ListenerKey] = set()
        self.totals: dict[ListenerKey, tuple[int, int]] = {}  # attributed overflows, drops
        self.last_tcpext: dict[str, int] | None = None
        self.unattributed_total = [0, 0]
        self.start_spread = start_spread

    def observe(self, obs: Observation) -> SignalReport:
        snap = obs.snapshot
        now = obs.now if obs.now is not None else snap.taken_at
        signals: list[Signal] = []

        # listeners and the namespace's overflow counters
        listeners = [r for r in snap.sockets if r.proto == "tcp" and r.state == "LISTEN"]
        health = listener_health(listeners)
        d_over = d_drop = None
        if obs.tcpext is not None and self.last_tcpext is not None:
            d_over = obs.tcpext.get("ListenOverflows", 0) - self.last_tcpext.get("ListenOverflows", 0)
            d_drop = obs.tcpext.get("ListenDrops", 0) - self.last_tcpext.get("ListenDrops", 0)
        un_over, un_drop = attribute(health, self.was_full, d_over, d_drop)
        self.unattributed_total[0] += un_over
        self.unattributed_total[1] += un_drop
        live = {h.key for h in health}
        self.totals = {k: v for k, v in self.totals.items() if k in live}
        for h in health:
            over, drop = self.totals.get(h.key, (0, 0))
            self.totals[h.key] = (over + h.overflows, drop + h.drops)
            h.overflows_total, h.drops_total = self.totals[h.key]
        self.was_full = {h.key for h in health if h.full}
        if obs.tcpext is not None:
            self.last_tcpext = dict(obs.tcpext)
        overflow = {
            "read": obs.tcpext is not None,
            "ListenOverflows": None if obs.tcpext is None else obs.tcpext.get("ListenOverflows"),
            "ListenDrops": None if obs.tcpext is None else obs.tcpext.get("ListenDrops"),
            "delta_overflows": d_over,
            "delta_drops": d_drop,
            "unattributed_overflows_total": self.unattributed_total[0],
            "unattributed_drops_total": self.unattributed_total[1],
            "note": "per-listener overflows are attributed: the namespace's counter moved while the listener was full",
        }
        for h in health:
            sig = listener_signal(h)
            if sig:
                signals.append(sig)

        # ephemeral ports
        space = port_space(snap)
        dests = ephemeral_pressure(snap, space)
        self.ephemeral_history.add(now, {d.key: d.in_use for d in dests})
        for d in dests[:MAX_SERIES]:
            d.slope = self.ephemeral_history.slope(d.key)
            if d.slope is not None and d.slope > 1e-9 and d.ports_left > 0:
                d.exhaustion_seconds = d.ports_left / d.slope
            sig = ephemeral_signal(d)
            if sig:
                signals.append(sig)
        signals += [listener_in_range_signal(r, space) for r in space.listeners_in_range]

        # leaks
        cw = close_wait_groups(snap)
        current = {c for g in cw for c in g.cookies}
        self.first_seen = {c: t for c, t in self.first_seen.items() if c in current}
        for c in current:
            if len(self.first_seen) < MAX_REMEMBERED:
                self.first_seen.setdefault(c, now)
        self.close_wait_history.add(now, {g.key: g.count for g in cw})
        for i, g in enumerate(cw):
            if i >= MAX_SERIES:  # the smallest groups: no history kept, no age or slope
                signals.append(close_wait_signal(g))
                continue
            seen = [self.first_seen[c] for c in g.cookies if c in self.first_seen]
            g.age_seconds = now - min(seen) if seen else 0.0
            g.slope = self.close_wait_history.slope(g.key)
            signals.append(close_wait_signal(g))
        tw = time_wait_summary(snap)
        signals += time_wait_signals(tw, {r.local_port for r in listeners})

        # reuseport groups
        groups = reuseport_groups(snap, obs.procs, self.start_spread) if self.start_spread is not None \
            else reuseport_groups(snap, obs.procs)
        signals += [reuseport_signal(g) for g in groups]

        signals.sort(key=lambda s: (-s.rank, s.kind, s.subject))
        severity_counts = {s: 0 for s in RANK}
        for sig in signals:
            severity_counts[sig.severity] += 1
        kept: list[Signal] = []
        per_kind: dict[str, int] = {}
        dropped: dict[str, int] = {}
        for sig in signals:
            n = per_kind.get(sig.kind, 0)
            if n < MAX_SIGNALS_PER_KIND:
                kept.append(sig)
                per_kind[sig.kind] = n + 1
            else:
                dropped[sig.kind] = dropped.get(sig.kind, 0) + 1
        return SignalReport(now, snap.netns, kept, health, overflow, space, dests, cw, tw, groups, dropped, severity_counts)
