"""Differential test: random scenarios, the predictor's verdict, and the kernel's answer.

Each case builds sockets on a fresh port of one private namespace (bound, listening,
established, TIME_WAIT, UDP bound and connected; IPv4, IPv6, v4-mapped and wildcard
addresses; V6ONLY; a device; three uids), asks the predictor about a random candidate,
then really tries that candidate as its uid. A definite verdict that the kernel
contradicts is a failure; "unknown" is counted.

    SOCKSCOPE_DIFF_CASES=20000 SOCKSCOPE_DIFF_SEED=7 .venv/bin/python -m pytest -q -s tests/test_predict_diff.py

CI runs a few hundred cases (the default).

SOCKSCOPE_DIFF_RECORD=FILE writes a covering subset of the cases (SOCKSCOPE_DIFF_RECORD_MAX,
default 400) as JSON, snapshot in and verdict out, for the root-free replay in
tests/unit/test_predict_replay.py (its data: tests/unit/data/predict_cases.json):

    sudo SOCKSCOPE_DIFF_CASES=3000 SOCKSCOPE_DIFF_RECORD=tests/unit/data/predict_cases.json \
        .venv/bin/python -m pytest -q -s tests/test_predict_diff.py
"""

from __future__ import annotations

import os
import platform
import random
from collections import Counter
from pathlib import Path

import pytest

import predict_cases
from predict_lab import DEV, DEV_V4, DEV_V6, UIDS, Lab, Sock, agrees

from sockscope.predict import Candidate

CASES = int(os.environ.get("SOCKSCOPE_DIFF_CASES", "300"))
SEED = int(os.environ.get("SOCKSCOPE_DIFF_SEED", "1"))
SHOW_UNKNOWN = os.environ.get("SOCKSCOPE_DIFF_SHOW_UNKNOWN") == "1"
RECORD = os.environ.get("SOCKSCOPE_DIFF_RECORD")
RECORD_MAX = int(os.environ.get("SOCKSCOPE_DIFF_RECORD_MAX", "400"))

V4 = ["0.0.0.0", "127.0.0.1", "127.0.0.2", DEV_V4]
V6 = ["::", "::1", "::ffff:127.0.0.1", "::ffff:0.0.0.0", DEV_V6, f"::ffff:{DEV_V4}"]
NONLOCAL = {4: "10.99.0.1", 6: "fd00:99::1"}


def _addr(rng: random.Random, family: int) -> str:
    return rng.choice(V4 if family == 4 else V6)


def _target(rng: random.Random, family: int, addr: str, v6only: bool | None) -> tuple[int, str] | None:
    """Where a client connects to reach a listener bound to addr (None: do not try)."""
    if family == 4:
        return 4, ("127.0.0.1" if addr == "0.0.0.0" else addr)
    if addr == "::":
        if v6only or rng.random() < 0.5:
            return 6, "::1"
        return 4, "127.0.0.1"
    if addr.startswith("::ffff:"):
        v4 = addr.removeprefix("::ffff:")
        return 4, ("127.0.0.1" if v4 == "0.0.0.0" else v4)
    return 6, addr


def _serve(rng: random.Random, lab: Lab, s: Sock, uid: int, family: int, addr: str, v6only: bool | None,
           port: int, closers: list[Sock], log: list[str], timewait: bool) -> None:
    """One connection to listener `s`, accepted (by a root listener, often into another
    uid's hands), and for `timewait` closed server side first so the child ends in TIME_WAIT."""
    fam_t, t = _target(rng, family, addr, v6only) or (4, "127.0.0.1")
    c = lab.connect(0, fam_t, t, port)
    if c is None:
        return
    as_uid = rng.choice(UIDS) if uid == 0 and rng.random() < 0.6 else None
    child = lab.accept(s, timeout=0.05, as_uid=as_uid)
    log.append(f"  connection from {t} ({child.desc if child else 'left in a queue'})")
    if timewait and child is not None:
        closers.append(child)  # the server closes first: its child goes to TIME_WAIT
        closers.append(c)


Hint = tuple[int, str, "bool | None", int, "str | None"]  # a group member: family, addr, v6only, uid, device


