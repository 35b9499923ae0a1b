"""Listener health: accept queue against backlog, and TcpExt overflow attribution.

sock_diag reports a TCP listener's accept queue length (sk_ack_backlog) as idiag_rqueue
(our recv_q) and its backlog (sk_max_ack_backlog, listen()'s argument capped by
net.core.somaxconn) as idiag_wqueue (our send_q), as `ss` shows them. The kernel calls the
queue full when sk_ack_backlog > sk_max_ack_backlog (sk_acceptq_is_full), so a backlog of
N holds N + 1 connections: capacity = backlog + 1, fill = recv_q / capacity.

ListenOverflows / ListenDrops are counters of the whole namespace. When they move between
two observations, the move is *attributed* to the listeners that were full at either end
of the interval: the kernel does not say which listener dropped, so this is an
attribution, not a measurement (shared when several listeners were full).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sockscope.formatting import endpoint
from sockscope.model import SocketRecord

from .types import MAX_COOKIES, Signal

ListenerKey = tuple[int, str, int, int]  # family, address, port, cookie


@dataclass(slots=True)
class ListenerHealth:
    rec: SocketRecord
    recv_q: int
    backlog: int
    capacity: int
    fill: float  # 0..1
    full: bool
    overflows: int = 0  # attributed ListenOverflows in the last interval
    drops: int = 0  # attributed ListenDrops in the last interval
    attribution: str = "none"  # "sole", "shared" (several listeners were full), "none"
    overflows_total: int = 0  # attributed since the tracker started (a counter)
    drops_total: int = 0

    @property
    def key(self) -> ListenerKey:
        r = self.rec
        return (r.family, r.local_addr, r.local_port, r.cookie)

    @property
    def where(self) -> str:
        r = self.rec
        return endpoint(r.local_addr, r.local_port, r.family, r.device)

    def to_json(self) -> dict[str, Any]:
        r = self.rec
        return {
            "proto": "tcp",
            "family": r.family,
            "local_addr": r.local_addr,
            "local_port": r.local_port,
            "cookie": r.cookie,
            "pid": r.pid,
            "process": r.process,
            "recv_q": self.recv_q,
            "backlog": self.backlog,
            "capacity": self.capacity,
            "fill": round(self.fill, 4),
            "full": self.full,
            "overflows": self.overflows,
            "drops": self.drops,
            "attribution": self.attribution,
            "overflows_total": self.overflows_total,
            "drops_total": self.drops_total,
        }


def listener_health(listeners: list[SocketRecord]) -> list[ListenerHealth]:
    out = []
    for r in listeners:
        capacity = r.send_q + 1
        fill = min(r.recv_q / capacity, 1.0)
        out.append(ListenerHealth(r, r.recv_q, r.send_q, capacity, fill, r.recv_q > r.send_q))
    return out


def attribute(
    health: list[ListenerHealth],
    was_full: set[ListenerKey],
    d_overflows: int | None,
    d_drops: int | None,
) -> tuple[int, int]:
    """Give the counters' moves to the listeners full now or at the previous observation.
    Returns what could not be attributed (moves while no listener was seen full)."""
    suspects = [h for h in health if h.full or h.key in was_full]
    d_overflows = max(d_overflows or 0, 0)
    d_drops = max(d_drops or 0, 0)
    if not suspects:
        return d_overflows, d_drops
    kind = "sole" if len(suspects) == 1 else "shared"
    for h in suspects:
        if d_overflows or d_drops:
            h.overflows, h.drops, h.attribution = d_overflows, d_drops, kind
    return 0, 0


def listener_signal(h: ListenerHealth) -> Signal | None:
    r = h.rec
    if h.recv_q == 0 and not h.overflows and not h.drops:
        return None
    if h.full or h.overflows:
        severity = "critical"
    elif h.fill >= 0.8:
        severity = "warning"
    else:
        severity = "info"
    text = f"accept queue {h.recv_q}/{h.capacity} ({h.fill:.0%} of backlog {h.backlog} + 1)"
    if h.full:
        text += ", full: new connections are dropped"
    if h.overflows or h.drops:
        share = "" if h.attribution == "sole" else " (shared among the listeners that were full)"
        text += (f"; TcpExt ListenOverflows +{h.overflows}, ListenDrops +{h.drops} in the last "
                 f"interval, attributed to it because it was full{share}")
    owner = f" ({r.process}/{r.pid})" if r.pid is not None else ""
    return Signal(
        kind="listener",
        severity=severity,
        subject=f"tcp {h.where}{owner}",
        summary=text,
        filter=f"tcp and sport = :{r.local_port}",
        pane="listening",
        cookies=[r.cookie][:MAX_COOKIES],
        data=h.to_json(),
    )
