"""Root-free tests of the predictor's answers: groups, time to success, checked
suggestions, rules stated only when they hold in every world, the import DAG."""

from __future__ import annotations

import ast
import importlib
import pathlib

from sockscope.model import Owner, Snapshot, SocketRecord, Timer
from sockscope.predict import Candidate, check, check_like, group_blockers, rehearse_restart
from sockscope.predict.departure import after_exit

_cookie = iter(range(1000, 10_000))


def rec(state: str, addr: str = "127.0.0.1", port: int = 8080, peer: tuple[str, int] = ("0.0.0.0", 0), *,
        ra: bool | None = False, rp: bool | None = False, uid: int = 0, pid: int | None = None, fd: int = 3,
        left_ms: int | None = None) -> SocketRecord:
    r = SocketRecord("tcp", 4, state, addr, port, peer[0], peer[1], uid, 0 if pid is None else 100 + fd,
                     next(_cookie), reuseaddr=ra, reuseport=rp)
    if pid is not None:
        r.owners = [Owner(pid, fd, "srv", "root")]
    if left_ms is not None:
        r.timer = Timer("timewait", left_ms)
        r.uid = 0
    return r


def tw(n: int, ra: bool | None, left0: int = 10_000) -> list[SocketRecord]:
    return [rec("TIME-WAIT", peer=("127.0.0.1", 40000 + i), ra=ra, rp=False if ra is not None else None,
                left_ms=left0 + 1000 * i) for i in range(n)]


def cand(**kw) -> Candidate:
    base = dict(proto="tcp", family=4, addr="127.0.0.1", port=8080, uid=0)
    base.update(kw)
    return Candidate(**base)  # type: ignore[arg-type]


def test_alike_blockers_are_one_group_with_their_spread() -> None:
    v = check(Snapshot(tw(30, ra=None)), cand())
    assert v.verdict == "conflict" and len(v.blockers) == 30
    (g,) = v.groups
    assert g.count == 30 and g.peer_spread() == "127.0.0.1:*"
    head = g.head()
    assert head.startswith("30 x TCP TIME-WAIT 127.0.0.1:8080 -> 127.0.0.1:*") and "10-39 s left" in head
    j = v.to_json()
    assert j["groups"][0]["count"] == 30 and len(j["groups"][0]["cookies"]) == 30
    assert j["groups"][0]["ranges"]["expires_s"] == [10.0, 39.0]
    assert j["ok_after_s"] == 39.0


def test_groups_split_on_what_matters() -> None:
    recs = tw(3, ra=None) + [rec("LISTEN", "0.0.0.0", pid=7)] + tw(2, ra=True)
    groups = group_blockers(check(Snapshot(recs), cand()).blockers)
    assert [g.count for g in groups] == [3, 1, 2]


def test_time_to_success_only_when_every_blocker_expires() -> None:
    v = check(Snapshot(tw(2, ra=None) + [rec("LISTEN", "0.0.0.0", pid=7)]), cand())
    assert v.verdict == "conflict" and v.ok_after_s is None and not v.when
    assert not any("Wait for" in s for s in v.suggestions)
    assert check(Snapshot([]), cand()).ok_after_s == 0.0


def test_or_now_with_reuseaddr_only_when_confirmed() -> None:
    known = check(Snapshot(tw(2, ra=True)), cand())
    assert known.ok_after_s == 11.0 and known.when.endswith("or now with SO_REUSEADDR")
    unknown = check(Snapshot(tw(2, ra=None)), cand())
    assert unknown.ok_after_s == 11.0 and "SO_REUSEADDR" not in unknown.when
    without = check(Snapshot(tw(2, ra=False)), cand())
    assert "SO_REUSEADDR" not in without.when


def test_reuseaddr_on_the_existing_socket_never_for_a_listener() -> None:
    lst = rec("LISTEN", pid=7)
    v = check(Snapshot([lst]), cand(reuseaddr=True))
    assert v.verdict == "conflict"
    assert not any("existing socket too" in s for s in v.suggestions)
    bound = rec("UNCONN", pid=7)
    v = check(Snapshot([bound]), cand(reuseaddr=True, listen=False))
    assert any("existing socket too" in s for s in v.suggestions)


def test_a_rule_is_stated_only_when_it_holds_in_every_world() -> None:
    # A root listener whose SO_REUSEADDR could not be read (seen as nobody): it blocks a
    # SO_REUSEADDR bind either way, but "opened without SO_REUSEADDR" may be false.
    lst = rec("LISTEN", ra=None, rp=False, pid=7)
    v = check(Snapshot([lst]), cand(reuseaddr=True))
    assert v.verdict == "conflict"
    reason = v.blockers[0].reason
    assert "opened without SO_REUSEADDR" not in reason.split("if it lacks SO_REUSEADDR")[0]
    assert v.blockers[0].rule == "listener" and "it is listening" in reason
    # Without options on the new socket, "in-use" is true whatever the other has.
    v = check(Snapshot([rec("TIME-WAIT", ra=None, rp=None, left_ms=5000)]), cand())
    assert v.blockers[0].rule == "in-use"


