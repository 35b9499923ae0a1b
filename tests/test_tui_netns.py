"""The TUI over several namespaces: the Netns column, the namespace pane, the `netns`
filter, a re-created namespace announced and re-entered, and a docker-proxy style port
mapping linked to the listener it forwards to. Real namespaces and sockets; refreshes
driven by the test."""

from __future__ import annotations

import os
import subprocess
import sys


import pytest

from kit import Holder, Netns
from sockscope.collectors.multi import MultiCollector
from sockscope.collectors.portmap import port_mappings, proxy_target
from sockscope.filter import compile_filter
from sockscope.model import NetnsRef, SocketRecord
from sockscope.tui import SockscopeApp
from sockscope.tui.columns import ident
from sockscope.tui.netns_summary import link_lines, summarize
from sockscope.tui.screens import NamespacesScreen

pytestmark = pytest.mark.root

SIZE = (120, 30)
PORT = 18590


def listen(h: Holder, addr: str, port: int) -> None:
    sid = h.socket("tcp", 4)
    assert h.bind(sid, addr, port) is None and h.listen(sid) is None


def mine(app: SockscopeApp, names: set[str]) -> list[SocketRecord]:
    return [r for r in app.table("listening").rows
            if isinstance(r, SocketRecord) and r.netns is not None and r.netns.name in names]


async def test_all_netns_column_pane_and_filter(netns, holders):
    other = Netns()
    other.__enter__()
    try:
        h1, h2 = holders(0), Holder(other)
        try:
            listen(h1, "127.0.0.1", PORT)
            listen(h2, "127.0.0.1", PORT)
            names = {netns.name, other.name}
            app = SockscopeApp(all_netns=True, interval=3600)
            async with app.run_test(size=SIZE) as pilot:
                await app.wait_for(lambda v: v.frame.full and v.frame.namespaces is not None)
                await app.refresh_now()
                await pilot.pause()
                got = mine(app, names)
                assert sorted(r.netns.name for r in got if r.local_port == PORT) == sorted(names)
                table = app.table("listening")
                assert table.show_netns
                header = "".join(seg.text for seg in table.render_line(0))
                assert "Netns" in header
                # the namespace pane lists both, with their listener counts
                await pilot.press("n")
                await pilot.pause()
                screen = app.screen
                assert isinstance(screen, NamespacesScreen)
                by_name = {r.ref.name: r for r in screen.rows}
                assert by_name[netns.name].listeners == 1 and by_name[other.name].listeners == 1
                assert by_name[netns.name].ref.kind == "netns"
                assert any(r.ref.kind == "host" for r in screen.rows)
                # picking one namespace filters to it
                screen.dismiss(by_name[other.name].filter_text)
                await pilot.pause()
                await app.settled()
                await pilot.pause()
                shown = [r for r in app.table("listening").rows if isinstance(r, SocketRecord)]
                assert shown and all(r.netns.name == other.name for r in shown)
                assert app.settings.filter_text == f"netns {other.name}"
                # and "all" shows every namespace again
                await pilot.press("escape")
                await pilot.press("n")
                await pilot.pause()
                await pilot.press("a")
                await pilot.pause()
                await app.settled()
                await pilot.pause()
                assert app.settings.filter_text == ""
                assert sorted(r.netns.name for r in mine(app, names) if r.local_port == PORT) == sorted(names)
                assert "netns" in app._status()
        finally:
            h2.stop()
    finally:
        other.delete()


