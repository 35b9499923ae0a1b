"""Blocker groups: thirty near-identical TIME_WAIT blockers are one line, not ninety.

Blockers that share protocol, state, local address and port, device, options, owner, rule
and reason form a group; what differs between them (peers, timers) is summarised as a
spread ("127.0.0.1:*", "12-58 s left"). Pure: the CLI and the TUI both write groups from
here, and `--json` lists them next to the unchanged `blockers`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sockscope.formatting import endpoint
from sockscope.model import SocketRecord

from .explain import describe, local_text, options_text, owner_parts
from .types import Blocker


def _key(b: Blocker) -> tuple[Any, ...]:
    r = b.socket
    owners = tuple(sorted({(o.pid, o.process, o.user) for o in r.owners}))
    return (
        r.proto,
        r.family,
        r.state,
        r.local_addr,
        r.local_port,
        r.ifindex,
        r.reuseaddr,
        r.reuseport,
        r.v6only if r.family == 6 else None,
        None if r.timewait else r.uid,  # a timewait socket reports uid 0, never compared
        r.timewait,
        owners,
        b.rule,
        b.because or b.reason,
        b.definite,
    )


@dataclass(slots=True)
class BlockerGroup:
    """Blockers alike in everything but their peers and timers."""

    members: list[Blocker] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.members)

    @property
    def first(self) -> Blocker:
        return self.members[0]

    @property
    def rule(self) -> str:
        return self.first.rule

    @property
    def definite(self) -> bool:
        return self.first.definite

    @property
    def reason(self) -> str:
        """The shared sentence: why each member blocks (without the member's description)."""
        b = self.first
        return b.because or b.reason

    @property
    def records(self) -> list[SocketRecord]:
        return [b.socket for b in self.members]

    def timer_range_s(self) -> tuple[float, float] | None:
        """(least, most) seconds left on the members' timers, or None when none has one."""
        left = [r.timer.expires_ms / 1000 for r in self.records if r.timer is not None]
        return (min(left), max(left)) if left else None

    def peer_spread(self) -> str | None:
        """The members' peers: one endpoint, "ADDR:*" for one address on many ports, or
        "N peers" (None when no member is connected)."""
        recs = [r for r in self.records if r.peer_port]
        if not recs:
            return None
        addrs = sorted({r.peer_addr for r in recs})
        ports = {r.peer_port for r in recs}
        fam = recs[0].family
        if len(addrs) == 1:
            if len(ports) == 1:
                return endpoint(addrs[0], ports.pop(), fam)
            return (f"[{addrs[0]}]" if fam == 6 else addrs[0]) + ":*"
        return f"{len(recs)} peers on {len(addrs)} addresses"

    def head(self) -> str:
        """One line for people: "31 TCP TIME-WAIT 127.0.0.1:8080 -> 127.0.0.1:* (...)"."""
        if self.count == 1:
            return describe(self.first.socket)
        r = self.first.socket
        text = f"{self.count} x {local_text(r)}"
        peers = self.peer_spread()
        if peers:
            text += f" -> {peers}"
        who = owner_parts(r)
        who.append(options_text(r))
        timers = self.timer_range_s()
        if timers is not None:
            lo, hi = timers
            kind = r.timer.kind if r.timer is not None else ""
            if r.timewait or kind == "timewait":
                who.append(f"{lo:.0f} s left" if round(lo) == round(hi) else f"{lo:.0f}-{hi:.0f} s left")
        return f"{text} ({', '.join(who)})"

    def to_json(self) -> dict[str, Any]:
        timers = self.timer_range_s()
        peers = sorted({(r.peer_addr, r.peer_port) for r in self.records if r.peer_port})
        return {
            "count": self.count,
            "rule": self.rule,
            "reason": self.reason,
            "definite": self.definite,
            "description": self.head(),
            "cookies": [r.cookie for r in self.records],
            "ranges": {
                "expires_s": [round(timers[0], 3), round(timers[1], 3)] if timers else None,
                "peer_addrs": sorted({a for a, _ in peers}),
                "peer_ports": [min(p for _, p in peers), max(p for _, p in peers)] if peers else None,
            },
        }


def group_blockers(blockers: list[Blocker]) -> list[BlockerGroup]:
    """Blockers grouped, in the order each group's first member appears."""
    groups: dict[tuple[Any, ...], BlockerGroup] = {}
    for b in blockers:
        groups.setdefault(_key(b), BlockerGroup()).members.append(b)
    return list(groups.values())
