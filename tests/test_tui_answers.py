"""The TUI's answers (issue 8): `b` starts from the selected socket ("another like
this"), a listener's details answer "another member like this" and "this process
restarted" next to the plain new-bind question, blockers shown as groups. Real sockets in
a private namespace, driven through Pilot."""

from __future__ import annotations

import pytest

from test_tui import SIZE, find, make_app, scene, started  # noqa: F401 - the fixture
from sockscope.tui.columns import ident
from sockscope.tui.screens import BindCheckScreen, DetailsScreen

pytestmark = pytest.mark.root


async def test_b_starts_from_the_selected_listener(scene):  # noqa: F811
    ns, made, _root = scene
    app = make_app(ns)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        target = find(app, "listening", local_port=8081, state="LISTEN")  # SO_REUSEPORT, uid 1001
        app.table("listening").select_identity(ident(target))
        await pilot.pause()
        await pilot.press("b")
        screen = app.screen
        assert isinstance(screen, BindCheckScreen)
        await pilot.pause()
        assert screen.query_one("#bind-endpoint").value == "[::]:8081"
        assert screen.query_one("#bind-reuseport").value is True
        assert screen.query_one("#bind-reuseaddr").value is False
        assert screen.query_one("#bind-uid").value == "1001"
        assert screen.query_one("#bind-listen").value is True
        await pilot.press("enter")
        for _ in range(500):
            if screen.verdict is not None:
                break
            await pilot.pause(0.02)
        # Another SO_REUSEPORT worker of the same uid joins the group.
        assert screen.verdict is not None and screen.verdict.verdict == "ok", screen.verdict
        await pilot.press("escape")


async def test_details_answer_like_this_and_restarted(scene):  # noqa: F811
    ns, made, _root = scene
    app = make_app(ns)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        target = find(app, "listening", local_port=8080, state="LISTEN")
        app.table("listening").select_identity(ident(target))
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, DetailsScreen)
        for _ in range(500):
            if screen.rehearsals is not None:
                break
            await pilot.pause(0.02)
        text = " ".join(screen._text().plain.split())
        assert "A new bind on" in text
        assert "Another member like this" in text
        assert f"This process restarted (pid {target.pid}" in text
        # The listener has accepted connections: a second listener never joins it, and
        # the blockers are summarised in groups ("N x TCP ESTAB ...").
        like, restart = screen.rehearsals
        assert like.verdict == "conflict" and like.groups
        assert restart.verdict in ("ok", "conflict", "unknown") and restart.items
        await pilot.press("escape")
