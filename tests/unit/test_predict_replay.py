"""The differential run's kernel-checked cases, replayed without root: every recorded
snapshot goes through the predictor again, and a definite verdict must still say what the
kernel said then (tests/unit/data/predict_cases.json; recorded by tests/test_predict_diff.py
with SOCKSCOPE_DIFF_RECORD, see there)."""

from __future__ import annotations

from collections import Counter

import pytest

import predict_cases as pc
from sockscope.predict import check
from sockscope.predict.explain import RULE_TEXT

META, CASES = pc.load()


def test_the_cases_cover_every_rule_and_errno() -> None:
    assert len(CASES) >= 200
    rules = Counter(r for c in CASES for r in c["predicted"]["rules"])
    assert set(RULE_TEXT) <= set(rules), f"rules never exercised: {set(RULE_TEXT) - set(rules)}"
    outcomes = {(c["kernel"]["stage"], c["kernel"]["errno"]) for c in CASES}
    for errno in ("EADDRINUSE", "EACCES", "EADDRNOTAVAIL", "EINVAL"):
        assert ("bind", errno) in outcomes, errno
    assert (None, None) in outcomes
    kinds = Counter(c["predicted"]["verdict"] for c in CASES)
    assert kinds["ok"] and kinds["conflict"] and kinds["unknown"]
    assert {c["candidate"]["proto"] for c in CASES} == {"tcp", "udp"}
    assert {c["candidate"]["family"] for c in CASES} == {4, 6}


@pytest.mark.parametrize("case", CASES, ids=[c["origin"] for c in CASES])
def test_replay_agrees_with_the_kernel(case: dict) -> None:
    cand = pc.candidate_from_dict(case["candidate"])
    snap = pc.snapshot_from_dict(case["snapshot"])
    verdict = check(snap, cand)
    kernel = case["kernel"]
    said = pc.agrees(verdict, kernel["stage"], kernel["errno"])
    assert said is not False, (
        f"{case['origin']}: predicted {verdict.verdict} {verdict.errno} {verdict.stage} "
        f"({verdict.explanation}); the kernel said {kernel['stage']} {kernel['errno']}"
    )
    if case["predicted"]["verdict"] != "unknown":
        # Losing a definite answer the predictor used to give is a regression too.
        assert verdict.verdict != "unknown", f"{case['origin']}: now unknown: {verdict.explanation}"
