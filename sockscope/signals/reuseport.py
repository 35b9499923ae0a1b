"""Reuseport groups: sockets that share protocol, address and port (SO_REUSEPORT).

Each member's owner, executable (/proc/PID/exe, read by sockscope.collectors.procinfo)
and start time, and its own queue (a listener's accept queue; a UDP socket's receive
queue in bytes). The alarm: members running different executables, or started far apart
(a process left over from an earlier release still takes its share of the traffic).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any, Protocol

from sockscope.formatting import endpoint
from sockscope.model import Snapshot, SocketRecord

from .types import Signal

GroupKey = tuple[str, int, str, int, int]  # proto, family, address, port, ifindex
START_SPREAD_SECONDS = 600.0  # members started further apart than this raise the alarm


class ProcFacts(Protocol):
    @property
    def exe(self) -> str | None: ...

    @property
    def started_at(self) -> float | None: ...


@dataclass(slots=True)
class Member:
    rec: SocketRecord
    exe: str | None
    started_at: float | None

    def to_json(self) -> dict[str, Any]:
        r = self.rec
        return {"cookie": r.cookie, "pid": r.pid, "process": r.process, "exe": self.exe,
                "started_at": self.started_at, "recv_q": r.recv_q}


@dataclass(slots=True)
class ReuseportGroup:
    key: GroupKey
    members: list[Member]
    executables: list[str]
    start_spread: float | None
    alarms: list[str]

    def label(self) -> str:
        proto, family, addr, port, _ = self.key
        dev = self.members[0].rec.device if self.members else None
        return f"{proto} {endpoint(addr, port, family, dev)}"

    def to_json(self) -> dict[str, Any]:
        proto, family, addr, port, ifindex = self.key
        return {"proto": proto, "family": family, "local_addr": addr, "local_port": port,
                "size": len(self.members), "executables": self.executables,
                "start_spread_seconds": None if self.start_spread is None else round(self.start_spread, 1),
                "alarms": self.alarms, "members": [m.to_json() for m in self.members]}


def member_pids(snapshot: Snapshot) -> set[int]:
    """The pids whose /proc/PID/exe the groups need (a collector reads them)."""
    return {o.pid for recs in _groups(snapshot).values() for r in recs for o in r.owners}


def _groups(snapshot: Snapshot) -> dict[GroupKey, list[SocketRecord]]:
    groups: dict[GroupKey, list[SocketRecord]] = defaultdict(list)
    for r in snapshot.sockets:
        if r.reuseport is False:
            continue
        if (r.proto == "tcp" and r.state == "LISTEN") or (r.proto == "udp" and r.peer_port == 0):
            groups[(r.proto, r.family, r.local_addr, r.local_port, r.ifindex)].append(r)
    return {k: v for k, v in groups.items() if len(v) > 1}


def reuseport_groups(snapshot: Snapshot, procs: Mapping[int, ProcFacts],
                     spread_limit: float = START_SPREAD_SECONDS) -> list[ReuseportGroup]:
    out = []
    for key, recs in _groups(snapshot).items():
        members = []
        for r in recs:
            info = procs.get(r.pid) if r.pid is not None else None
            members.append(Member(r, info.exe if info else None, info.started_at if info else None))
        exes = sorted({m.exe for m in members if m.exe})
        starts = [m.started_at for m in members if m.started_at is not None]
        spread = max(starts) - min(starts) if len(starts) > 1 else None
        alarms = []
        if len(exes) > 1:
            alarms.append("members run different executables: " + ", ".join(exes))
        if spread is not None and spread > spread_limit:
            alarms.append(f"members started {spread:.0f} s apart (over {spread_limit:.0f} s)")
        out.append(ReuseportGroup(key, members, exes, spread, alarms))
    out.sort(key=lambda g: (-len(g.alarms), -len(g.members), g.key))
    return out


def reuseport_signal(g: ReuseportGroup) -> Signal:
    proto, family, addr, port, _ = g.key
    queues = [m.rec.recv_q for m in g.members]
    unbalanced = max(queues) > 0 and max(queues) >= 2 * (sum(queues) / len(queues)) and len(queues) > 1
    if g.alarms:
        severity = "warning"
        text = "; ".join(g.alarms) + " (a process left from an earlier release may still take traffic)"
    elif unbalanced:
        severity = "info"
        text = f"queues unbalanced across {len(queues)} members: " + ", ".join(map(str, queues))
    else:
        severity = "ok"
        text = f"{len(g.members)} members, queues " + ", ".join(map(str, queues))
    state = "state listen and " if proto == "tcp" else ""
    return Signal("reuseport", severity, f"{g.label()} ({len(g.members)} members)", text,
                  f"{proto} and {state}sport = :{port}", "listening", [m.rec.cookie for m in g.members], g.to_json())
