"""What a signal is: a subject, a severity, one sentence, and how to find its sockets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SEVERITIES: tuple[str, ...] = ("ok", "info", "warning", "critical")
RANK: dict[str, int] = {s: i for i, s in enumerate(SEVERITIES)}


def worst(*severities: str) -> str:
    return max(severities, key=RANK.__getitem__, default="ok")


@dataclass(slots=True)
class Signal:
    """One finding. `filter` is an ss-like filter (sockscope.filter) that shows exactly the
    sockets behind it; `cookies` holds up to MAX_COOKIES of their socket cookies. `data`
    holds the numbers, the same ones JSON and Prometheus give."""

    kind: str  # "listener", "listener-in-range", "ephemeral", "close-wait", "time-wait", "reuseport"
    severity: str
    subject: str  # "tcp 0.0.0.0:8080", "127.0.0.1 -> 127.0.0.1:80", "pid 812 nginx <- 10.0.0.5"
    summary: str  # one sentence (host strings in it are raw: sanitize before a terminal)
    filter: str
    pane: str  # the socket pane that shows these sockets: listening, established, timewait, other
    cookies: list[int] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def rank(self) -> int:
        return RANK[self.severity]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "subject": self.subject,
            "summary": self.summary,
            "filter": self.filter,
            "pane": self.pane,
            "cookies": list(self.cookies),
            "data": self.data,
        }


MAX_COOKIES = 200  # per signal: enough to point at the sockets, bounded on a busy host
