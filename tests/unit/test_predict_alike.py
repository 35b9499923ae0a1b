"""The engine evaluates a TCP port's look-alike sockets once per kind (engine._alike): a
port with 16,000 connections has a handful of kinds. That must change nothing: on every
kernel-checked case, and on the same cases with each TCP socket copied several times
(other cookies and peers, so kinds hold many sockets), the whole answer (verdict,
blockers in order with their reasons, explanation, notes, suggestions, groups) equals
the answer of an engine that evaluates every socket on its own."""

from __future__ import annotations

import dataclasses

import pytest

import predict_cases as pc
from sockscope.model import Timer
from sockscope.predict import check, engine

META, CASES = pc.load()


def _answer(verdict) -> tuple:
    return (
        verdict.verdict, verdict.errno, verdict.stage, verdict.explanation, tuple(verdict.notes),
        tuple(verdict.suggestions), verdict.ok_after_s, verdict.when,
        tuple((b.socket.cookie, b.rule, b.reason, b.definite, b.because) for b in verdict.blockers),
        tuple((g.count, g.rule, g.reason) for g in verdict.groups),
    )


def _copied(snap, copies: int):
    """Each TCP socket `copies` more times: other cookies and peer ports, all else alike."""
    extra = []
    for r in snap.sockets:
        if r.proto != "tcp":
            continue
        for i in range(1, copies + 1):
            extra.append(dataclasses.replace(r, cookie=r.cookie * 100 + i, inode=r.inode * 100 + i if r.inode else 0,
                                             peer_port=(r.peer_port + i) % 65536 if r.peer_port else 0,
                                             owners=list(r.owners)))
    return dataclasses.replace(snap, sockets=[*snap.sockets, *extra])


def _variants(snap):
    """Each TCP socket again with one thing the rules read changed (uid, device, an
    option known or not, V6ONLY, orphaned, TIME-WAIT): sockets that must not share a kind
    with the original. (Not all are states the kernel would produce; the equivalence must
    hold for any input.)"""
    extra = []
    n = 0

    def add(r, **changes):
        nonlocal n
        n += 1
        extra.append(dataclasses.replace(r, cookie=10**9 + n, owners=list(changes.pop("owners", r.owners)), **changes))

    for r in snap.sockets:
        if r.proto != "tcp":
            continue
        add(r, uid=r.uid + 1000)
        add(r, ifindex=0 if r.ifindex else 1, device=None if r.ifindex else "lo")
        add(r, reuseport=None if r.reuseport is not None else True)
        add(r, reuseaddr=None if r.reuseaddr is not None else False)
        add(r, reuseport=not r.reuseport if r.reuseport is not None else False)
        if r.family == 6:
            add(r, v6only=not r.v6only if r.v6only is not None else True)
        if r.state != "LISTEN":
            add(r, state="FIN-WAIT-2", inode=r.inode or 77, timer=None)  # still held: stays as it is
            add(r, state="FIN-WAIT-2", inode=0, owners=[], timer=None)  # an orphan: may become a timewait socket
            add(r, state="FIN-WAIT-2", inode=0, owners=[], timer=Timer("timewait", 20_000))  # already one
            add(r, state="TIME-WAIT", inode=0, uid=0, owners=[], timer=Timer("timewait", 30_000))
    return dataclasses.replace(snap, sockets=[*snap.sockets, *extra])


def _one_by_one(monkeypatch) -> None:
    monkeypatch.setattr(engine, "_alike", lambda others: list(others))


@pytest.mark.parametrize("copies, variants", [(0, False), (3, False), (2, True)])
def test_kinds_give_the_answer_socket_by_socket_gives(monkeypatch, copies: int, variants: bool) -> None:
    checked = 0
    for case in CASES:
        cand = pc.candidate_from_dict(case["candidate"])
        if cand.proto != "tcp":
            continue
        snap = _copied(pc.snapshot_from_dict(case["snapshot"]), copies)
        if variants:
            snap = _variants(snap)
        grouped = _answer(check(snap, cand))
        with monkeypatch.context() as m:
            _one_by_one(m)
            alone = _answer(check(snap, cand))
        assert grouped == alone, case["origin"]
        checked += 1
    assert checked >= 100
