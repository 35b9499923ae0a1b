"""`--all-netns` is change-driven too: a watch per namespace (collectors/multiwatch.py).
Real namespaces, real sockets; the kernel's counters and destroy events are the judge."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
from kit.netns import Netns

from sockscope.collectors import netns as netns_mod
from sockscope.collectors.multi import MultiCollector
from sockscope.collectors.multiwatch import MultiWatch
from sockscope.tui.poller import CollectorSource, Poller

pytestmark = pytest.mark.root


def _key(name: str) -> tuple[int, int]:
    st = os.stat(f"/run/netns/{name}")
    return (st.st_dev, st.st_ino)


def _connect_and_close(name: str, port: int) -> None:
    with netns_mod.entered(name):
        srv = socket.socket()
        srv.bind(("127.0.0.1", port))
        srv.listen()
        c = socket.create_connection(("127.0.0.1", port))
        a, _ = srv.accept()
        c.close()
        a.close()
        srv.close()


def _until(cond, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_a_change_in_any_namespace_is_seen_and_an_idle_set_is_not(netns):
    with Netns() as other:
        keys = {_key(netns.name), _key(other.name)}
        with MultiCollector(only=keys) as multi:
            watch = MultiWatch(multi)
            try:
                multi.snapshot()
                watch.sync()
                assert set(watch._watches) == keys
                watch.mark_refreshed(watch.begin())
                assert not watch.changed()  # nothing happened anywhere
                _connect_and_close(other.name, 7400)  # in the second namespace only
                assert _until(watch.changed)
                token = watch.begin()
                multi.snapshot()
                watch.sync()
                events, lost = watch.take()
                watch.mark_refreshed(token)
                assert not lost and {e.local_port for e in events} >= {7400}
                assert not watch.changed()
                _connect_and_close(netns.name, 7401)  # now in the first one
                assert _until(watch.changed)
            finally:
                watch.close()


def test_a_namespace_that_appears_or_vanishes_is_a_change(netns):
    with MultiCollector() as multi:  # every namespace of the host, as --all-netns
        watch = MultiWatch(multi)
        try:
            multi.snapshot()
            watch.sync()
            watch.mark_refreshed(watch.begin())
            assert not watch.changed()
            extra = Netns()
            extra.__enter__()
            try:
                assert watch.changed()  # a new namespace: nothing it holds was ever dumped
                multi.snapshot()
                watch.sync()
                assert _key(extra.name) in watch._watches
                watch.mark_refreshed(None)  # made after begin(): clean from now
                assert not watch.changed()
            finally:
                extra.delete()
            assert watch.changed()  # gone
            multi.snapshot()
            watch.sync()
            assert all(k in multi.children() for k in watch._watches)
        finally:
            watch.close()


def test_the_poller_skips_idle_ticks_with_all_netns_and_dumps_on_a_change(netns):
    frames = []
    poller = Poller(lambda: CollectorSource(None, "auto", all_netns=True), 0.1, frames.append,
                    lambda e: frames.append(e), cpu_budget=1.0, safety_period=60)
    t = threading.Thread(target=poller.run, daemon=True)
    t.start()
    try:
        assert _until(lambda: poller.collections >= 1 and poller.skipped >= 8, 10)
        dumps = poller.collections
        time.sleep(0.5)
        assert poller.collections == dumps  # idle: no dump at all
        _connect_and_close(netns.name, 7402)
        assert _until(lambda: poller.collections > dumps)
    finally:
        poller.stop()
        t.join(10)
