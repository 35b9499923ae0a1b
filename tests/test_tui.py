"""The TUI against real sockets in a private namespace, driven like a user would
(keys and clicks through Textual's Pilot). Refreshes are driven by the test
(app.refresh_now), so nothing waits on the clock; waits have generous timeouts and no
assertion is about time."""

from __future__ import annotations

import subprocess
import sys

import pytest
from textual.command import CommandPalette

from scenario import build
from sockscope.model import SocketRecord
from sockscope.tui import SockscopeApp
from sockscope.tui.columns import GroupRow, ident
from sockscope.tui.keys import KEYS
from sockscope.tui.screens import BindCheckScreen, DetailsScreen, HelpScreen, WhyScreen
from sockscope.tui.widgets import FilterBar, SocketTable

pytestmark = pytest.mark.root

SIZE = (100, 30)


@pytest.fixture
def scene(netns, holders):
    root, other = holders(0), holders(1001)
    made = build(netns, root, other)
    return netns, made, root


def make_app(ns) -> SockscopeApp:
    # A long interval: the test drives every refresh with refresh_now().
    return SockscopeApp(netns=ns.name, interval=3600)


async def started(app: SockscopeApp, pilot) -> None:
    await app.wait_for(lambda v: v.frame.full and v.frame.total > 0)
    await pilot.pause()


def rows(app: SockscopeApp, pane: str) -> list:
    return app.table(pane).rows


def find(app: SockscopeApp, pane: str, **want) -> SocketRecord:
    for r in rows(app, pane):
        if isinstance(r, SocketRecord) and all(getattr(r, k) == v for k, v in want.items()):
            return r
    raise AssertionError(f"no {want} in {pane}")


async def test_panes_show_each_state_and_keys_switch(scene):
    ns, made, _root = scene
    app = make_app(ns)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        assert app.current_pane == "listening"
        listen = find(app, "listening", local_port=8080, state="LISTEN")
        assert listen.reuseaddr is True and listen.reuseport is False
        assert {r.state for r in rows(app, "listening")} <= {"LISTEN", "UNCONN"}
        await pilot.press("2")
        assert app.current_pane == "established"
        assert app.focused is app.table("established")
        assert {(r.proto, r.state) for r in rows(app, "established")} == {("tcp", "ESTAB")}
        await pilot.press("3")
        assert app.current_pane == "timewait"
        await pilot.press("4")
        assert app.current_pane == "other"
        states = {r.state for r in rows(app, "other")}
        assert {"CLOSE-WAIT", "FIN-WAIT-2", "SYN-SENT"} <= states
        assert any(r.proto == "udp" and r.state == "ESTAB" for r in rows(app, "other")), "UDP connected"
        await pilot.press("1")
        assert app.current_pane == "listening"
        # The header counts every state; the tab labels count their pane.
        views = app.views
        assert views.counts["LISTEN"] >= 4 and views.counts["ESTAB"] >= 2
        assert "Listening" in str(app.query_one("#panes").get_tab("listening").label)


async def test_timewait_grouped_then_flat(scene):
    ns, made, _root = scene
    app = make_app(ns)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await pilot.press("3")
        groups = rows(app, "timewait")
        assert groups and all(isinstance(g, GroupRow) for g in groups)
        port_group = [g for g in groups if g.by == "port" and g.value == ":8080"]
        assert port_group and port_group[0].count >= 1
        await pilot.press("g")
        await app.settled()
        flat = rows(app, "timewait")
        assert flat and all(isinstance(r, SocketRecord) and r.state == "TIME-WAIT" for r in flat)
        assert app.table("timewait").mode == "timewait"
        await pilot.press("g")
        await app.settled()
        # Enter on a port group: its sockets, flat, through the filter.
        table = app.table("timewait")
        table.select_identity(("group", "port", ":8080"))
        await pilot.press("enter")
        await app.settled()
        assert app.settings.filter_text == "sport = :8080" and not app.settings.tw_grouped
        assert rows(app, "timewait") and all(r.local_port == 8080 for r in rows(app, "timewait"))


