"""What would work instead: each suggestion is itself checked with the predictor."""

from __future__ import annotations

from dataclasses import replace

from sockscope.model import Snapshot

from sockscope.sanitize import host_text

from .addresses import format_endpoint
from .types import Candidate, Verdict

MAX_PORT_SEARCH = 50


def _works(snapshot: Snapshot, cand: Candidate) -> bool:
    from .engine import CandidateError, check

    try:
        return check(snapshot, cand, suggest=False).verdict == "ok"
    except CandidateError:
        return False


def suggestions_for(snapshot: Snapshot, cand: Candidate, verdict: Verdict) -> list[str]:
    out: list[str] = []
    blockers = verdict.blockers
    recs = [b.socket for b in blockers]
    options = [
        (dict(reuseaddr=True), "Set SO_REUSEADDR on the new socket"),
        (dict(reuseport=True), "Set SO_REUSEPORT on the new socket"),
        (dict(reuseaddr=True, reuseport=True), "Set both SO_REUSEADDR and SO_REUSEPORT on the new socket"),
    ]
    for change, text in options:
        if all(getattr(cand, k) == v for k, v in change.items()):
            continue
        if _works(snapshot, replace(cand, **change)):
            out.append(f"{text}: the bind would then succeed.")
            break
    live_old = [b.socket for b in blockers if b.rule == "old-without-reuseaddr" and not b.socket.timewait]
    if live_old and cand.reuseaddr:
        who = ", ".join(sorted({f"{host_text(r.process)} (pid {r.pid})" for r in live_old if r.pid is not None})) or "the existing socket"
        out.append(
            f"Set SO_REUSEADDR on the existing socket too ({who}): Linux requires it on both sockets "
            "(neither may be listening)."
        )
    uids = sorted({r.uid for r in recs if not r.timewait and r.reuseport and r.uid != cand.uid})
    for uid in uids:
        if _works(snapshot, replace(cand, reuseport=True, uid=uid)):
            out.append(
                f"Run the new socket as uid {uid}, the owner of the SO_REUSEPORT socket(s) there, with SO_REUSEPORT: "
                "a reuseport group needs one owner uid."
            )
            break
    tw = [r for r in recs if r.timewait]
    if tw and len(tw) == len(recs):
        left = max((r.timer.expires_ms for r in tw if r.timer), default=60_000) / 1000
        out.append(
            f"Wait for the {len(tw)} TIME_WAIT socket(s) to expire: the last has {left:.0f} s left. "
            "Next time set SO_REUSEADDR on the server socket, so that its own TIME_WAITs never block a restart."
        )
    facts = snapshot.facts
    if cand.family == 4:
        addrs = [a for addrs in facts.addresses.values() for a in addrs if ":" not in a]
    else:
        addrs = [a for a, _i, scoped, tentative in facts.v6_addrs if not tentative and not scoped]
    for addr in addrs:
        if addr != cand.addr and _works(snapshot, replace(cand, addr=addr)):
            out.append(f"Bind {format_endpoint(cand.family, addr, cand.port)} instead: nothing there blocks it.")
            break
    if not cand.device and recs and all(r.device for r in recs):
        # Every blocker is bound to a device: a socket bound to another device does not meet them.
        for name in sorted(facts.interfaces.values()):
            if _works(snapshot, replace(cand, device=name)):
                out.append(f"Bind the new socket to device {host_text(name)} (SO_BINDTODEVICE): sockets on other devices do not conflict.")
                break
    if cand.port:
        for port in range(cand.port + 1, min(cand.port + MAX_PORT_SEARCH, 65535) + 1):
            if snapshot.busy_ports is not None and (cand.proto, port) in snapshot.busy_ports:
                continue  # a one-port snapshot has not looked at that port's sockets
            if _works(snapshot, replace(cand, port=port)):
                out.append(f"Or use another port: {format_endpoint(cand.family, cand.addr, port)} is free for this socket.")
                break
    holders: dict[int, str] = {}
    for r in recs:
        for o in r.owners:
            holders.setdefault(o.pid, o.process)
    if holders:
        listed = ", ".join(f"{host_text(name)} (pid {pid})" for pid, name in sorted(holders.items())[:4])
        out.append(f"Or stop what holds the port: {listed}.")
    return out