async def test_recreated_namespace_is_announced_and_reentered():
    ns = Netns()
    ns.__enter__()
    h = Holder(ns)
    h2: Holder | None = None
    try:
        listen(h, "127.0.0.1", PORT)
        app = SockscopeApp(netns=ns.name, interval=3600)
        async with app.run_test(size=SIZE) as pilot:
            await app.wait_for(lambda v: v.frame.full and v.frame.total > 0)
            old = {r.local_port for r in app.table("listening").rows if isinstance(r, SocketRecord)}
            assert PORT in old
            h.stop()
            ns.delete()
            ns.__enter__()
            h2 = Holder(ns)
            listen(h2, "127.0.0.1", PORT + 1)
            await app.refresh_now()
            await pilot.pause()
            table = app.table("listening")
            live = [r for r in table.rows if isinstance(r, SocketRecord) and ident(r) not in table.view.gone]
            assert {r.local_port for r in live} == {PORT + 1}  # the old one's socket is shown as gone
            notice = str(app.query_one("#notice").render())
            assert "re-created" in notice
    finally:
        h.stop()
        if h2 is not None:
            h2.stop()
        ns.delete()


def test_netns_filter_term():
    a = SocketRecord("tcp", 4, "LISTEN", "0.0.0.0", 80, "0.0.0.0", 0, 0, 1, 2, netns=NetnsRef(11, "web", "container"))
    b = SocketRecord("tcp", 4, "LISTEN", "0.0.0.0", 80, "0.0.0.0", 0, 0, 3, 4, netns=NetnsRef(12, "shop/api", "container"))
    c = SocketRecord("tcp", 4, "LISTEN", "0.0.0.0", 80, "0.0.0.0", 0, 0, 5, 6)
    assert [compile_filter("netns web")(r) for r in (a, b, c)] == [True, False, False]
    assert [compile_filter("netns shop/api")(r) for r in (a, b, c)] == [False, True, False]
    assert [compile_filter("netns 12")(r) for r in (a, b, c)] == [False, True, False]
    assert [compile_filter("netns != web")(r) for r in (a, b, c)] == [False, True, True]
    assert [compile_filter("web")(r) for r in (a, b, c)] == [True, False, False]  # plain text too


def test_proxy_target_parsing():
    argv = ["/usr/bin/docker-proxy", "-proto", "tcp", "-host-ip", "0.0.0.0", "-host-port", "8080",
            "-container-ip", "172.17.0.2", "-container-port", "80"]
    assert proxy_target(argv) == ("tcp", "172.17.0.2", 80)
    assert proxy_target(["/usr/bin/other", *argv[1:]]) is None
    assert proxy_target(argv[:-1]) is None
    assert proxy_target([*argv[:-1], "99999"]) is None


def test_docker_proxy_mapping_linked_to_the_container_listener(netns, holders, tmp_path):
    netns.add_dummy("sscv0", "10.77.0.2/24")
    h = holders(0)
    listen(h, "0.0.0.0", 80)
    link = tmp_path / "docker-proxy"
    link.symlink_to(os.path.realpath(sys.executable))
    script = ("import socket,sys,time\n"
              "s=socket.socket(); s.bind(('127.0.0.1', %d)); s.listen()\n"
              "print('ready', flush=True); time.sleep(120)\n") % (PORT + 7)
    proxy = subprocess.Popen([str(link), "-c", script, "-proto", "tcp", "-host-ip", "127.0.0.1", "-host-port",
                              str(PORT + 7), "-container-ip", "10.77.0.2", "-container-port", "80"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert proxy.stdout is not None and proxy.stdout.readline().strip() == "ready"
        with MultiCollector() as multi:
            snap = multi.snapshot()
        maps = [m for m in port_mappings(snap) if m.host.local_port == PORT + 7]
        assert len(maps) == 1
        m = maps[0]
        ns_ino = os.stat(netns.path).st_ino
        assert m.netns is not None and m.netns.inode == ns_ino
        assert m.target is not None and m.target.local_port == 80 and m.target.netns.inode == ns_ino
        assert m.host.owners[0].pid == proxy.pid
        row = next(r for r in summarize(snap) if r.ref.inode == ns_ino)
        assert row.published == [f"tcp :{PORT + 7}->:80"]
        assert link_lines(snap, m.host) == [f"forwards to {netns.name}: tcp 0.0.0.0:80"]
        assert link_lines(snap, m.target) == [f"published on the host as tcp 127.0.0.1:{PORT + 7} by docker-proxy"]
    finally:
        proxy.kill()
        proxy.wait(timeout=10)

