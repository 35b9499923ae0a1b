"""The Signals pane: sorted by severity, the worst in the header, Enter leads to the sockets."""

from __future__ import annotations

from sockscope.tui import SockscopeApp
from sockscope.tui.poller import StaticSource
from sockscope.tui.widgets import SignalsPane

from tui_data import T0, signals_snapshot


async def test_signals_pane_sorted_and_links_to_sockets():
    snap = signals_snapshot()
    app = SockscopeApp(make_source=lambda: StaticSource(snap), interval=3600, clock=lambda: T0 + 5.0, fixed_time=True)
    async with app.run_test(size=(120, 30)) as pilot:
        await app.wait_for(lambda v: True)
        await app.settled()
        await pilot.press("5")
        pane = app.query_one("#signals-pane", SignalsPane)
        table = pane.query_one("#signals-table")
        for _ in range(200):  # the tab switch moves the focus after a refresh
            if app.focused is table:
                break
            await pilot.pause(0.02)
        assert app.focused is table
        ranks = [s.rank for s in pane.rows]
        assert ranks == sorted(ranks, reverse=True) and pane.rows[0].severity == "critical"
        assert "CRIT listener tcp 0.0.0.0:9000" in app._status()
        assert app.query_one("#panes").get_tab("signals").label.plain.startswith("5 Signals 1!")
        # the ephemeral signal: Enter shows its connections in the Established pane
        idx = next(i for i, s in enumerate(pane.rows) if s.kind == "ephemeral")
        await pilot.press(*["down"] * idx)
        await pilot.press("enter")
        for _ in range(200):
            if app.current_pane == "established" and app.settings.filter_text:
                break
            await pilot.pause(0.02)
        views = await app.settled()
        assert app.current_pane == "established"
        assert app.settings.filter_text == "tcp and src 10.0.0.5 and dst 10.0.0.9:5432"
        shown = [r for r in views.panes["established"].rows]
        assert len(shown) == 6 and all(r.peer_port == 5432 for r in shown)
        await pilot.press("q")
