"""Public types of the conflict predictor, shared by the CLI and the TUI.

The predictor itself (sockscope.predict.check / sockscope.predict.why) is a pure
function of a Snapshot and a Candidate: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sockscope.model import SocketRecord

VerdictKind = Literal["ok", "conflict", "unknown"]
Stage = Literal["bind", "listen"]


@dataclass(slots=True)
class Candidate:
    """A socket someone wants to bind (and, for a TCP server, listen on)."""

    proto: Literal["tcp", "udp"]
    family: int  # 4 or 6
    addr: str  # as ipaddress prints it, no brackets
    port: int  # 0 = ephemeral
    reuseaddr: bool = False
    reuseport: bool = False
    v6only: bool | None = None  # None: the namespace's net.ipv6.bindv6only
    device: str | None = None  # SO_BINDTODEVICE interface name
    uid: int = 0
    listen: bool = True  # TCP only: bind then listen (a server); False = --bind-only


@dataclass(slots=True)
class Blocker:
    """An existing socket that blocks (or may block) the candidate."""

    socket: SocketRecord
    rule: str  # short code, e.g. "addr-overlap", "listener-no-reuseaddr", "reuseport-uid"
    reason: str  # one sentence for people
    definite: bool = True  # False: blocks only if an unknown flag has a certain value
    # The reason without the socket's description ("it is listening: ..."): shared by every
    # member of a blocker group, so groups are keyed on it. Not part of the JSON contract.
    because: str = ""

    def to_json(self) -> dict[str, Any]:
        d = self.socket.to_json()
        d["rule"] = self.rule
        d["reason"] = self.reason
        d["definite"] = self.definite
        return d


@dataclass(slots=True)
class Verdict:
    verdict: VerdictKind
    errno: str | None  # "EADDRINUSE", "EADDRNOTAVAIL", "EACCES", "EINVAL" or None
    stage: Stage | None
    blockers: list[Blocker] = field(default_factory=list)
    explanation: str = ""
    suggestions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # caveats: kernel caches, BSD/macOS differences
    # Seconds after the snapshot when the bind would succeed because every blocker is a
    # timewait socket whose timer then runs out (0 when it succeeds now; None when waiting
    # would not help or cannot be predicted).
    ok_after_s: float | None = None
    when: str = ""  # ok_after_s for people: "would succeed in 41 s, when the last TIME-WAIT expires"
    # The blockers summarised: sockscope.predict.groups.BlockerGroup, filled by answer.check().
    groups: list[Any] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "errno": self.errno,
            "stage": self.stage,
            "blockers": [b.to_json() for b in self.blockers],
            "explanation": self.explanation,
            "suggestions": list(self.suggestions),
            "notes": list(self.notes),
            "ok_after_s": self.ok_after_s,
            "groups": [g.to_json() for g in self.groups],
        }