def test_suggestions_are_checked_stop_the_holder() -> None:
    lst = rec("LISTEN", pid=7, fd=3)
    conn = rec("ESTAB", peer=("127.0.0.1", 50000), pid=7, fd=4)
    v = check(Snapshot([lst, conn]), cand())
    stop = [s for s in v.suggestions if s.startswith("Or stop")]
    assert stop and "succeed about 60 s later" in stop[0]
    v = check(Snapshot([rec("LISTEN", pid=7, fd=3, ra=True)]), cand(reuseaddr=True))
    assert any(s.startswith("Or stop") and "would then succeed" in s for s in v.suggestions)


def test_after_exit_keeps_connections_as_timewait_and_shared_sockets() -> None:
    lst = rec("LISTEN", pid=7, fd=3, ra=True)
    conn = rec("ESTAB", peer=("127.0.0.1", 50000), pid=7, fd=4, ra=True)
    shared = rec("LISTEN", port=9090, pid=7, fd=5)
    shared.owners.append(Owner(8, 3, "other", "root"))
    queued = rec("ESTAB", peer=("127.0.0.1", 50001))  # not yet accepted: reset
    after = after_exit(Snapshot([lst, conn, shared, queued]), {7})
    states = sorted((r.local_port, r.state) for r in after.sockets)
    assert states == [(8080, "TIME-WAIT"), (9090, "LISTEN")]
    tw_rec = next(r for r in after.sockets if r.state == "TIME-WAIT")
    assert tw_rec.reuseaddr is True and tw_rec.owners == [] and tw_rec.timer is not None


def test_restart_rehearsal() -> None:
    lst = rec("LISTEN", "0.0.0.0", pid=7, fd=3)
    conn = rec("ESTAB", peer=("127.0.0.1", 50000), pid=7, fd=4)
    report = rehearse_restart(Snapshot([lst, conn]), 7)
    assert report.verdict == "conflict" and report.ok_after_s == 60.0
    assert [i.outcome for i in report.items] == ["conflict"]
    lst = rec("LISTEN", "0.0.0.0", pid=7, fd=3, ra=True)
    conn = rec("ESTAB", peer=("127.0.0.1", 50000), pid=7, fd=4, ra=True)
    assert rehearse_restart(Snapshot([lst, conn]), 7).verdict == "ok"
    # Two sockets of one process that only coexist through SO_REUSEPORT: restarted in order.
    a = rec("LISTEN", "0.0.0.0", pid=7, fd=3, rp=True, uid=5)
    b = rec("LISTEN", "0.0.0.0", pid=7, fd=4, rp=True, uid=5)
    report = rehearse_restart(Snapshot([a, b]), 7)
    assert [i.outcome for i in report.items] == ["ok", "ok"]


def test_like_with_an_unreadable_option_is_unknown_when_it_matters() -> None:
    a = rec("LISTEN", "0.0.0.0", pid=7, rp=None, uid=5)
    v = check_like(Snapshot([a]), a)
    assert v.verdict == "unknown" and "SO_REUSEPORT" in v.explanation
    b = rec("LISTEN", "0.0.0.0", pid=7, rp=True, uid=5)
    assert check_like(Snapshot([b]), b).verdict == "ok"


def test_predict_exports_modules_under_their_own_names() -> None:
    import sockscope.predict.why as why_module

    assert why_module.__name__ == "sockscope.predict.why"
    predict = importlib.import_module("sockscope.predict")
    for name in ("why", "engine", "answer", "suggest", "groups", "rehearsal", "waiting", "departure"):
        assert getattr(predict, name).__name__ == f"sockscope.predict.{name}"
    assert callable(predict.check) and callable(predict.why_port)


def test_predict_imports_form_a_dag_without_function_level_imports() -> None:
    pkg = pathlib.Path(importlib.import_module("sockscope.predict").__file__).parent
    graph: dict[str, set[str]] = {}
    for path in pkg.glob("*.py"):
        tree = ast.parse(path.read_text())
        top = set(tree.body)
        deps: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                assert node in top, f"{path.name}:{node.lineno}: import inside a function"
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                deps.add(node.module.split(".")[0])
        graph[path.stem] = deps
    graph.pop("__init__")
    seen: dict[str, int] = {}

    def visit(mod: str, stack: tuple[str, ...]) -> None:
        assert mod not in stack, f"import cycle: {' -> '.join((*stack, mod))}"
        if seen.get(mod):
            return
        for dep in graph.get(mod, ()):
            visit(dep, (*stack, mod))
        seen[mod] = 1

    for mod in graph:
        visit(mod, ())
    # suggestions sit on top of evaluation, never below it
    assert "suggest" not in graph["engine"] and "engine" in graph["suggest"]


def test_a_possible_blocker_names_its_rule_only_when_one_applies() -> None:
    # A bound socket of another uid with both options unreadable: it blocks a SO_REUSEADDR +
    # SO_REUSEPORT bind only if it lacks SO_REUSEADDR, and then for one of two reasons.
    other = rec("UNCONN", ra=None, rp=None, uid=7, pid=9)
    v = check(Snapshot([other]), cand(reuseaddr=True, reuseport=True, uid=5, listen=False))
    assert v.verdict == "unknown"
    reason = v.blockers[0].reason
    assert "unless it has SO_REUSEADDR" in reason
    assert "which rule applies hangs on its unreadable options" in reason
    assert "if it lacks SO_REUSEPORT, it was opened without SO_REUSEADDR" in reason
