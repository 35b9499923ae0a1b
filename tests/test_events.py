"""Change-driven refresh: destroy events, socket counters, churn counts, and the bounded
decoder caches, against real sockets in private namespaces (the kernel is the judge)."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest
from kit.child import become, in_child

from sockscope.collectors import netns as netns_mod
from sockscope.collectors.events import ChangeWatch, count_churn, seen_of
from sockscope.collectors.inet_diag import ADDR_CACHE_SLACK
from sockscope.collectors.snapshotter import Collector
from sockscope.tui.poller import CollectorSource, Poller

pytestmark = pytest.mark.root


def _settle(watch: ChangeWatch, want: int, timeout: float = 5.0) -> None:
    """Destroy events are sent from a kernel work queue: wait (bounded) until `want` came."""
    end = time.monotonic() + timeout
    while len(watch.events) < want and time.monotonic() < end:
        watch.drain()
        time.sleep(0.02)


def _burst(port: int, rst: int, graceful: int, udp: int) -> None:
    """Short connections to 127.0.0.1:port in the calling thread's namespace: `rst` closed
    by the client with SO_LINGER 0 (no TIME-WAIT), `graceful` closed normally (the client
    keeps a TIME-WAIT), and `udp` UDP sockets bound and closed."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(512)
    try:
        for i in range(rst + graceful):
            c = socket.create_connection(("127.0.0.1", port))
            a, _ = srv.accept()
            if i < rst:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                c.close()
                a.close()
            else:
                c.close()
                a.recv(1)  # the client's FIN
                a.close()
        for _ in range(udp):
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.bind(("127.0.0.1", 0))
            u.close()
    finally:
        srv.close()


def test_destroy_events_count_a_burst_exactly(netns):
    rst, graceful, udp = 150, 50, 30
    with Collector(netns=netns.name) as col:
        with netns_mod.entered(netns.name):
            watch = ChangeWatch()
        try:
            assert watch.subscribed
            before = seen_of(col.snapshot().sockets)
            watch.take()
            watch.mark_refreshed()
            with netns_mod.entered(netns.name):
                _burst(4000, rst, graceful, udp)
            # Every full socket is freed once: the listener, both ends of every pair (a
            # graceful client's full socket too: a TIME-WAIT mini-socket with its cookie
            # replaces it), the UDP ones.
            expected_events = 1 + 2 * (rst + graceful) + udp
            _settle(watch, expected_events)
            assert watch.changed()
            after = seen_of(col.snapshot().sockets)
            events, lost = watch.take()
        finally:
            watch.close()
    assert not lost
    assert len(events) == expected_events
    churn = count_churn(before, after, events, (32768, 60999), exact=True)
    # The listener and every connection's two ends were created, the UDP sockets too.
    assert churn.created == 1 + 2 * (rst + graceful) + udp
    # Only the clients of graceful closes are still there, in TIME-WAIT.
    assert churn.destroyed == churn.created - graceful
    assert churn.timewait_created == graceful
    # Accepted sockets and the listener have the listening port as their local port.
    assert churn.by_port[("tcp", 4000)] == [1 + rst + graceful, 1 + rst + graceful]
    assert sum(c for (proto, _p), (c, _d) in churn.by_port.items() if proto == "udp") == udp
    # Every client's port is ephemeral.
    assert churn.ephemeral_created >= rst + graceful
    assert churn.exact


def test_counters_alone_notice_a_change_but_miss_short_lives(netns):
    """Fallback without the multicast groups: the socket counters still say something
    changed, and the counts hold only what the dumps saw (flagged not exact)."""
    with Collector(netns=netns.name) as col:
        with netns_mod.entered(netns.name):
            watch = ChangeWatch(subscribe=False)
        try:
            assert not watch.subscribed and watch.limitation
            before = seen_of(col.snapshot().sockets)
            watch.take()
            watch.mark_refreshed()
            assert not watch.changed()
            with netns_mod.entered(netns.name):
                _burst(4001, 20, 0, 0)
            assert watch.changed()
            after = seen_of(col.snapshot().sockets)
            events, _lost = watch.take()
        finally:
            watch.close()
    assert events == []
    churn = count_churn(before, after, events, (32768, 60999), exact=False)
    assert churn.created == 0 and churn.destroyed == 0  # all born and gone in between
    assert not churn.exact


def test_a_process_without_privileges_gets_the_events_too(netns):
    """sock_diag's groups are open to unprivileged receivers (NL_CFG_F_NONROOT_RECV), so
    non-root sockscope counts exactly as well: the kernel is the judge here."""

    def unprivileged():  # in the namespace, every privilege dropped: close one socket
        become(65534)
        watch = ChangeWatch()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        u.close()
        _settle(watch, 1)
        events, _lost = watch.take()
        verdict = f"{watch.subscribed} {len(events)} {events[0].proto if events else None}"
        watch.close()
        return verdict

    assert in_child(netns.path, unprivileged) == "True 1 udp"


