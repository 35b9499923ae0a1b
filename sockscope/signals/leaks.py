"""Leaks: CLOSE_WAIT that piles up in a process, and where TIME_WAIT accumulates.

CLOSE_WAIT means the peer closed and the local program has not: a socket that stays
there is a descriptor the program forgot to close. Grouped per owning process and peer
address, with the age of the oldest (first seen by this tracker, by socket cookie) and
the slope of the count over the tracker's history.

TIME_WAIT stays on the side that closed first. On a listener's port it means this
host's server closed first; on a port of the ephemeral range, this host's client did.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from sockscope.model import Snapshot, SocketRecord

from .types import MAX_COOKIES, Signal

CwKey = tuple[int | None, str]  # owning pid (None: no visible owner), peer address
TOP_TIME_WAIT = 20


@dataclass(slots=True)
class CloseWaitGroup:
    key: CwKey
    process: str | None
    count: int
    local_ports: Counter[int]
    cookies: list[int]
    age_seconds: float = 0.0
    slope: float | None = None  # sockets per second

    def to_json(self) -> dict[str, Any]:
        pid, peer = self.key
        return {
            "pid": pid,
            "process": self.process,
            "peer": peer,
            "count": self.count,
            "local_ports": [p for p, _ in self.local_ports.most_common(10)],
            "age_seconds": round(self.age_seconds, 1),
            "slope_per_minute": None if self.slope is None else round(self.slope * 60, 2),
        }


def close_wait_groups(snapshot: Snapshot) -> list[CloseWaitGroup]:
    groups: dict[CwKey, list[SocketRecord]] = defaultdict(list)
    for r in snapshot.sockets:
        if r.proto == "tcp" and r.state == "CLOSE-WAIT":
            groups[(r.pid, r.peer_addr)].append(r)
    out = [
        CloseWaitGroup(key, recs[0].process, len(recs), Counter(r.local_port for r in recs),
                       [r.cookie for r in recs[:MAX_COOKIES]])
        for key, recs in groups.items()
    ]
    out.sort(key=lambda g: (-g.count, str(g.key)))
    return out


def close_wait_signal(g: CloseWaitGroup) -> Signal:
    pid, peer = g.key
    growing = g.slope is not None and g.slope > 0
    if g.count >= 1000 or (growing and g.age_seconds >= 60):
        severity = "critical" if g.count >= 1000 else "warning"
    elif growing or g.age_seconds >= 60:
        severity = "warning"
    else:
        severity = "info"
    # No owner: still in a listener's accept queue (never accepted), or held by a process
    # sockscope cannot see (another PID namespace).
    who = f"pid {pid} {g.process}" if pid is not None else "not accepted / no visible owner"
    text = f"{g.count} socket(s) in CLOSE_WAIT from {peer}, the oldest seen {g.age_seconds:.0f} s ago"
    if g.slope is not None:
        text += f", {g.slope * 60:+.1f}/min"
    text += ": the peer closed, the program has not (a descriptor leak if it keeps growing)"
    filt = "state close-wait and dst " + (f"[{peer}]" if ":" in peer else peer)
    if pid is not None:
        filt += f" and pid {pid}"
    return Signal("close-wait", severity, f"{who} <- {peer}", text, filt, "other", g.cookies, g.to_json())


@dataclass(slots=True)
class TimeWaitSummary:
    total: int
    by_port: list[tuple[int, int]]  # (local port, count), most first, top TOP_TIME_WAIT
    by_peer: list[tuple[str, int]]
    server_closed: int  # on a listener's port: this host's server closed first
    client_closed: int  # on another port: this host's client closed first

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_local_port": [{"port": p, "count": n} for p, n in self.by_port],
            "by_peer": [{"peer": a, "count": n} for a, n in self.by_peer],
            "closed_first": {"server": self.server_closed, "client": self.client_closed},
        }


def time_wait_summary(snapshot: Snapshot) -> TimeWaitSummary:
    listen_ports = {r.local_port for r in snapshot.sockets if r.proto == "tcp" and r.state == "LISTEN"}
    ports: Counter[int] = Counter()
    peers: Counter[str] = Counter()
    server = 0
    for r in snapshot.sockets:
        if r.proto == "tcp" and r.timewait:
            ports[r.local_port] += 1
            peers[r.peer_addr] += 1
            if r.local_port in listen_ports:
                server += 1
    total = sum(ports.values())
    return TimeWaitSummary(total, ports.most_common(TOP_TIME_WAIT), peers.most_common(TOP_TIME_WAIT),
                           server, total - server)


def time_wait_signals(s: TimeWaitSummary, listen_ports: set[int], threshold: int = 1000) -> list[Signal]:
    out = []
    for port, n in s.by_port:
        if n < threshold:
            break
        side = "this host's server (listener on the port) closes first" if port in listen_ports else \
            "this host's client closes first"
        out.append(Signal("time-wait", "info", f"tcp :{port}", f"{n} sockets in TIME_WAIT on local port {port}: {side}",
                          f"state time-wait and sport = :{port}", "timewait", [],
                          {"local_port": port, "count": n, "closed_first": "server" if port in listen_ports else "client"}))
    return out
