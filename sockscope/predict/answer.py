"""check(): the whole answer to "would this bind() work?": the engine's verdict, when it
would succeed (time to success), checked suggestions, and the blockers grouped.

The top of the predictor's import graph for a single question: addresses, rules,
explain -> engine -> departure, waiting -> suggest -> answer -> rehearsal, why.
"""

from __future__ import annotations

from sockscope.model import Snapshot

from .engine import evaluate
from .groups import group_blockers
from .suggest import suggestions_for
from .types import Candidate, Verdict
from .waiting import ok_after_s, when_text


def check(snapshot: Snapshot, cand: Candidate, *, suggest: bool = True) -> Verdict:
    """Predict bind() (and for a TCP server, listen()) of `cand` against `snapshot`."""
    verdict = evaluate(snapshot, cand)
    verdict.ok_after_s = ok_after_s(snapshot, cand, verdict)
    verdict.when = when_text(snapshot, cand, verdict)
    if suggest and verdict.verdict != "ok":
        verdict.suggestions = suggestions_for(snapshot, cand, verdict)
    verdict.groups = group_blockers(verdict.blockers)
    return verdict