def _run_poller(poller: Poller) -> threading.Thread:
    t = threading.Thread(target=poller.run, daemon=True)
    t.start()
    return t


def test_an_unchanged_host_is_not_dumped_and_a_change_is(netns):
    with netns_mod.entered(netns.name):
        keep = socket.socket()
        keep.bind(("127.0.0.1", 4002))
        keep.listen()
    frames = []
    poller = Poller(lambda: CollectorSource(netns.name, "auto"), 0.1, frames.append, lambda e: frames.append(e),
                    cpu_budget=1.0, safety_period=60)
    t = _run_poller(poller)
    try:
        end = time.monotonic() + 10
        while not frames and time.monotonic() < end:
            time.sleep(0.05)
        time.sleep(1.5)  # ~15 ticks with nothing changing
        dumps = poller.collections
        assert poller.skipped >= 8
        assert dumps <= 3  # the first dump, and at most a settling one or two
        assert poller.stats is not None and poller.stats.idle
        with netns_mod.entered(netns.name):
            _burst(4003, 5, 0, 0)
        end = time.monotonic() + 5
        while poller.collections == dumps and time.monotonic() < end:
            time.sleep(0.05)
        assert poller.collections > dumps
    finally:
        poller.stop()
        t.join(10)
        keep.close()
    assert not t.is_alive()


def test_poller_churn_counts_match_a_burst(netns):
    """End to end through the poller: the header's counts add up to the burst."""
    frames = []
    poller = Poller(lambda: CollectorSource(netns.name, "auto"), 0.2, frames.append, lambda e: None,
                    cpu_budget=1.0, safety_period=60)
    t = _run_poller(poller)
    try:
        end = time.monotonic() + 10
        while not frames and time.monotonic() < end:
            time.sleep(0.05)
        with netns_mod.entered(netns.name):
            _burst(4004, 100, 0, 10)
        end = time.monotonic() + 10
        total_created = total_destroyed = 0
        while time.monotonic() < end:
            poller.request(full=True)
            time.sleep(0.4)
            churns = [f.churn for f in frames if getattr(f, "full", False) and f.churn is not None]
            total_created = sum(c.created for c in churns)
            total_destroyed = sum(c.destroyed for c in churns)
            if total_destroyed >= 211:
                break
    finally:
        poller.stop()
        t.join(10)
    # The listener, 100 pairs, 10 UDP sockets: born and gone, each counted once.
    assert (total_created, total_destroyed) == (211, 211)


def test_decoder_caches_return_after_a_churn_of_distinct_peers(netns):
    """Issue 9 item 7: 6,000 distinct addresses seen once must not stay cached, and the
    collector's memory (traced by tracemalloc) returns to where it was."""
    import gc
    import tracemalloc

    n = 6000
    with Collector(netns=netns.name, read_options=False, resolve_owners=False) as col:
        col.snapshot()
        decoder = col._sockdiag.decoder  # type: ignore[union-attr]
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            for _round in range(2):
                socks = []
                with netns_mod.entered(netns.name):
                    for i in range(n):
                        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                        u.bind((f"127.{1 + i // 65025}.{(i // 255) % 255}.{1 + i % 255}", 0))
                        socks.append(u)
                col.snapshot()
                assert len(decoder.addr4) >= n
                grown = tracemalloc.get_traced_memory()[0] - base
                for u in socks:
                    u.close()
                del socks, u
                col.snapshot()
                assert len(decoder.addr4) <= 2 * decoder.reusable + ADDR_CACHE_SLACK
                assert len(decoder.addr4) < n
                assert decoder.reusable == 0
                gc.collect()
                left = tracemalloc.get_traced_memory()[0] - base
                # 6,000 records and addresses took megabytes; what is left is noise.
                assert grown > 1_000_000
                assert left < 100_000, (grown, left)
        finally:
            tracemalloc.stop()


def test_poller_without_destroy_events_still_skips_and_says_at_least(netns):
    """Fallback: a source flagged not to subscribe keeps the counters (idle ticks are
    skipped, a change is noticed) and its churn figures are marked as lower bounds."""
    frames = []
    poller = Poller(lambda: CollectorSource(netns.name, "auto", events=False), 0.1, frames.append, lambda e: None,
                    cpu_budget=1.0, safety_period=60)
    t = _run_poller(poller)
    try:
        end = time.monotonic() + 10
        while not frames and time.monotonic() < end:
            time.sleep(0.05)
        time.sleep(1.0)
        assert poller.skipped >= 5
        assert poller.stats is not None and not poller.stats.events
        with netns_mod.entered(netns.name):
            _burst(4005, 10, 0, 0)
        end = time.monotonic() + 5
        while not any(getattr(f, "churn", None) is not None for f in frames) and time.monotonic() < end:
            time.sleep(0.05)
    finally:
        poller.stop()
        t.join(10)
    churns = [f.churn for f in frames if getattr(f, "churn", None) is not None]
    assert churns and not churns[-1].exact
    assert "not subscribed" in (frames[-1].limitation or "")