def _serve_group(rng: random.Random, lab: Lab, members: list[Sock], uid: int, family: int, addr: str,
                 v6only: bool | None, port: int, closers: list[Sock], log: list[str]) -> None:
    """One connection to a reuseport group, accepted by whichever member's queue holds it;
    a root group hands it to another uid most of the time (nginx workers run as nobody)."""
    fam_t, t = _target(rng, family, addr, v6only) or (4, "127.0.0.1")
    c = lab.connect(0, fam_t, t, port)
    if c is None:
        return
    as_uid = rng.choice(UIDS[1:]) if uid == 0 and rng.random() < 0.8 else None
    for m in members:
        child = lab.accept(m, timeout=0.02, as_uid=as_uid)
        if child is not None:
            log.append(f"  connection from {t}: {child.desc}")
            if rng.random() < 0.3:
                closers.append(child)  # server side closes first: TIME_WAIT
                closers.append(c)
            return
    log.append(f"  connection from {t} left in a queue")


def build(rng: random.Random, lab: Lab, proto: str, port: int, aux_port: int) -> tuple[list[str], bool, list[Hint]]:
    """Random sockets on `port`. Returns a description, whether a snapshot was taken
    mid-way (so the collector could remember options of sockets that later closed), and
    the reuseport groups made (the candidate is often "one more member").

    TCP kinds: bound-only, listening, with an accepted connection (often accepted into
    another uid's process) or a TIME_WAIT, a client that bound the port itself, a reuseport
    group under churn (members join, serve, leave and come back), and sockets bound now but
    listening only after the others were made. The port's bind bucket then carries fast-path
    state that the sockets alone do not show, which is what the predictor must follow."""
    log: list[str] = []
    closers: list[Sock] = []
    late: list[Sock] = []
    hints: list[Hint] = []
    snap_mid = rng.random() < 0.5
    for _ in range(rng.randint(1, 4)):
        family = rng.choice((4, 6))
        addr = _addr(rng, family)
        uid = rng.choice(UIDS)
        ra, rp = rng.random() < 0.5, rng.random() < 0.5
        v6only = rng.choice((None, False, True)) if family == 6 else None
        if addr.startswith("::ffff:") and v6only:
            v6only = False
        device = DEV if rng.random() < 0.15 else None
        if proto == "udp":
            s = lab.socket(uid, "udp", family, addr, port, ra, rp, v6only, device)
            if s is None:
                continue
            log.append(s.desc)
            if rng.random() < 0.3 and device is None:
                fam_t, t = _target(rng, family, addr, v6only) or (family, "127.0.0.1")
                if fam_t == family or (family == 6 and fam_t == 4):
                    dest = t if fam_t == family else f"::ffff:{t}"
                    s.holder.attempt("connect", s.sid, dest, aux_port)
                    log.append(f"  connected to {dest}:{aux_port}")
            continue
        kind = rng.choices(("bound", "listen", "estab", "timewait", "client", "group", "late"), (3, 4, 2, 2, 1, 3, 2))[0]
        if kind == "client":
            # A client that binds the port itself, connects elsewhere, then maybe closes first.
            aux = lab.socket(0, "tcp", 4, "127.0.0.1", aux_port, True, False, None, None, listen=True) if not any(
                "aux" in x for x in log
            ) else None
            if aux is not None:
                log.append("aux listener 127.0.0.1:%d" % aux_port)
            if family == 6 and not addr.startswith("::ffff:") and addr != "::":
                continue
            c = lab.connect(uid, family, "127.0.0.1" if family == 4 else "::ffff:127.0.0.1", aux_port, bind=(addr, port), reuseaddr=ra, reuseport=rp, v6only=v6only)
            if c is None:
                continue
            log.append(f"client uid{uid} tcp{family} {addr}:{port} ra={int(ra)} rp={int(rp)} -> aux")
            if rng.random() < 0.6:
                closers.append(c)
            continue
        if kind == "group":
            # A reuseport group of one uid under churn: members listen, serve connections
            # (accepted into other uids' hands too), some leave, one may come back.
            members: list[Sock] = []
            if rng.random() < 0.5:
                uid = 0  # root can accept into other uids' hands (as nginx workers do)
            hints.append((family, addr, v6only, uid, device))
            for _m in range(rng.randint(2, 3)):
                m = lab.socket(uid, "tcp", family, addr, port, rng.random() < 0.3, True, v6only, device, listen=True)
                if m is None:
                    break
                members.append(m)
                log.append(m.desc + " (group)")
            for _c in range(rng.randint(0, 3) if device is None else 0):
                _serve_group(rng, lab, members, uid, family, addr, v6only, port, closers, log)
            if members and rng.random() < 0.6:
                gone = rng.choice(members)
                lab.close_sock(gone)
                log.append(f"  left the group: {gone.desc}")
                if rng.random() < 0.5:
                    back = lab.socket(uid, "tcp", family, addr, port, False, True, v6only, device, listen=rng.random() < 0.7)
                    log.append("  came back: " + (back.desc if back else "refused"))
            continue
        s = lab.socket(uid, "tcp", family, addr, port, ra, rp, v6only, device, listen=kind in ("listen", "estab", "timewait"))
        if s is None:
            continue
        log.append(s.desc)
        if kind == "late":
            late.append(s)
            continue
        if kind in ("estab", "timewait") and device is None:
            _serve(rng, lab, s, uid, family, addr, v6only, port, closers, log, timewait=kind == "timewait")
            if rng.random() < 0.5:
                closers.append(s)
    for s in late:
        err = lab.listen(s)
        log.append(f"  late listen() of {s.desc}: {err or 'ok'}")
    if snap_mid and closers:
        lab.snapshot()
    for s in closers:
        lab.close_sock(s)
        log.append(f"  closed {s.desc}")
    return log, snap_mid, hints


