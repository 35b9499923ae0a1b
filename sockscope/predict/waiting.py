"""Time to success: when every blocker is a timewait socket with a timer, the bind
succeeds once the last of them expires, provided nothing else then blocks it. Checked by
asking the engine about the snapshot without them, never assumed."""

from __future__ import annotations

from dataclasses import replace

from sockscope.model import Snapshot

from .departure import without
from .engine import CandidateError, evaluate
from .types import Candidate, Verdict


def ok_after_s(snapshot: Snapshot, cand: Candidate, verdict: Verdict) -> float | None:
    """Seconds after the snapshot when the bind would succeed (0: now), or None when
    waiting would not help or its moment cannot be predicted."""
    if verdict.verdict == "ok":
        return 0.0
    if verdict.errno not in (None, "EADDRINUSE") or not verdict.blockers:
        return None
    recs = [b.socket for b in verdict.blockers]
    # Only a timewait socket (TIME-WAIT, or an orphan's FIN-WAIT-2 the kernel already made
    # one) has a known end; an orphan in FIN-WAIT-1 may still become a 60 s TIME-WAIT.
    if not all(r.timewait and r.timer is not None for r in recs):
        return None
    try:
        later = evaluate(without(snapshot, recs), cand, explain=False)
    except CandidateError:
        return None
    if later.verdict != "ok":
        return None
    return max(r.timer.expires_ms for r in recs if r.timer is not None) / 1000


def succeeds_now_with_reuseaddr(snapshot: Snapshot, cand: Candidate) -> bool:
    if cand.reuseaddr:
        return False
    try:
        return evaluate(snapshot, replace(cand, reuseaddr=True), explain=False).verdict == "ok"
    except CandidateError:
        return False


def when_text(snapshot: Snapshot, cand: Candidate, verdict: Verdict) -> str:
    """"would succeed in 41 s, when the last TIME-WAIT expires, or now with SO_REUSEADDR"."""
    after = verdict.ok_after_s
    if after is None or verdict.verdict == "ok":
        return ""
    n = len(verdict.blockers)
    kind = "TIME-WAIT" if all(b.socket.state == "TIME-WAIT" for b in verdict.blockers) else "timewait socket"
    what = f"the last {kind} expires" if n > 1 else f"the {kind} expires"
    text = f"would succeed in {after:.0f} s, when {what} (if nothing else changes)"
    if succeeds_now_with_reuseaddr(snapshot, cand):
        text += ", or now with SO_REUSEADDR"
    return text
