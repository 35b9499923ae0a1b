"""What would work instead. Every suggestion is itself checked with the engine before it
is offered: a changed candidate, or a snapshot changed the way the suggestion says (the
existing socket with SO_REUSEADDR, the holding process stopped)."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from sockscope.model import Snapshot
from sockscope.sanitize import host_text

from .addresses import bind_addr, format_endpoint
from .departure import after_exit, with_reuseaddr
from .engine import CandidateError, evaluate
from .types import Candidate, Verdict
from .waiting import ok_after_s

MAX_PORT_SEARCH = 50


def _verdict(snapshot: Snapshot, cand: Candidate) -> Verdict | None:
    """The verdict alone: a suggestion shows no blocker of its own."""
    try:
        return evaluate(snapshot, cand, explain=False)
    except CandidateError:
        return None


def _works(snapshot: Snapshot, cand: Candidate) -> bool:
    v = _verdict(snapshot, cand)
    return v is not None and v.verdict == "ok"


def suggestions_for(snapshot: Snapshot, cand: Candidate, verdict: Verdict) -> list[str]:
    if verdict.errno in ("EACCES", "EADDRNOTAVAIL", "EINVAL"):
        return early_suggestions(snapshot, cand, verdict.errno)
    out: list[str] = []
    blockers = verdict.blockers
    recs = [b.socket for b in blockers]
    options = [
        ((True, cand.reuseport), "Set SO_REUSEADDR on the new socket"),
        ((cand.reuseaddr, True), "Set SO_REUSEPORT on the new socket"),
        ((True, True), "Set both SO_REUSEADDR and SO_REUSEPORT on the new socket"),
    ]
    for (reuseaddr, reuseport), text in options:
        if (reuseaddr, reuseport) == (cand.reuseaddr, cand.reuseport):
            continue
        if _works(snapshot, replace(cand, reuseaddr=reuseaddr, reuseport=reuseport)):
            out.append(f"{text}: the bind would then succeed.")
            break
    # SO_REUSEADDR on the existing socket too: only where Linux could then share the port
    # (never with a listener), and only when the predictor says the bind would then work.
    live_old = [b.socket for b in blockers if b.rule == "old-without-reuseaddr" and not b.socket.timewait]
    if cand.reuseaddr and live_old and not any(r.state == "LISTEN" for r in recs):
        if _works(with_reuseaddr(snapshot, live_old), cand):
            who = ", ".join(sorted({f"{host_text(r.process)} (pid {r.pid})" for r in live_old if r.pid is not None}))
            out.append(
                f"Set SO_REUSEADDR on the existing socket too ({who or 'the existing socket'}): Linux requires it on "
                "both sockets; with it there the bind would succeed."
            )
    uids = sorted({r.uid for r in recs if not r.timewait and r.reuseport and r.uid != cand.uid})
    for uid in uids:
        if _works(snapshot, replace(cand, reuseport=True, uid=uid)):
            out.append(
                f"Run the new socket as uid {uid}, the owner of the SO_REUSEPORT socket(s) there, with SO_REUSEPORT: "
                "a reuseport group needs one owner uid."
            )
            break
    if verdict.ok_after_s:
        tw = len(recs)
        out.append(
            f"Wait for the {tw} timewait socket(s) to expire: the bind would succeed in {verdict.ok_after_s:.0f} s. "
            "Next time set SO_REUSEADDR on the server socket, so that its own TIME_WAITs never block a restart."
        )
    facts = snapshot.facts
    if cand.family == 4:
        addrs = [a for addrs in facts.addresses.values() for a in addrs if ":" not in a]
    else:
        addrs = [a for a, _i, scoped, tentative in facts.v6_addrs if not tentative and not scoped]
    for addr in addrs:
        if addr != cand.addr and _works(snapshot, replace(cand, addr=addr)):
            out.append(f"Bind {format_endpoint(cand.family, addr, cand.port, cand.device)} instead: nothing there blocks it.")
            break
    if not cand.device and recs and all(r.device for r in recs):
        # Every blocker is bound to a device: a socket bound to another device does not meet them.
        for name in sorted(facts.interfaces.values()):
            if _works(snapshot, replace(cand, device=name)):
                out.append(
                    f"Bind the new socket to device {host_text(name)} (SO_BINDTODEVICE): sockets on other devices do not conflict."
                )
                break
    if cand.port:
        for port in range(cand.port + 1, min(cand.port + MAX_PORT_SEARCH, 65535) + 1):
            if snapshot.busy_ports is not None and (cand.proto, port) in snapshot.busy_ports:
                continue  # a one-port snapshot has not looked at that port's sockets
            if _works(snapshot, replace(cand, port=port)):
                out.append(f"Or use another port: {format_endpoint(cand.family, cand.addr, port, cand.device)} is free for this socket.")
                break
    out.extend(_stop_holders(snapshot, cand, recs))
    return out


def _stop_holders(snapshot: Snapshot, cand: Candidate, recs: list) -> list[str]:
    """Stopping the processes that hold the blockers, checked on the snapshot as it would
    be after they exit (their connections then linger as TIME_WAIT)."""
    holders: dict[int, str] = {}
    for r in recs:
        for o in r.owners:
            holders.setdefault(o.pid, o.process)
    if not holders:
        return []
    listed = ", ".join(f"{host_text(name)} (pid {pid})" for pid, name in sorted(holders.items())[:4])
    if len(holders) > 4:
        listed += f" and {len(holders) - 4} more"
    after = after_exit(snapshot, set(holders))
    v = _verdict(after, cand)
    if v is None:
        return []
    if v.verdict == "ok":
        return [f"Or stop what holds the port: {listed}; the bind would then succeed."]
    wait = ok_after_s(after, cand, v)
    if wait:
        return [
            f"Or stop what holds the port: {listed}; the bind would succeed about {wait:.0f} s later, "
            "when the TIME_WAIT sockets its connections leave behind expire."
        ]
    return []


def early_suggestions(snapshot: Snapshot, cand: Candidate, errno: str | None) -> list[str]:
    facts = snapshot.facts
    if errno == "EACCES":
        out = []
        if _works(snapshot, replace(cand, uid=0)):
            out.append("Run as root, or give the program CAP_NET_BIND_SERVICE (setcap cap_net_bind_service=+ep PROGRAM).")
        out.append(f"Use a port at or above {facts.ip_unprivileged_port_start}, or lower net.ipv4.ip_unprivileged_port_start.")
        return out
    if errno == "EADDRNOTAVAIL":
        if cand.family == 4:
            local = sorted({a for addrs in facts.addresses.values() for a in addrs if ":" not in a})
        else:
            local = sorted({a for a, _i, scoped, t in facts.v6_addrs if not t and not scoped})
        usable: list[str] = []
        for a in local[:32]:
            v = _verdict(snapshot, replace(cand, addr=a))
            if v is not None and v.errno != "EADDRNOTAVAIL":
                usable.append(a)
        usable = usable[:8]
        out = []
        if usable:
            out.append("Bind an address this namespace has: " + ", ".join(usable) + ", or the wildcard.")
        out.append(
            "Or allow non-local binds: sysctl net.ipv4.ip_nonlocal_bind=1 (net.ipv6.ip_nonlocal_bind for IPv6), "
            "or IP_FREEBIND on the socket."
        )
        return out
    if errno == "EINVAL" and cand.family == 6:
        if ipaddress.ip_address(cand.addr).is_link_local:
            return ["Name the interface: [fe80::...%eth0]:PORT or --device eth0."]
        if bind_addr(6, cand.addr).kind == "mapped" and _works(snapshot, replace(cand, v6only=False)):
            return ["Clear IPV6_V6ONLY (--no-v6only), or bind the IPv4 address on an IPv4 socket."]
    return []