def candidate(rng: random.Random, proto: str, port: int, hints: list[Hint]) -> Candidate:
    if hints and rng.random() < 0.5:
        # Another worker for a group, or the group's server restarted: mostly its own
        # address, uid and SO_REUSEPORT, sometimes another uid or without the option.
        family, addr, v6only, uid, device = rng.choice(hints)
        return Candidate(
            proto=proto,  # type: ignore[arg-type]
            family=family,
            addr=addr,
            port=port,
            reuseaddr=rng.random() < 0.5,
            reuseport=rng.random() < 0.85,
            v6only=v6only,
            device=device,
            uid=uid if rng.random() < 0.7 else rng.choice(UIDS),
            listen=rng.random() < 0.8,
        )
    family = rng.choice((4, 6))
    addr = NONLOCAL[family] if rng.random() < 0.03 else _addr(rng, family)
    v6only = rng.choice((None, False, True)) if family == 6 else None
    return Candidate(
        proto=proto,  # type: ignore[arg-type]
        family=family,
        addr=addr,
        port=port,
        reuseaddr=rng.random() < 0.5,
        reuseport=rng.random() < 0.5,
        v6only=v6only,
        device=DEV if rng.random() < 0.1 else None,
        uid=rng.choice(UIDS),
        listen=proto == "tcp" and rng.random() < 0.8,
    )


def unknown_cause(verdict) -> str:
    """Why a verdict is unknown, for the run's summary."""
    if any("every socket on this port is only bound" in n for n in verdict.notes):
        return "reuseport fast path (§6): bucket not read, the port has only bound-only sockets"
    if any("fast path" in n for n in verdict.notes):
        return "reuseport fast path (§6)"
    for n in verdict.notes:
        if "chain order here is not fully known" in n:
            for key, why in (("different hash slots", "an IPv4 and an IPv6 socket in different hash2 slots"),
                             ("connect() may have moved", "a connected socket's slot position"),
                             ("did not read them", "no UDP iterator")):
                if key in n:
                    return f"UDP chain order across families: {why}"
            return "UDP chain order across families"
        if "per-port fast path may admit" in n:
            return "bind bucket unusable: " + n.split(": ", 1)[-1]
    states = {b.socket.state for b in verdict.blockers if not b.definite}
    if states == {"TIME-WAIT"}:
        return "TIME_WAIT options unreadable"
    return "options unreadable: " + ",".join(sorted(states))


@pytest.mark.root
def suggested_candidates(cand: Candidate, verdict) -> list[tuple[str, Candidate]]:
    """The suggestions that change the new socket, as candidates to try for real (issue 9:
    every suggestion must hold)."""
    from dataclasses import replace

    from sockscope.predict import parse_endpoint

    out: list[tuple[str, Candidate]] = []
    for s in verdict.suggestions:
        changed = None
        if s.startswith("Set SO_REUSEADDR on the new socket:"):
            changed = replace(cand, reuseaddr=True)
        elif s.startswith("Set SO_REUSEPORT on the new socket:"):
            changed = replace(cand, reuseport=True)
        elif s.startswith("Set both SO_REUSEADDR and SO_REUSEPORT on the new socket"):
            changed = replace(cand, reuseaddr=True, reuseport=True)
        elif s.startswith("Run the new socket as uid "):
            uid = int(s.removeprefix("Run the new socket as uid ").split(",")[0])
            if uid in UIDS:
                changed = replace(cand, reuseport=True, uid=uid)
        elif s.startswith(("Or use another port: ", "Bind ")) and (" is free" in s or " instead" in s):
            text = s.removeprefix("Or use another port: ").removeprefix("Bind ").split(" ")[0]
            _fam, addr, port, _scope = parse_endpoint(text)
            changed = replace(cand, addr=addr, port=port)
        if changed is not None:
            out.append((s, changed))
    return out


