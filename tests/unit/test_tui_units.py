"""The TUI's pure parts: the poll plan, the view builder (marks, ghosts, grouping, sort),
column layout and cell fitting, the details text; and the limitation notice."""

from __future__ import annotations

from sockscope.model import Snapshot, SocketRecord
from sockscope.tui import SockscopeApp
from sockscope.tui.columns import PANE_COLUMNS, GroupRow, ident, options_text
from sockscope.tui.poller import PollPlan, StaticSource
from sockscope.tui.screens.details import describe, group_of
from sockscope.tui.views import Frame, Settings, ViewBuilder
from sockscope.tui.widgets.socket_table import fit, layout

from tui_data import T0, snapshot


def frame(snap: Snapshot, seq: int, full: bool = True, others_gen: int | None = None) -> Frame:
    listening = [r for r in snap.sockets if r.state in ("LISTEN", "UNCONN")]
    others = [r for r in snap.sockets if r.state not in ("LISTEN", "UNCONN")]
    return Frame(seq=seq, full=full, listening=listening, others=others,
                 others_gen=seq if others_gen is None else others_gen, taken_at=T0 + seq,
                 full_taken_at=T0 + seq, started=float(seq), facts=snap.facts)


def test_poll_plan_adapts_to_the_full_dump_cost():
    plan = PollPlan(interval=1.0)
    assert plan.want_full(0.0)
    plan.did_full(0.0, 2.5)  # the cold first dump does not count
    assert plan.full_period == 1.0 and plan.want_full(1.0)
    plan.did_full(1.0, 0.3)  # warm: 0.3 s -> a full dump every 1.5 s at most
    assert plan.full_period == 1.5
    assert not plan.want_full(2.0)
    assert plan.want_full(2.5)
    plan.did_full(2.5, 0.01)
    assert plan.full_period == 1.0
    plan.did_full(3.5, 100.0)
    assert plan.full_period == 60.0  # bounded


def test_builder_partitions_sorts_and_counts():
    b = ViewBuilder(clock=lambda: T0)
    views = b.build(frame(snapshot(), 1), Settings())
    panes = views.panes
    assert {r.state for r in panes["listening"].rows} == {"LISTEN", "UNCONN"}
    assert {r.state for r in panes["established"].rows} == {"ESTAB"}
    assert all(r.proto == "tcp" for r in panes["established"].rows)
    assert {r.state for r in panes["other"].rows} == {"CLOSE-WAIT", "FIN-WAIT-2", "SYN-SENT", "ESTAB"}
    tw = panes["timewait"]
    assert tw.mode == "timewait-groups" and all(isinstance(g, GroupRow) for g in tw.rows)
    by = {(g.by, g.value): g for g in tw.rows}
    assert by[("port", ":443")].count == 40 and by[("port", ":443")].distinct == 4
    assert by[("peer", "2001:db8::99")].count == 5
    assert tw.rows[0].count == 40  # most first
    assert panes["listening"].groups == {("tcp", "0.0.0.0", 443, 0): 3}
    assert views.counts["TIME-WAIT"] == 45 and views.counts["UDP-CONN"] == 1 and views.counts["LISTEN"] == 6
    ports = [r.local_port for r in panes["listening"].rows]
    assert ports == sorted(ports)


def test_builder_marks_new_and_gone_then_forgets():
    now = [T0]
    b = ViewBuilder(clock=lambda: now[0], mark_seconds=2.0)
    snap = snapshot()
    b.build(frame(snap, 1), Settings())
    gone = snap.sockets.pop(0)  # an nginx listener goes
    added = snapshot().sockets[0]
    added.cookie, added.local_port = 9999, 8443  # a new one comes
    snap.sockets.append(added)
    now[0] += 0.5
    views = b.build(frame(snap, 2), Settings())
    lv = views.panes["listening"]
    assert ident(added) in lv.new and ident(gone) in lv.gone
    assert gone in lv.rows, "a vanished socket stays, dimmed, for a while"
    assert lv.position(ident(gone)) is not None
    now[0] += 3
    views = b.build(None, Settings())
    lv = views.panes["listening"]
    assert gone not in lv.rows and not lv.gone and not lv.new
    assert b.next_expiry() is None


def test_listening_only_frames_keep_the_other_panes():
    b = ViewBuilder(clock=lambda: T0)
    snap = snapshot()
    v1 = b.build(frame(snap, 1), Settings())
    f2 = frame(snap, 2, full=False, others_gen=1)
    v2 = b.build(f2, Settings())
    assert v2.rebuilt == {"listening"}
    assert v2.panes["established"] is v1.panes["established"]


