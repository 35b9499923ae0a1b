"""Issue 9 item 7 in the TUI: after rounds of churn with distinct peers, nothing the TUI
keeps refers to the sockets that are gone, and its caches stay within their bounds (real
sockets in a private namespace). Memory itself is measured for the collector in
test_events.py; here the UI threads make traced memory too noisy to be a fair judge."""

from __future__ import annotations

import asyncio
import socket

import pytest

from sockscope.collectors import netns as netns_mod
from sockscope.tui import SockscopeApp
from sockscope.tui.columns import addr_key
from sockscope.tui.views import MARK_SECONDS

pytestmark = pytest.mark.root


def open_round(ns: str, r: int, n: int) -> list[socket.socket]:
    """`n` UDP sockets on addresses no other round uses (127.<r+1>.x.y)."""
    socks = []
    with netns_mod.entered(ns):
        for i in range(n):
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.bind((f"127.{r + 1}.{i // 250}.{1 + i % 250}", 0))
            socks.append(u)
    return socks


async def test_churn_rounds_leave_nothing_behind(netns):
    app = SockscopeApp(netns=netns.name, interval=3600)
    n = 3000
    async with app.run_test(size=(100, 30)) as pilot:
        await app.wait_for(lambda v: v.frame.full)
        for r in range(4):
            socks = open_round(netns.name, r, n)
            await app.refresh_now()
            assert app.views is not None and app.views.frame.total >= n
            app.sort_by("local", False)  # sorting by address fills the sort-key cache
            await app.settled()
            for u in socks:
                u.close()
            del socks
            await app.refresh_now()
        await asyncio.sleep(MARK_SECONDS + 0.5)  # vanished rows stop being shown
        await app.refresh_now()
        await pilot.pause()
        assert app.views is not None and app.views.frame.total == 0
        assert not any(app.builder.ghosts.values())
        assert not any(app.builder.new.values())
        # The sort key keeps no memo of the peers it saw (inet_pton per call is cheaper than
        # a cache that churn fills): nothing of the gone sockets can stay there.
        assert not hasattr(addr_key, "cache_info")
        await app.action_quit()
