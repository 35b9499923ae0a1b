"""Restart rehearsal: would another socket like this one bind now (`check --like`), and
would a process's sockets bind again if it exited and started over (`check --restart`)?

Both ask the engine about candidates copied from real sockets: the same protocol,
address, port, device, options and uid. A restart is asked against the snapshot as it
would be right after the process exits (departure.after_exit: its own sockets leave, its
connections linger as timewait sockets), with the sockets it already re-opened added one
by one, in the order it first opened them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from itertools import product
from typing import Any

from sockscope.model import Snapshot, SocketRecord

from .answer import check
from .departure import after_exit, closes_with, with_added
from .explain import describe
from .types import Candidate, Verdict

ORDER = {"conflict": 2, "unknown": 1, "ok": 0}


def is_bound_service(rec: SocketRecord) -> bool:
    """A socket a restarted program would bind again: a TCP listener or bound-only socket,
    or a UDP socket that is bound and not connected."""
    return rec.local_port != 0 and rec.state in ("LISTEN", "UNCONN")


def like_candidates(rec: SocketRecord) -> list[Candidate]:
    """Candidates with exactly `rec`'s options and uid; one per possible value of an
    option that could not be read."""
    v6: tuple[bool | None, ...] = (rec.v6only,) if rec.v6only is not None or rec.family == 4 else (False, True)
    if rec.family == 4:
        v6 = (None,)
    out = []
    for ra, rp, v6only in product(
        (rec.reuseaddr,) if rec.reuseaddr is not None else (False, True),
        (rec.reuseport,) if rec.reuseport is not None else (False, True),
        v6,
    ):
        out.append(
            Candidate(
                proto=rec.proto,
                family=rec.family,
                addr=rec.local_addr,
                port=rec.local_port,
                reuseaddr=bool(ra),
                reuseport=bool(rp),
                v6only=v6only,
                device=rec.device,
                uid=rec.uid,
                listen=rec.proto == "tcp" and rec.state == "LISTEN",
            )
        )
    return out


def check_like(snapshot: Snapshot, rec: SocketRecord) -> Verdict:
    """Would another socket with `rec`'s options and uid bind (and listen) there now?"""
    verdicts = [check(snapshot, cand) for cand in like_candidates(rec)]
    kinds = {v.verdict for v in verdicts}
    if len(kinds) == 1:
        return verdicts[0]
    first = verdicts[0]
    unread = ", ".join(
        name for name, value in (("SO_REUSEADDR", rec.reuseaddr), ("SO_REUSEPORT", rec.reuseport)) if value is None
    ) or "IPV6_V6ONLY"
    return replace(
        first,
        verdict="unknown",
        errno=None,
        stage=None,
        explanation=(
            f"A socket like {describe(rec)} may or may not bind: the answer hangs on its {unread}, "
            "which could not be read."
        ),
        ok_after_s=None,
        when="",
    )


@dataclass(slots=True)
class RestartItem:
    socket: SocketRecord
    verdict: Verdict | None  # None: the socket stays open (another process holds it too)

    @property
    def outcome(self) -> str:
        return "kept" if self.verdict is None else self.verdict.verdict

    def to_json(self) -> dict[str, Any]:
        return {
            "socket": self.socket.to_json(),
            "outcome": self.outcome,
            "check": self.verdict.to_json() if self.verdict is not None else None,
        }


@dataclass(slots=True)
class RestartReport:
    pid: int
    process: str | None
    items: list[RestartItem] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """The worst of the sockets' verdicts ("ok" when nothing needs binding again)."""
        worst = "ok"
        for item in self.items:
            if item.verdict is not None and ORDER[item.verdict.verdict] > ORDER[worst]:
                worst = item.verdict.verdict
        return worst

    @property
    def ok_after_s(self) -> float | None:
        waits = [i.verdict.ok_after_s for i in self.items if i.verdict is not None]
        if any(w is None for w in waits):
            return None
        return max(waits, default=0.0)  # type: ignore[type-var]

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "process": self.process,
            "verdict": self.verdict,
            "ok_after_s": self.ok_after_s,
            "sockets": [i.to_json() for i in self.items],
        }


def rehearse_restart(snapshot: Snapshot, pid: int) -> RestartReport:
    """Would every listening and bound socket of `pid` bind again right after it exited?"""
    mine = [r for r in snapshot.sockets if any(o.pid == pid for o in r.owners) and is_bound_service(r)]
    process = next((o.process for r in snapshot.sockets for o in r.owners if o.pid == pid), None)
    # In the order the process opened them: its lowest fd first.
    mine.sort(key=lambda r: min(o.fd for o in r.owners if o.pid == pid))
    report = RestartReport(pid, process)
    future = after_exit(snapshot, {pid})
    for rec in mine:
        if not closes_with(rec, {pid}):
            report.items.append(RestartItem(rec, None))
            continue
        report.items.append(RestartItem(rec, check_like(future, rec)))
        # The restarted program holds this socket again before it opens the next one.
        future = with_added(future, [replace(rec, inode=0, cookie=0)])
    return report