def test_settings_filter_sort_group():
    from sockscope.filter import compile_filter

    b = ViewBuilder(clock=lambda: T0)
    snap = snapshot()
    b.build(frame(snap, 1), Settings())
    s = Settings(version=1, filter_text="sport = :443", predicate=compile_filter("sport = :443"))
    v = b.build(None, s)
    assert {r.local_port for r in v.panes["listening"].rows} == {443}
    assert {g.value for g in v.panes["timewait"].rows if g.by == "port"} == {":443"}
    s2 = Settings(version=2, filter_text=s.filter_text, predicate=s.predicate,
                  sort=s.with_sort("established", "recv_q", True), tw_grouped=False)
    v = b.build(None, s2, {"established", "timewait"})
    rq = [r.recv_q for r in v.panes["established"].rows]
    assert rq == sorted(rq, reverse=True)
    assert v.panes["timewait"].mode == "timewait" and len(v.panes["timewait"].rows) == 40


def test_layout_drops_optional_columns_and_fills_the_width():
    for mode, cols in PANE_COLUMNS.items():
        for width in (80, 100, 200):
            lay = layout(cols, width)
            assert sum(w for _c, w in lay) + len(lay) == width, (mode, width)
            assert all(w >= c.width for c, w in lay)
    narrow = {c.key for c, _w in layout(PANE_COLUMNS["listening"], 80)}
    wide = {c.key for c, _w in layout(PANE_COLUMNS["listening"], 200)}
    assert {"cookie", "inode", "uid"} <= wide and "cookie" not in narrow
    assert {"group", "local", "opt", "owner"} <= narrow


def test_fit_and_options():
    assert fit("abc", 5) == "abc  " and fit("abc", 5, "right") == "  abc"
    assert fit("[2001:db8::1234:5678]:443", 12, shorten="middle") == "[2001…8]:443"
    assert len(fit("averyveryverylongname", 8)) == 8
    snap = snapshot()
    opts = {(r.local_port, r.proto): options_text(r) for r in snap.sockets if r.state in ("LISTEN", "UNCONN")}
    assert opts[(443, "tcp")] == "AP " and opts[(80, "tcp")] == "A-6" and opts[(8080, "tcp")] == "?? "
    assert opts[(5353, "udp")] == "AP-"


def test_details_text_has_every_field():
    snap = snapshot()
    r = snap.sockets[0]
    text = describe(r, snap, {}, None, "predictor unavailable", now=0).plain
    for word in ("SO_REUSEADDR", "on (read)", "cookie", "1000", "inode", "5000", "uid", "33", "nginx",
                 "nginx: worker process", "Reuseport group: 3 sockets", "predictor unavailable", "timer"):
        assert word in text, word
    assert len(group_of(r, snap)) == 3


async def test_limitation_is_a_one_line_notice():
    note = "not root: SO_REUSEADDR/SO_REUSEPORT of sockets owned by 3 processes are unknown"
    snap = snapshot(limitation=note)
    app = SockscopeApp(make_source=lambda: StaticSource(snap), interval=3600, clock=lambda: T0, fixed_time=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.wait_for(lambda v: True)
        await pilot.pause()
        notice = app.query_one("#notice")
        assert notice.has_class("-show") and notice.size.height == 1
        assert "not root" in str(notice.render())


async def test_collector_error_is_shown_not_raised():
    def broken():
        raise RuntimeError("no network namespace 'gone'")

    app = SockscopeApp(make_source=broken, interval=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(200):
            if app.error:
                break
            await pilot.pause(0.02)
        await pilot.pause()
        assert "no network namespace" in app.error
        # The error has its own line (readable at 80x24), the header says STALE.
        assert "no network namespace" in str(app.query_one("#stale").render())
        assert "STALE" in str(app.query_one("#header-counts").render())


def test_bind_check_screen_talks_to_the_app_by_message() -> None:
    """The screen posts BlockersFound; it never calls into the app (tui/messages.py)."""
    import inspect

    from sockscope.tui.messages import BlockersFound
    from sockscope.tui.screens import bind_check

    source = inspect.getsource(bind_check)
    assert "set_blockers" not in source and "self.app." not in source.replace("self.app.call_from_thread", "")
    assert "BlockersFound(" in source
    from sockscope.tui.app import SockscopeApp

    assert hasattr(SockscopeApp, "on_blockers_found") and BlockersFound.handler_name == "on_blockers_found"


def test_reuseport_group_bracket_never_joins_two_namespaces() -> None:
    """The same address and port in two namespaces is two sockets, not a SO_REUSEPORT group."""
    from sockscope.model import NetnsRef
    from sockscope.tui.columns import group_key

    a = SocketRecord("tcp", 4, "LISTEN", "0.0.0.0", 8080, "0.0.0.0", 0, 0, 1, 1)
    b = SocketRecord("tcp", 4, "LISTEN", "0.0.0.0", 8080, "0.0.0.0", 0, 0, 2, 2)
    assert group_key(a) == group_key(b)  # one namespace: a group
    a.netns, b.netns = NetnsRef(10, "web", "netns"), NetnsRef(11, "cache", "netns")
    assert group_key(a) != group_key(b)
