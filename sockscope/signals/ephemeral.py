"""Ephemeral-port pressure per (source address, destination address:port).

connect() without bind() picks a local port in net.ipv4.ip_local_port_range, skipping
net.ipv4.ip_local_reserved_ports and every port whose bind bucket was made by bind()
(fastreuse >= 0: a listener, a bound-only socket, a socket bound before connect()), and
needs the 4-tuple to be unused (__inet_hash_connect, __inet_check_established). So for
one (source, destination) the ports left are

    range - reserved - ports bound by bind() - ports this (source, destination) uses.

When none is left, connect() fails with EADDRNOTAVAIL. A TIME_WAIT 4-tuple may be reused
when net.ipv4.tcp_tw_reuse allows it (1; 2 = loopback peers only) and the peer's TCP
timestamps are more than a second old: then the count is an estimate, as it is when a
connection in the range may have been bound with bind() before connect() (sock_diag does
not say; the BPF bind-bucket reader does, when Snapshot.tcp_buckets is set).
"""

from __future__ import annotations

import ipaddress
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sockscope.formatting import endpoint
from sockscope.model import Snapshot, SocketRecord

from .types import MAX_COOKIES, Signal

DestKey = tuple[int, str, str, int]  # family, source address, destination address, destination port
NOT_CONNECTED = frozenset({"LISTEN", "UNCONN"})


@dataclass(slots=True)
class PortSpace:
    """The namespace's ephemeral range as connect() sees it."""

    low: int
    high: int
    reserved: int  # reserved ports inside the range
    bound: frozenset[int]  # ports in the range held by bind() (listeners, bound sockets, buckets)
    listeners_in_range: list[SocketRecord]
    bound_exact: bool  # False: connected sockets in the range may also have been bound

    @property
    def usable(self) -> int:
        return self.high - self.low + 1 - self.reserved - len(self.bound)


@dataclass(slots=True)
class DestPressure:
    key: DestKey
    by_state: Counter[str]
    in_use: int
    time_wait: int
    ports_left: int
    usable: int
    tw_reusable: bool
    estimate: bool
    estimate_reasons: list[str]
    cookies: list[int]
    relief_seconds: float | None  # when ports_left is 0: until the first TIME_WAIT of it expires
    slope: float | None = None  # ports per second, from the history
    exhaustion_seconds: float | None = None  # ports_left / slope while it grows
    earliest_tw_ms: int | None = field(default=None, repr=False)

    @property
    def tw_share(self) -> float:
        return self.time_wait / self.in_use if self.in_use else 0.0

    def label(self) -> str:
        family, src, dst, dport = self.key
        left = f"[{src}]" if family == 6 else src
        return f"{left} -> {endpoint(dst, dport, family)}"

    def to_json(self) -> dict[str, Any]:
        family, src, dst, dport = self.key
        return {
            "family": family,
            "src": src,
            "dst": dst,
            "dport": dport,
            "in_use": self.in_use,
            "by_state": dict(sorted(self.by_state.items())),
            "time_wait": self.time_wait,
            "time_wait_share": round(self.tw_share, 4),
            "usable": self.usable,
            "ports_left": self.ports_left,
            "used_share": round(self.in_use / self.usable, 4) if self.usable > 0 else 1.0,
            "time_wait_reusable": self.tw_reusable,
            "estimate": self.estimate,
            "estimate_reasons": self.estimate_reasons,
            "slope_per_second": None if self.slope is None else round(self.slope, 4),
            "seconds_to_exhaustion": None if self.exhaustion_seconds is None else round(self.exhaustion_seconds, 1),
            "seconds_to_relief": None if self.relief_seconds is None else round(self.relief_seconds, 1),
        }


def port_space(snapshot: Snapshot) -> PortSpace:
    facts = snapshot.facts
    low, high = facts.ip_local_port_range
    in_range = range(low, high + 1)
    reserved = {p for p in facts.ip_local_reserved_ports if low <= p <= high}
    bound: set[int] = set()
    listeners: list[SocketRecord] = []
    for r in snapshot.sockets:
        if r.proto == "tcp" and r.state in NOT_CONNECTED and low <= r.local_port <= high:
            if r.local_port not in reserved:
                bound.add(r.local_port)
            if r.state == "LISTEN":
                listeners.append(r)
    exact = False
    if snapshot.tcp_buckets is not None:
        exact = True
        for port, buckets in snapshot.tcp_buckets.items():
            if port in in_range and port not in reserved and any(b.fastreuse >= 0 for b in buckets):
                bound.add(port)
    return PortSpace(low, high, len(reserved), frozenset(bound), listeners, exact)


def _tw_reusable(facts_tw_reuse: int, dst: str) -> bool:
    if facts_tw_reuse == 1:
        return True
    if facts_tw_reuse == 2:
        try:
            return ipaddress.ip_address(dst).is_loopback or dst.startswith("::ffff:127.")
        except ValueError:
            return False
    return False