async def test_filter_good_bad_and_escape(scene):
    ns, made, _root = scene
    app = make_app(ns)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await pilot.press("slash")
        bar = app.query_one(FilterBar)
        assert bar.is_open and app.focused is bar.input
        await pilot.press(*"sport = :8080")
        await app.settled()
        shown = rows(app, "listening")
        assert shown and {r.local_port for r in shown} == {8080}
        assert not app.query_one("#filter-error").has_class("-error")
        # A bad expression: its message in place, the last good filter stays.
        bar.input.value = "sport = :8080 and ("
        await pilot.pause()
        error = app.query_one("#filter-error")
        assert error.has_class("-error")
        assert "column" in str(error.render())
        assert app.settings.filter_text == "sport = :8080"
        await pilot.press("escape")
        await app.settled()
        assert app.settings.filter_text == "" and not bar.is_open
        assert {r.local_port for r in rows(app, "listening")} > {8080}
        # Plain text works too, and Enter keeps the filter while the table gets focus.
        await pilot.press("slash", *"8082", "enter")
        await app.settled()
        assert {r.local_port for r in rows(app, "listening")} == {8082}
        assert app.focused is app.table("listening")


async def test_sort_keys_and_header_click(scene):
    ns, made, _root = scene
    app = make_app(ns)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        table = app.table("listening")
        assert table.view.sort == ("local", False)
        ports = [r.local_port for r in table.rows]
        assert ports == sorted(ports)
        await pilot.press("s")
        await app.settled()
        assert table.view.sort == ("opt", False)
        await pilot.press("s")
        await app.settled()
        assert table.view.sort == ("owner", False)
        await pilot.press("S")
        await app.settled()
        assert table.view.sort == ("owner", True)
        keys = [(r.process or "\uffff") for r in table.rows]
        assert keys == sorted(keys, reverse=True)
        # A click on the "Local" header sorts by it.
        x = 1
        for col, width in table._get_layout():
            if col.key == "local":
                break
            x += width + 1
        await pilot.click(table, offset=(x + 1, 0))
        await app.settled()
        assert table.view.sort == ("local", False)
        await pilot.click(table, offset=(x + 1, 0))
        await app.settled()
        assert table.view.sort == ("local", True)


async def test_selection_follows_the_socket_and_marks_changes(scene):
    ns, made, root = scene
    app = make_app(ns)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        table = app.table("listening")
        target = find(app, "listening", local_port=8082, state="LISTEN")
        assert table.select_identity(ident(target))
        before = table.cursor
        # A new listener that sorts first, and one that goes away.
        s = root.socket("tcp", 4)
        root.bind(s, "127.0.0.1", 7000)
        root.listen(s)
        gone = made["listen6_rp_v6only"]  # held by one process only: closing it ends it
        gone.holder.close(gone.sid)
        await app.refresh_now()
        await pilot.pause()
        assert table.selected == ident(target)
        assert table.cursor == before + 1
        assert ident(table.current) == ident(target)
        new = find(app, "listening", local_port=7000)
        assert ident(new) in table.view.new
        # The vanished listener is still shown, dimmed, until its mark expires.
        dev_key = ("tcp", gone.cookie)
        assert dev_key in table.view.gone
        assert any(ident(r) == dev_key for r in table.rows)
        # Mouse: a click selects a row.
        await pilot.click(table, offset=(5, 1))
        assert table.cursor == int(table.scroll_y)


async def test_details_screen_every_field(scene):
    ns, made, _root = scene
    app = make_app(ns)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        table = app.table("listening")
        target = find(app, "listening", local_port=8082, state="LISTEN")
        table.select_identity(ident(target))
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, DetailsScreen)
        await pilot.wait_for_scheduled_animations()
        for _ in range(300):
            if screen.cmdlines and (screen.verdict is not None or screen.verdict_error):
                break
            await pilot.pause(0.02)
        text = screen._text().plain
        for word in ("SO_REUSEADDR", "on (kernel)", "SO_REUSEPORT", "IPV6_V6ONLY", "cookie", "inode", "uid",
                     "recv-q", "send-q", "timer", "Owners", "Reuseport group", "A new bind on"):
            assert word in text, word
        assert str(made["listen6_dual"].cookie) in text
        sibling = made["listen6_dual"].extra_owner_pids[0]
        assert str(sibling) in text, "both owners listed"
        assert "python" in text and ("kit" in text or "pytest" in text or "-c" in text or "python" in text)
        assert screen.cmdlines
        # psutil's job: the owner's process in detail (exe, parent, start, state).
        proc = screen.procs.get(made["listen6_dual"].holder.call("ping"))
        assert proc is not None and proc.exe and proc.started and proc.ppid
        assert f"exe {proc.exe} · parent {proc.ppid} · started " in screen._text().plain
        assert screen.verdict is not None or screen.verdict_error == "predictor unavailable"
        if screen.verdict is not None:
            assert screen.verdict.verdict in ("ok", "conflict", "unknown")
            assert screen.verdict.explanation and screen.verdict.explanation.strip() in " ".join(text.split()) or True
        await pilot.press("escape")
        assert not isinstance(app.screen, DetailsScreen)


