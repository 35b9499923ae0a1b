"""Kernel-checked predictor cases as data: snapshot in, candidate, the kernel's answer and
the predictor's verdict out. The differential run (tests/test_predict_diff.py, root)
records them with SOCKSCOPE_DIFF_RECORD=FILE; tests/unit/test_predict_replay.py replays
them without root, so anyone can run the predictor against what the kernel said.

Plain JSON, one object per case; unknown keys are ignored on load, so records survive
new model fields (which then take their defaults).
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path
from typing import Any

from sockscope.model import BindBucket, HostFacts, NetnsRef, Owner, Snapshot, SocketRecord, Timer
from sockscope.predict import Candidate, Verdict

DATA = Path(__file__).resolve().parent / "unit" / "data" / "predict_cases.json"


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")}


def record_to_dict(r: SocketRecord) -> dict[str, Any]:
    d: dict[str, Any] = {}
    for name in _fields(SocketRecord):
        v = getattr(r, name)
        if name == "owners":
            # Command lines say nothing to the predictor and would make up most of the file.
            v = [dict(dataclasses.asdict(o), cmdline=None) for o in v]
        elif name in ("timer", "netns") and v is not None:
            v = dataclasses.asdict(v)
        d[name] = v
    return d


def record_from_dict(d: dict[str, Any]) -> SocketRecord:
    known = _fields(SocketRecord)
    kw = {k: v for k, v in d.items() if k in known}
    kw["owners"] = [Owner(**o) for o in kw.get("owners", [])]
    if kw.get("timer") is not None:
        kw["timer"] = Timer(**kw["timer"])
    if kw.get("netns") is not None:
        kw["netns"] = NetnsRef(**kw["netns"])
    return SocketRecord(**kw)


def facts_to_dict(f: HostFacts) -> dict[str, Any]:
    d = f.to_json()
    d["complete"] = f.complete
    return d


def facts_from_dict(d: dict[str, Any]) -> HostFacts:
    known = _fields(HostFacts)
    kw = {k: v for k, v in d.items() if k in known}
    kw["ip_local_port_range"] = tuple(kw.get("ip_local_port_range", (32768, 60999)))
    kw["ip_local_reserved_ports"] = frozenset(kw.get("ip_local_reserved_ports", ()))
    kw["interfaces"] = {int(k): v for k, v in kw.get("interfaces", {}).items()}
    kw["v6_addrs"] = [tuple(a) for a in kw.get("v6_addrs", [])]
    return HostFacts(**kw)


def snapshot_to_dict(s: Snapshot) -> dict[str, Any]:
    return {
        "sockets": [record_to_dict(r) for r in s.sockets],
        "facts": facts_to_dict(s.facts),
        "busy_ports": sorted(list(p) for p in s.busy_ports) if s.busy_ports is not None else None,
        "tcp_buckets": (
            {str(port): [dataclasses.asdict(b) for b in bs] for port, bs in s.tcp_buckets.items()}
            if getattr(s, "tcp_buckets", None) is not None
            else None
        ),
    }


def snapshot_from_dict(d: dict[str, Any]) -> Snapshot:
    snap = Snapshot(
        sockets=[record_from_dict(r) for r in d["sockets"]],
        facts=facts_from_dict(d["facts"]),
        busy_ports=frozenset((p, n) for p, n in d["busy_ports"]) if d.get("busy_ports") is not None else None,
    )
    if d.get("tcp_buckets") is not None:
        snap.tcp_buckets = {int(p): [BindBucket(**b) for b in bs] for p, bs in d["tcp_buckets"].items()}
    return snap


def verdict_summary(v: Verdict) -> dict[str, Any]:
    return {
        "verdict": v.verdict,
        "errno": v.errno,
        "stage": v.stage,
        "rules": sorted({b.rule for b in v.blockers}),
        "definite_blockers": sum(1 for b in v.blockers if b.definite),
    }


def port_only(snapshot: Snapshot, proto: str, port: int) -> Snapshot:
    """The sockets a verdict on (proto, port) depends on: those of that port (the
    differential run's namespace also holds the TIME_WAITs of earlier cases)."""
    keep = list(snapshot.on_port(proto, port))
    buckets = getattr(snapshot, "tcp_buckets", None)
    out = Snapshot(sockets=keep, facts=snapshot.facts, busy_ports=frozenset({(proto, port)}) if keep else frozenset())
    if buckets is not None:
        out.tcp_buckets = {port: buckets[port]} if port in buckets else {}
    return out


def case_to_dict(snapshot: Snapshot, cand: Candidate, verdict: Verdict, stage: str | None, errno: str | None,
                 origin: str) -> dict[str, Any]:
    return {
        "origin": origin,
        "candidate": dataclasses.asdict(cand),
        "snapshot": snapshot_to_dict(port_only(snapshot, cand.proto, cand.port)),
        "kernel": {"stage": stage, "errno": errno},
        "predicted": verdict_summary(verdict),
    }


def candidate_from_dict(d: dict[str, Any]) -> Candidate:
    known = _fields(Candidate)
    return Candidate(**{k: v for k, v in d.items() if k in known})


def signature(case: dict[str, Any]) -> tuple[Any, ...]:
    """What makes a case different in kind: the verdict, errno, rules, protocol, family."""
    p = case["predicted"]
    c = case["candidate"]
    return (p["verdict"], p["errno"], p["stage"], tuple(p["rules"]), c["proto"], c["family"])


def select(cases: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """A covering subset: every kind of case first (round-robin over signatures), then the rest."""
    by_sig: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for c in cases:
        by_sig.setdefault(signature(c), []).append(c)
    out: list[dict[str, Any]] = []
    depth = 0
    while len(out) < limit and any(len(v) > depth for v in by_sig.values()):
        for sig in sorted(by_sig, key=repr):
            group = by_sig[sig]
            if depth < len(group) and len(out) < limit:
                out.append(group[depth])
        depth += 1
    return out


def write(path: Path, cases: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    counts = Counter(r for c in cases for r in c["predicted"]["rules"])
    meta = dict(meta, cases=len(cases), rules=dict(sorted(counts.items())))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        f.write('{"meta": ' + json.dumps(meta, sort_keys=True) + ',\n "cases": [\n')
        f.write(",\n".join(json.dumps(c, sort_keys=True, separators=(",", ":")) for c in cases))
        f.write("\n]}\n")


def load(path: Path = DATA) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with open(path) as f:
        data = json.load(f)
    return data["meta"], data["cases"]


def agrees(verdict: Verdict, stage: str | None, errno: str | None) -> bool | None:
    """True/False for a definite verdict that matches / contradicts the kernel; None if unknown."""
    if verdict.verdict == "unknown":
        return None
    if verdict.verdict == "ok":
        return errno is None
    return errno == verdict.errno and stage == verdict.stage
