"""The port's bind bucket decides, and a socket that came and went rewrote it.

A root reuseport listener whose connection was accepted into uid 1001's hands: the bucket
lets another root SO_REUSEPORT listener in although the connection refuses it by the
per-socket rule. A uid-1001 SO_REUSEPORT socket that binds another address of the port and
closes again leaves nothing in the dump, but resets the bucket to itself, and from then on
the same root bind is refused. The predictor follows both, provided the snapshot read the
bucket afresh."""

from __future__ import annotations

import pytest

from sockscope.collectors.snapshotter import Collector
from sockscope.predict import Candidate, check

pytestmark = pytest.mark.root


def test_a_bind_that_came_and_went_changes_the_answer(netns, holders) -> None:
    root, other = holders(0), holders(1001)
    lst = root.socket("tcp", 4, reuseport=True)
    assert root.bind(lst, "127.0.0.1", 8080) is None and root.listen(lst) is None
    client = other.socket("tcp", 4)
    other.connect(client, "127.0.0.1", 8080)
    root.call("accept_as", lst, 1001)
    cand = Candidate("tcp", 4, "127.0.0.1", 8080, reuseport=True, uid=0)

    with Collector(netns=netns.name) as collector:
        before = check(collector.snapshot(fresh=True), cand)
        assert before.verdict == "ok"
        assert any("per-socket rule alone would refuse" in n for n in before.notes)
        trial = root.socket("tcp", 4, reuseport=True)
        assert root.bind(trial, "127.0.0.1", 8080) is None  # the kernel agrees
        root.close(trial)

        visitor = other.socket("tcp", 4, reuseport=True)
        assert other.bind(visitor, "127.0.0.2", 8080) is None
        other.close(visitor)

        after = check(collector.snapshot(fresh=True), cand)
        assert (after.verdict, after.errno) == ("conflict", "EADDRINUSE"), after.explanation
        trial = root.socket("tcp", 4, reuseport=True)
        assert root.bind(trial, "127.0.0.1", 8080) == "EADDRINUSE"
        root.close(trial)