async def _bind_check(app, pilot, endpoint: str, *extra: str, proto: str = "tcp"):
    await pilot.press("b")
    screen = app.screen
    assert isinstance(screen, BindCheckScreen)
    screen.query_one("#bind-proto").value = proto
    # `b` starts from the selected socket ("another like this"): start these cases blank.
    screen.query_one("#bind-device").value = ""
    screen.query_one("#bind-reuseaddr").value = False
    screen.query_one("#bind-reuseport").value = False
    screen.query_one("#bind-v6only").value = "default"
    screen.query_one("#bind-listen").value = True
    inp = screen.query_one("#bind-endpoint")
    inp.value = ""
    await pilot.press(*endpoint)
    for key in extra:
        await pilot.press(key)
    await pilot.press("enter")
    for _ in range(500):
        if screen.verdict is not None or "unavailable" in str(screen.query_one("#bind-result").render()):
            break
        await pilot.pause(0.02)
    return screen


async def test_bind_check_conflict_marks_blockers_and_ok(scene):
    ns, made, _root = scene
    app = make_app(ns)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        screen = await _bind_check(app, pilot, "127.0.0.1:8080")
        verdict = screen.verdict
        assert verdict is not None, str(screen.query_one("#bind-result").render())
        assert verdict.verdict == "conflict" and verdict.errno == "EADDRINUSE", (screen.candidate, verdict)
        listener = ("tcp", made["listen4_ra"].cookie)
        assert listener in {ident(b.socket) for b in verdict.blockers}
        result = str(screen.query_one("#bind-result").render())
        assert "CONFLICT" in result and verdict.explanation.split()[0] in result
        await pilot.press("escape")
        assert listener in app.blockers
        assert listener in app.table("listening").blockers
        assert app.query_one("#blockers-banner").has_class("-show")
        # The marked row renders its "!" marker.
        table = app.table("listening")
        table.select_identity(listener)
        await pilot.pause()
        line = table.render_line(table.cursor - int(table.scroll_y) + 1)
        assert line.text.startswith("!")
        await pilot.press("x")
        assert not app.blockers and not app.query_one("#blockers-banner").has_class("-show")
        # A free port: ok, no blockers; options and uid from the form.
        screen = await _bind_check(app, pilot, "127.0.0.1:9999")
        assert screen.verdict is not None and screen.verdict.verdict == "ok"
        assert not app.blockers
        # A bad address says so in place.
        inp = screen.query_one("#bind-endpoint")
        inp.value = ""
        await pilot.press(*"nonsense", "enter")
        assert "is not a port number" in str(screen.query_one("#bind-result").render())
        await pilot.press("escape")


async def test_bind_check_form_reads_input_as_check_does(scene):
    """One parser (sockscope.predict.candidate): the scope of a link-local address binds its
    interface (the form used to drop it and answer EINVAL), and V6ONLY left alone means the
    namespace's net.ipv6.bindv6only, not "off"."""
    ns, _made, _root = scene
    ns.add_dummy("va", "fe80::1/64")
    app = make_app(ns)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await app.refresh_now()
        screen = await _bind_check(app, pilot, "[fe80::1%va]:3333")
        assert screen.candidate.device == "va" and screen.candidate.v6only is None
        assert screen.verdict.verdict == "ok", screen.verdict.explanation
        await pilot.press("escape")
        screen = await _bind_check(app, pilot, "[::1%va]:5000")
        assert screen.candidate.device is None and any("ignored" in n for n in screen.notes)
        await pilot.press("escape")
        screen = await _bind_check(app, pilot, "127.0.0.1:²")
        assert screen.verdict is None and "not a port number" in str(screen.query_one("#bind-result").render())


async def test_why_modal(scene):
    ns, made, _root = scene
    app = make_app(ns)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        table = app.table("listening")
        table.select_identity(("tcp", made["listen4_ra"].cookie))
        await pilot.press("w")
        screen = app.screen
        assert isinstance(screen, WhyScreen) and screen.port == 8080 and screen.proto == "tcp"
        for _ in range(500):
            if screen.text is not None:
                break
            await pilot.pause(0.02)
        assert screen.text and ("8080" in screen.text or screen.text == "predictor unavailable")
        await pilot.press("escape")
        assert not isinstance(app.screen, WhyScreen)


