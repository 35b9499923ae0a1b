"""`K` in the TUI: a preview, then an explicit confirmation; destroys exactly the selected
socket or signals exactly its process; nothing under --readonly. Real sockets in a private
namespace, driven through Pilot."""

from __future__ import annotations

import pytest

from sockscope.model import SocketRecord
from sockscope.tui import SockscopeApp
from sockscope.tui.columns import ident
from sockscope.tui.screens import FreePortScreen

pytestmark = pytest.mark.root
SIZE = (100, 30)
P = 18480


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


@pytest.fixture
def conn(netns, holders):
    server, client = holders(0), holders(0)
    lst = server.socket("tcp", 4)
    assert server.bind(lst, "127.0.0.1", P) is None and server.listen(lst) is None
    c = client.socket("tcp", 4)
    client.connect(c, "127.0.0.1", P)
    a = server.accept(lst)
    return netns, server, client, c, server.cookie(a)


async def _select(app: SockscopeApp, pilot, cookie: int) -> SocketRecord:
    await app.wait_for(lambda v: v.frame.full and v.frame.total > 0)
    await pilot.press("2")
    await _until(pilot, lambda: app.current_pane == "established")
    await app.settled()
    await pilot.pause()
    rec = next(r for r in app.table("established").rows if isinstance(r, SocketRecord) and r.cookie == cookie)
    app.table("established").select_identity(ident(rec))
    await _until(pilot, lambda: getattr(app._current_record(), "cookie", None) == cookie)
    return rec


async def _until(pilot, cond, tries: int = 500) -> None:
    for _ in range(tries):
        if cond():
            return
        await pilot.pause(0.02)
    raise AssertionError("condition not reached")


async def test_K_destroys_only_after_confirmation(conn):
    netns, server, client, c, cookie = conn
    app = SockscopeApp(netns=netns.name, interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        await _select(app, pilot, cookie)
        await pilot.press("K")
        screen = app.screen
        assert isinstance(screen, FreePortScreen) and screen.rec.cookie == cookie
        text = screen.body().plain
        assert "Will destroy 1 socket(s)" in text and "will be reset" in text and "SIGTERM" in text
        await pilot.press("y")  # nothing chosen yet: y does nothing
        assert screen.stage == "choose" and client.attempt("send", c, "x") is None
        await pilot.press("d")
        assert screen.stage == "confirm" and "Press y to confirm" in screen.body().plain
        assert client.attempt("send", c, "x") is None  # still nothing done
        await pilot.press("y")
        await _until(pilot, lambda: screen.stage == "done")
        assert "destroyed." in screen.body().plain
        assert client.attempt("send", c, "x") in ("ECONNRESET", "EPIPE")
        assert _alive(server.pid)
        await pilot.press("escape")


async def test_K_cancel_and_sigterm_exactly_the_owner(conn):
    netns, server, client, c, cookie = conn
    app = SockscopeApp(netns=netns.name, interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        await _select(app, pilot, cookie)
        await pilot.press("K", "t", "n")  # chosen, then cancelled
        assert not isinstance(app.screen, FreePortScreen)
        assert _alive(server.pid) and client.attempt("send", c, "x") is None
        await pilot.press("K", "t")
        screen = app.screen
        assert isinstance(screen, FreePortScreen) and screen.stage == "confirm"
        await pilot.press("y")
        await _until(pilot, lambda: screen.stage in ("done", "offer-kill"))
        assert f"SIGTERM sent to pid {server.pid}" in screen.body().plain
        await _until(pilot, lambda: not _alive(server.pid))
        assert _alive(client.pid)
        await pilot.press("escape")


async def test_K_is_disabled_under_readonly(conn):
    netns, server, client, c, cookie = conn
    app = SockscopeApp(netns=netns.name, interval=3600, readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        await _select(app, pilot, cookie)
        await pilot.press("K", "d", "y", "t", "y")
        assert not isinstance(app.screen, FreePortScreen)
        assert client.attempt("send", c, "x") is None and _alive(server.pid)