def ephemeral_pressure(snapshot: Snapshot, space: PortSpace) -> list[DestPressure]:
    """Every (source, destination) with connections from the ephemeral range, most used first."""
    listen_ports = {r.local_port for r in snapshot.sockets if r.proto == "tcp" and r.state == "LISTEN"}
    groups: dict[DestKey, list[SocketRecord]] = defaultdict(list)
    for r in snapshot.sockets:
        if (r.proto != "tcp" or r.state in NOT_CONNECTED or r.peer_port == 0
                or not space.low <= r.local_port <= space.high or r.local_port in listen_ports):
            continue  # accepted connections share their listener's port: not ephemeral
        groups[(r.family, r.local_addr, r.peer_addr, r.peer_port)].append(r)
    # ports held by connections to any destination, not bound: those of *other* destinations
    # count as free for this one (connect() shares a port among 4-tuples), unless bound before
    # connect(), which sock_diag does not tell (ports ⊆ client_ports, so a count suffices)
    client_unbound = len({r.local_port for recs in groups.values() for r in recs} - space.bound)
    out: list[DestPressure] = []
    for key, recs in groups.items():
        by_state = Counter(r.state for r in recs)
        ports = {r.local_port for r in recs}
        tw = [r for r in recs if r.timewait]
        reasons: list[str] = []
        tw_reusable = bool(tw) and _tw_reusable(snapshot.facts.tcp_tw_reuse, key[2])
        if tw_reusable:
            reasons.append("net.ipv4.tcp_tw_reuse lets connect() reuse a TIME_WAIT 4-tuple whose timestamps are over 1 s old")
        own = len(ports - space.bound)
        others = client_unbound - own
        if not space.bound_exact and others:
            reasons.append(f"{others} port(s) used by other destinations count as free, but may have been bound with bind() before connect()")
        left = max(space.usable - own, 0)
        expiring = [r.timer.expires_ms for r in tw if r.timer is not None]
        earliest = min(expiring) if expiring else None
        relief = earliest / 1000.0 if (left == 0 and earliest is not None) else None
        cookies = [r.cookie for r in recs[:MAX_COOKIES]]
        out.append(DestPressure(key, by_state, len(ports), len(tw), left, space.usable, tw_reusable,
                                bool(reasons), reasons, cookies, relief, earliest_tw_ms=earliest))
    out.sort(key=lambda d: (-d.in_use, d.key))
    return out


def ephemeral_signal(d: DestPressure) -> Signal | None:
    used = d.in_use / d.usable if d.usable > 0 else 1.0
    if d.ports_left == 0:
        severity = "critical"
    elif used >= 0.8 or (d.exhaustion_seconds is not None and d.exhaustion_seconds < 300):
        severity = "warning"
    elif used >= 0.5:
        severity = "info"
    else:
        return None
    est = "about " if d.estimate else ""
    text = (f"{d.in_use} of {d.usable} usable ephemeral ports in use ({d.tw_share:.0%} TIME_WAIT), "
            f"{est}{d.ports_left} left")
    if d.ports_left == 0:
        text += ": connect() to it fails with EADDRNOTAVAIL"
        if d.relief_seconds is not None:
            text += f" until the first TIME_WAIT expires in {d.relief_seconds:.0f} s"
    elif d.exhaustion_seconds is not None:
        text += f"; at +{d.slope:.2f} ports/s, exhausted in {d.exhaustion_seconds:.0f} s"
    if d.estimate:
        text += " (estimate: " + "; ".join(d.estimate_reasons) + ")"
    family, src, dst, dport = d.key
    dst_text = f"[{dst}]" if family == 6 else dst
    return Signal(
        kind="ephemeral",
        severity=severity,
        subject=d.label(),
        summary=text,
        filter=f"tcp and src {src if family == 4 else '[' + src + ']'} and dst {dst_text}:{dport}",
        pane="established",
        cookies=d.cookies,
        data=d.to_json(),
    )


def listener_in_range_signal(r: SocketRecord, space: PortSpace) -> Signal:
    owner = f" ({r.process}/{r.pid})" if r.pid is not None else ""
    return Signal(
        kind="listener-in-range",
        severity="warning",
        subject=f"tcp {endpoint(r.local_addr, r.local_port, r.family, r.device)}{owner}",
        summary=(f"listens on port {r.local_port}, inside ip_local_port_range {space.low}-{space.high}: "
                 "while it is down (a restart), an outgoing connection can take the port and its bind() "
                 "then fails with EADDRINUSE; add it to net.ipv4.ip_local_reserved_ports"),
        filter=f"tcp and state listen and sport = :{r.local_port}",
        pane="listening",
        cookies=[r.cookie],
        data={"local_addr": r.local_addr, "local_port": r.local_port, "family": r.family,
              "range": [space.low, space.high], "pid": r.pid, "process": r.process},
    )
