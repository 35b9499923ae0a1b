"""Churn counting between two dumps plus destroy events (pure, root-free)."""

from sockscope.collectors.events import DestroyEvent, count_churn
from sockscope.tui.poller import churn_text

EPH = (32768, 60999)


def test_dumps_and_events_count_each_socket_once():
    before = {("tcp", 1): (80, 0, "LISTEN"), ("tcp", 2): (80, 40000, "ESTAB"), ("tcp", 3): (40001, 80, "ESTAB")}
    after = {
        ("tcp", 1): (80, 0, "LISTEN"),
        ("tcp", 3): (40001, 80, "TIME-WAIT"),  # same socket, now in TIME-WAIT: neither
        ("tcp", 9): (40005, 80, "TIME-WAIT"),  # born in between, now TIME-WAIT, new cookie
        ("udp", 7): (53, 0, "UNCONN"),
    }
    events = [
        DestroyEvent("tcp", 4, "UNCONN", 80, 40000, 2),  # gone: also missing from `after`
        DestroyEvent("tcp", 4, "UNCONN", 80, 40002, 5),  # born and gone in between
        DestroyEvent("tcp", 4, "UNCONN", 80, 40002, 5),  # a duplicate never counts twice
        DestroyEvent("tcp", 4, "UNCONN", 40005, 80, 8),  # the full socket before cookie 9's TIME-WAIT
        DestroyEvent("udp", 4, "UNCONN", 5353, 0, 6),  # born and gone in between
    ]
    c = count_churn(before, after, events, EPH, exact=True)
    assert (c.created, c.destroyed) == (4, 3)  # 9, 7, 5, 6 / 2, 5, 6
    assert c.by_port[("tcp", 80)] == [1, 2]
    assert c.by_port[("udp", 5353)] == [1, 1]
    assert c.timewait_created == 2
    assert c.ephemeral_created == 1
    assert churn_text(c) == "+4 / -3 since last refresh (tcp :80 +1/-2, TIME-WAIT +2, ephemeral +1)"


def test_without_events_the_figures_are_lower_bounds():
    c = count_churn({("tcp", 1): (80, 0, "LISTEN")}, {}, [], EPH, exact=False)
    assert churn_text(c) == "at least +0 / -1 since last refresh"


def test_state_changes_follow_the_churn_with_the_two_commonest_states():
    from sockscope.collectors.events import StateChanges

    c = count_churn({}, {}, [], EPH, exact=True)
    c.states = StateChanges(7, {"ESTAB": 2, "CLOSE-WAIT": 1, "UNCONN": 2, "SYN-SENT": 1, "FIN-WAIT-1": 1})
    assert churn_text(c) == "+0 / -0 since last refresh, 7 state changes (to ESTAB 2, UNCONN 2)"
    c.states = StateChanges(1, {"CLOSE-WAIT": 1})
    c.exact = False
    assert churn_text(c) == "at least +0 / -0 since last refresh, 1 state change (to CLOSE-WAIT 1)"
    c.states = StateChanges(0, {})
    assert churn_text(c) == "at least +0 / -0 since last refresh"
