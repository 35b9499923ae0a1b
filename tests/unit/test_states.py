"""One state vocabulary: `list -s WORD` and the filter's `state WORD` select the same sockets."""

from __future__ import annotations

import pytest

from sockscope import states
from sockscope.cli import UsageError
from sockscope.cli.list_cmd import parse_states
from sockscope.filter import FilterError, compile_filter
from sockscope.model import STATE_NAMES, SocketRecord

WORDS = [
    "all", "listening", "connected", "synchronized", "bucket", "big", "listen", "established", "estab",
    "time-wait", "TIME_WAIT", "timewait", "closed", "unconn", "unconnected", "syn-recv", "synrcvd",
    "close-wait", "fin-wait-1", "fin-wait-2", "last-ack", "closing", "syn-sent",
]  # fmt: skip


def rec(state: str) -> SocketRecord:
    return SocketRecord(proto="tcp", family=4, state=state, local_addr="127.0.0.1", local_port=1,
                        peer_addr="0.0.0.0", peer_port=0, uid=0, inode=1, cookie=1)


@pytest.mark.parametrize("word", WORDS)
def test_list_state_and_filter_state_agree(word: str) -> None:
    by_list = parse_states(word)
    pred = compile_filter(f"state {word}")
    by_filter = {s for s in STATE_NAMES if pred(rec(s))}
    assert by_list == by_filter


def test_ss_meanings() -> None:
    assert parse_states("connected") == frozenset(STATE_NAMES) - {"LISTEN", "UNCONN"}
    assert "TIME-WAIT" in parse_states("connected")  # as ss: only LISTEN and CLOSE are not connected
    assert parse_states("listening") == {"LISTEN", "UNCONN"}  # as `ss -l`
    assert parse_states("listen") == {"LISTEN"}
    assert parse_states("synchronized") == frozenset(STATE_NAMES) - {"LISTEN", "UNCONN", "SYN-SENT", "SYN-RECV"}
    assert parse_states("bucket") == {"SYN-RECV", "TIME-WAIT"}
    assert parse_states("big") == frozenset(STATE_NAMES) - {"SYN-RECV", "TIME-WAIT"}
    assert parse_states("all") == frozenset(STATE_NAMES)
    assert parse_states("listen,estab") == {"LISTEN", "ESTAB"}


def test_negated_groups_admit_unknown_states() -> None:
    assert "NEW-STATE" in states.lookup("connected")
    assert "NEW-STATE" not in states.lookup("listening")
    assert compile_filter("state connected")(rec("NEW-STATE"))


@pytest.mark.parametrize("text", ["", ",", " , ", "bogus", "listen,bogus", "²", "LISTEN\x1b"])
def test_bad_state_lists_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_states(text)


def test_filter_rejects_unknown_state() -> None:
    with pytest.raises(FilterError, match="unknown state"):
        compile_filter("state bogus")
