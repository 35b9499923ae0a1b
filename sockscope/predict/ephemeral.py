"""bind() to port 0: is an ephemeral port left? (kernel-bind-rules §7)

inet_csk_find_open_port() walks ip_local_port_range, skips ip_local_reserved_ports, and
takes a port on which no overlapping, device-compatible socket exists, whatever the reuse
options (SO_REUSEADDR counts only with net.ipv4.ip_autobind_reuse=1). UDP's scan skips a
socket when both have SO_REUSEADDR, or both SO_REUSEPORT under one uid.
"""

from __future__ import annotations

from sockscope.model import Snapshot

from .rules import NOT_IN_BIND_TABLES, Me, Other, World, devices_compatible, make_other
from .addresses import tcp_overlap, udp_overlap
from .types import Verdict


def _takes_port(me: Me, o: Other, w: World, autobind_reuse: bool) -> bool:
    ra2, rp2, v6only2, _ = w
    if not devices_compatible(me.ifindex, o.rec.ifindex):
        return False
    if me.proto == "tcp":
        if not tcp_overlap(me.addr, o.addr, me.v6only, v6only2):
            return False
        return not (autobind_reuse and me.reuseaddr and ra2 and o.rec.state != "LISTEN")
    if me.reuseaddr and ra2:
        return False
    if not udp_overlap(me.addr, o.addr, me.v6only, v6only2):
        return False
    return not (me.reuseport and rp2 and me.uid == o.rec.uid)


def check_ephemeral(snapshot: Snapshot, me: Me, label: str) -> Verdict:
    facts = snapshot.facts
    low, high = facts.ip_local_port_range
    reserved = facts.ip_local_reserved_ports
    candidates = [p for p in range(low, high + 1) if p not in reserved]
    taken = maybe = 0
    for port in candidates:
        recs = snapshot.on_port(me.proto, port)
        if not recs:
            continue
        seen: set[bool] = set()
        for rec in recs:
            if me.proto == "tcp" and rec.state in NOT_IN_BIND_TABLES:
                continue
            o = make_other(rec)
            seen |= {_takes_port(me, o, w, facts.ip_autobind_reuse) for w in o.worlds}
            if seen == {True}:
                break
        if True in seen and False not in seen:
            taken += 1
        elif True in seen:
            # some socket takes it in some world, none for sure
            maybe += 1
    free = len(candidates) - taken - maybe
    scope = (
        f"ip_local_port_range {low}-{high} holds {high - low + 1} ports, {len(reserved & set(range(low, high + 1)))} reserved"
    )
    if free > 0:
        return Verdict(
            "ok",
            None,
            None,
            explanation=f"bind() of {label} would get a free port: {free} ports are free ({scope}; {taken} in use).",
        )
    if maybe == 0:
        return Verdict(
            "conflict",
            "EADDRINUSE",
            "bind",
            explanation=f"bind() of {label} would fail with EADDRINUSE: no ephemeral port is left ({scope}; all {taken} others in use).",
            suggestions=[
                "Widen net.ipv4.ip_local_port_range or remove entries from ip_local_reserved_ports.",
                "Bind a specific address: ports are only taken for addresses that overlap.",
            ],
        )
    return Verdict(
        "unknown",
        None,
        None,
        explanation=f"bind() of {label} may fail: no port is certainly free, and {maybe} are free only if unread options allow it ({scope}).",
    )