def test_predictor_agrees_with_the_kernel(netns, holders) -> None:
    rng = random.Random(SEED)
    lab = Lab.open(netns, holders)
    ports = list(range(1100, 32000))
    rng.shuffle(ports)
    stats: Counter[str] = Counter()
    wrong: list[str] = []
    recorded: list[dict] = []
    try:
        for i in range(CASES):
            port = ports[(2 * i) % len(ports)]
            aux_port = ports[(2 * i + 1) % len(ports)]
            if rng.random() < 0.03:
                port = rng.randint(600, 1000)  # privileged ports: EACCES for uids other than 0
            proto = "tcp" if rng.random() < 0.7 else "udp"
            log, _mid, hints = build(rng, lab, proto, port, aux_port)
            cand = candidate(rng, proto, port, hints)
            snap = lab.settle(port)
            verdict = lab.predict(cand, snap)
            stage, errno = lab.really(cand)
            ok = agrees(verdict, stage, errno)
            if RECORD and ok is not False:
                recorded.append(predict_cases.case_to_dict(snap, cand, verdict, stage, errno, f"seed {SEED} case {i}"))
            stats[verdict.verdict] += 1
            if ok is False:
                on_port = "\n".join(
                    f"    {r.proto} {r.state} {r.local_addr}:{r.local_port} -> {r.peer_addr}:{r.peer_port} "
                    f"ra={r.reuseaddr} rp={r.reuseport} v6only={r.v6only} dev={r.device} uid={r.uid}"
                    for r in snap.on_port(proto, port)
                )
                wrong.append(
                    f"case {i} (seed {SEED}): {cand}\n  scenario:\n    " + "\n    ".join(log)
                    + f"\n  snapshot:\n{on_port}\n  predicted {verdict.verdict} {verdict.errno} {verdict.stage}: "
                    f"{verdict.explanation}\n  kernel: {stage} {errno}"
                )
            stats["wrong" if ok is False else ("right" if ok else "unknown-verdict")] += 1
            if any("per-socket rule alone would refuse" in n for n in verdict.notes):
                stats["fast path"] += 1
            for text, changed in suggested_candidates(cand, verdict) if verdict.verdict != "ok" else []:
                s_stage, s_errno = lab.really(changed)
                stats["suggestions tried"] += 1
                if s_errno is not None:
                    wrong.append(f"case {i} (seed {SEED}): suggestion {text!r} for {cand}\n  scenario:\n    "
                                 + "\n    ".join(log) + f"\n  kernel: {s_stage} {s_errno}")
            if ok is None:
                stats["unknown: " + unknown_cause(verdict)] += 1
                if SHOW_UNKNOWN:
                    print(f"\nunknown case {i}: {cand}\n  " + "\n  ".join(log) + f"\n  -> {verdict.explanation}\n  kernel: {stage} {errno}")
            lab.close_all()
    finally:
        lab.close_all()
        lab.close()
    definite = stats["right"] + stats["wrong"]
    print(
        f"\ndifferential: {CASES} cases (seed {SEED}): {definite} definite, {stats['wrong']} wrong, "
        f"{stats['unknown-verdict']} unknown ({100 * stats['unknown-verdict'] / max(CASES, 1):.2f}%); "
        f"ok {stats['ok']}, conflict {stats['conflict']}; {stats['fast path']} decided by the port's "
        f"fast path against the per-socket rule; {stats['suggestions tried']} suggestions tried for real"
    )
    for key in sorted(k for k in stats if k.startswith("unknown: ")):
        print(f"  {key}: {stats[key]}")
    if RECORD:
        chosen = predict_cases.select(recorded, RECORD_MAX)
        meta = {"kernel": platform.release(), "seed": SEED, "cases_run": CASES}
        predict_cases.write(Path(RECORD), chosen, meta)
        print(f"recorded {len(chosen)} of {len(recorded)} cases in {RECORD}")
    report = os.environ.get("SOCKSCOPE_DIFF_REPORT")
    if report and wrong:
        with open(report, "w") as f:
            f.write("\n\n".join(wrong) + "\n")
    assert not wrong, f"{len(wrong)} wrong definite verdicts:\n" + "\n\n".join(wrong[:5])