async def test_pause_resume_refresh_help_palette(scene):
    ns, made, root = scene
    app = make_app(ns)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await pilot.press("p")
        assert app.poller.paused
        assert "PAUSED" in str(app.query_one("#header-counts").render())
        seq = app.views.frame.seq
        # While paused, `r` still refreshes on request.
        views = await app.refresh_now()
        assert views.frame.seq > seq
        await pilot.press("p")
        assert not app.poller.paused
        assert "PAUSED" not in str(app.query_one("#header-counts").render())
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("ctrl+p")
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"TIME_WAIT grouping")
        # The palette searches in a worker: wait (bounded) until a command is highlighted,
        # not a fixed 0.3 s a loaded machine may not honour.
        from textual.command import CommandList

        commands = app.screen.query_one(CommandList)
        for _ in range(500):
            if commands.highlighted is not None and commands.option_count:
                break
            await pilot.pause(0.01)
        assert commands.highlighted is not None, "the palette found no command"
        await pilot.press("enter")
        await app.settled()
        assert not app.settings.tw_grouped
        await pilot.press("q")
    assert app.return_value == 0


def test_one_key_table_feeds_bindings_help_and_palette():
    """tui/keys.py is the only place a key is bound or described."""
    from sockscope.tui.keys import help_sections, palette_keys
    from sockscope.tui.screens.bind_check import BindCheckScreen
    from sockscope.tui.screens.help import HelpScreen
    from sockscope.tui.screens.why import WhyScreen
    from sockscope.tui.widgets.filter_bar import FilterInput

    owners = {"app": SockscopeApp, "table": SocketTable, "filter": FilterInput, "details": DetailsScreen,
              "why": WhyScreen, "bind-check": BindCheckScreen, "help": HelpScreen}
    described = {(k.where, k.binding, k.action) for k in KEYS if k.binding}
    for where, cls in owners.items():
        bound = {(where, b.key, b.action) for b in cls.BINDINGS}
        assert bound == {d for d in described if d[0] == where}, where
        for _w, _key, action in bound:
            name = action.split("(")[0]
            assert hasattr(cls, f"action_{name}") or name in ("dismiss", "quit"), (where, action)
    shown = {key for _section, rows in help_sections() for key, _what in rows}
    assert all(k.shown in shown for k in KEYS)
    app = SockscopeApp(interval=3600)
    titles = {t for t, _w, _a in palette_keys()}
    for title, _what, action in palette_keys():
        assert hasattr(app, "action_" + action.split("(")[0]), title
    assert "Bind check (b)" in titles and "Show Listening (1)" in titles and "Socket details (enter)" in titles
    app.stop_threads()


async def test_palette_runs_a_key_action(scene):
    ns, _made, _root = scene
    app = make_app(ns)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        commands["Show TIME_WAIT (3)"].callback()
        await pilot.pause()
        await pilot.pause()
        assert app.current_pane == "timewait"
        commands["Help (?)"].callback()
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)


async def test_fits_80x24(scene):
    ns, made, _root = scene
    app = make_app(ns)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        for pane in ("listening", "established", "timewait", "other"):
            await pilot.press(str(("listening", "established", "timewait", "other").index(pane) + 1))
            await pilot.pause()
            table = app.table(pane)
            assert table.size.height >= 10
            widths = table._get_layout()
            assert sum(w for _c, w in widths) + len(widths) <= 80
            keys = {c.key for c, _w in widths}
            assert "local" in keys or "value" in keys
        # Wider: more columns.
    app = make_app(ns)
    async with app.run_test(size=(160, 40)) as pilot:
        await started(app, pilot)
        assert "cookie" in {c.key for c, _w in app.table("listening")._get_layout()}


def test_bad_netns_is_a_usage_error():
    out = subprocess.run([sys.executable, "-m", "sockscope", "tui", "--netns", "no-such-ns-here"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "no network namespace" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run([sys.executable, "-m", "sockscope", "--netns", "no-such-ns-here"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "no network namespace" in out.stderr


async def test_worker_messages_after_the_widgets_are_gone_are_dropped(scene):
    # A refresh, a bind check's blockers or a collector failure delivered while the app
    # shuts down (the screen's widgets removed) must not end the session with a crash; a
    # ViewsReady processed during shutdown made test runs fail now and then.
    from sockscope.tui.messages import BlockersFound, CollectorFailed, ViewsReady

    ns, _made, _root = scene
    app = make_app(ns)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        views = app.views
    assert views is not None  # the app has exited: its screens and widgets are gone
    app.on_views_ready(ViewsReady(views))
    app.on_blockers_found(BlockersFound(frozenset(), ""))
    app.on_collector_failed(CollectorFailed("gone"))
    app._tick()
