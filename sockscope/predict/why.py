"""why(snapshot, proto, port): who holds a port, why, and which simple sockets would bind now."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sockscope.model import Snapshot, SocketRecord

from .addresses import bind_addr, format_endpoint, rcv_saddr_equal
from .engine import evaluate
from .explain import candidate_text, describe
from .groups import group_blockers
from .rules import Me
from .types import Candidate, Verdict

OPTION_SETS = ((False, False), (True, False), (False, True), (True, True))


@dataclass(slots=True)
class Trial:
    candidate: Candidate
    label: str
    # Asked for alone (evaluate(explain=False)): the report shows each trial's first
    # blocker group, never a blocker's own description (16,000 of them on a busy port).
    verdict: Verdict


@dataclass(slots=True)
class WhyReport:
    proto: str
    port: int
    addr: str | None
    holders: list[SocketRecord]
    trials: list[Trial] = field(default_factory=list)

    @property
    def text(self) -> str:
        where = format_endpoint(6 if self.addr and ":" in self.addr else 4, self.addr, self.port) if self.addr else f"port {self.port}"
        lines: list[str] = []
        if not self.holders:
            lines.append(f"No {self.proto.upper()} socket uses {where}: any bind would meet no other socket.")
        else:
            lines.append(f"{len(self.holders)} {self.proto.upper()} socket(s) use {where}:")
            # Listeners and bound sockets one by one; connections (often thousands) as counts.
            ports = [r for r in self.holders if self.proto == "udp" or r.state in ("LISTEN", "UNCONN")]
            conns = [r for r in self.holders if r not in ports]
            shown = ports[:20]
            lines.extend(f"  {describe(r)}" for r in shown)
            if len(ports) > len(shown):
                lines.append(f"  ... and {len(ports) - len(shown)} more")
            if conns:
                counts: dict[str, int] = {}
                for r in conns:
                    counts[r.state] = counts.get(r.state, 0) + 1
                summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items(), key=lambda kv: -kv[1]))
                lines.append(f"  and {len(conns)} connection(s) on this port: {summary}")
                if len(conns) <= 5:
                    lines.extend(f"    {describe(r)}" for r in conns)
        groups = {"ok": "Would bind now:", "unknown": "Cannot tell (options unreadable):", "conflict": "Would fail:"}
        for kind, title in groups.items():
            trials = [t for t in self.trials if t.verdict.verdict == kind]
            if not trials:
                continue
            lines.append(title)
            for t in trials:
                extra = ""
                if kind == "conflict" and t.verdict.blockers:
                    g = group_blockers(t.verdict.blockers)[0]
                    b = g.first
                    count = f"{g.count} x " if g.count > 1 else ""
                    extra = f": {t.verdict.errno}, blocked by {count}{b.socket.state} {format_endpoint(b.socket.family, b.socket.local_addr, b.socket.local_port, b.socket.device)} ({b.rule})"
                    if len(t.verdict.blockers) > g.count:
                        extra += f" and {len(t.verdict.blockers) - g.count} more"
                elif kind == "conflict":
                    extra = f": {t.verdict.errno}"
                lines.append(f"  - {t.label}{extra}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "proto": self.proto,
            "port": self.port,
            "addr": self.addr,
            "holders": [r.to_json() for r in self.holders],
            "trials": [
                {
                    "candidate": {
                        "proto": t.candidate.proto,
                        "family": t.candidate.family,
                        "addr": t.candidate.addr,
                        "port": t.candidate.port,
                        "reuseaddr": t.candidate.reuseaddr,
                        "reuseport": t.candidate.reuseport,
                        "uid": t.candidate.uid,
                    },
                    "description": t.label,
                    "verdict": t.verdict.verdict,
                    "errno": t.verdict.errno,
                    "rules": sorted({b.rule for b in t.verdict.blockers}),
                }
                for t in self.trials
            ],
        }


def why_port(snapshot: Snapshot, proto: str, port: int, addr: str | None = None, family: int | None = None) -> WhyReport:
    holders = [r for r in snapshot.on_port(proto, port) if proto == "udp" or r.state != "SYN-RECV"]
    if addr is not None:
        fam = family or (6 if ":" in addr else 4)
        mine = bind_addr(fam, addr)
        holders = [
            r
            for r in holders
            if rcv_saddr_equal(mine, bind_addr(r.family, r.local_addr), False, bool(r.v6only))
            or rcv_saddr_equal(bind_addr(r.family, r.local_addr), mine, bool(r.v6only), False)
        ]
        places = [(fam, addr)]
    else:
        places = [(4, "0.0.0.0"), (6, "::")]
    uids = sorted({0, *(r.uid for r in holders if not r.timewait)})
    report = WhyReport(proto, port, addr, holders)
    for fam, a in places:
        for uid in uids:
            for reuseaddr, reuseport in OPTION_SETS:
                cand = Candidate(proto, fam, a, port, reuseaddr=reuseaddr, reuseport=reuseport, uid=uid)  # type: ignore[arg-type]
                verdict = evaluate(snapshot, cand, explain=False)
                me = Me(proto, bind_addr(fam, a), port, reuseaddr, reuseport, False, 0, uid)
                report.trials.append(Trial(cand, "a new " + candidate_text(me, True).removeprefix("a "), verdict))
    return report
