"""A one-port snapshot (what `check` and `why` take) decodes only that port's sockets,
looks up only their owners and only that port's bind buckets: it must say exactly what a
whole snapshot says about the port, and know the same ports to be in use. Real sockets in
a private namespace, two uids, both protocols and families, TIME-WAIT included."""

from __future__ import annotations

import time

import pytest

from kit.views import socket_view as _view

from sockscope.collectors.multi import MultiCollector
from sockscope.collectors.snapshotter import Collector

pytestmark = pytest.mark.root

PORTS = (7811, 7812, 7813)
FREE = 7819


def _mixed_host(a, b) -> None:
    """Listeners in a reuseport group (two uids would refuse: one uid), wildcard and
    specific addresses, IPv6, connections and TIME-WAITs on 7811; UDP on 7812 and 7813;
    a bound-only TCP socket on 7813."""
    for _ in range(2):
        s = a.socket("tcp", 4, reuseport=True)
        assert a.bind(s, "0.0.0.0", PORTS[0]) is None and a.listen(s) is None
    lst = b.socket("tcp", 6, reuseaddr=True)
    assert b.bind(lst, "::1", PORTS[1]) is None and b.listen(lst) is None
    for _ in range(3):
        c = a.socket("tcp", 4)
        a.connect(c, "127.0.0.1", PORTS[0])
    for _ in range(2):
        c = b.socket("tcp", 6)
        b.connect(c, "::1", PORTS[1])
        child = b.accept(lst)
        b.close(child)  # the server closes first: a TIME-WAIT on PORTS[1]
        b.close(c)
    for h, fam, addr, port in ((a, 4, "127.0.0.1", PORTS[1]), (b, 6, "::", PORTS[2]), (a, 4, "0.0.0.0", PORTS[2])):
        u = h.socket("udp", fam, reuseaddr=True)
        assert h.bind(u, addr, port) is None
    bound = b.socket("tcp", 4, reuseaddr=True)
    assert b.bind(bound, "127.0.0.2", PORTS[2]) is None


def _same(one, full, proto: str, port: int) -> None:
    want = {k: v for k, v in _view(full).items() if k[0] == proto and v[2] == port}
    assert _view(one) == want, (proto, port)
    assert one.busy_ports == frozenset((r.proto, r.local_port) for r in full.sockets if r.proto == proto)
    if proto == "tcp":
        def shape(buckets):
            return sorted((b.l3mdev, b.fastreuse, b.fastreuseport, b.fastuid, b.port) for b in buckets)
        assert shape(one.tcp_buckets.get(port, [])) == shape((full.tcp_buckets or {}).get(port, []))


def test_one_port_snapshots_say_what_a_whole_snapshot_says(netns, holders) -> None:
    a, b = holders(0), holders(1001)
    _mixed_host(a, b)
    time.sleep(0.1)  # the accepted connections settle in the listeners' queues
    with Collector(netns=netns.name) as whole:
        full = whole.snapshot()
    assert any(r.state == "TIME-WAIT" for r in full.sockets)
    for proto in ("tcp", "udp"):
        for port in (*PORTS, FREE):
            with Collector(netns=netns.name) as c:
                one = c.snapshot(protos=(proto,), port=port)
            _same(one, full, proto, port)
            assert all(r.owners for r in one.sockets if r.state in ("LISTEN", "UNCONN")), (proto, port)


def test_a_one_port_snapshot_then_a_whole_one_from_the_same_collector(netns, holders) -> None:
    # A one-port dump keeps no decoder buffers and a partial owner lookup keeps no index:
    # the next whole snapshot of the same Collector must not be missing anything.
    a, b = holders(0), holders(1001)
    _mixed_host(a, b)
    time.sleep(0.1)
    with Collector(netns=netns.name) as c:
        c.snapshot(protos=("tcp",), port=PORTS[0])
        again = c.snapshot()
        with Collector(netns=netns.name) as fresh:
            want = fresh.snapshot()
    assert _view(again) == _view(want)


def test_one_port_across_namespaces(netns, holders) -> None:
    a, b = holders(0), holders(1001)
    _mixed_host(a, b)
    time.sleep(0.1)
    with MultiCollector() as multi:
        full = multi.snapshot()
        one = multi.snapshot(protos=("tcp",), port=PORTS[0])
    ino = next(k for k, v in full.namespaces.items() if v.ref.name == netns.name)
    mine = [r for r in one.sockets if r.netns is not None and r.netns.inode == ino]
    want = [r for r in full.sockets if r.netns is not None and r.netns.inode == ino
            and r.proto == "tcp" and r.local_port == PORTS[0]]
    assert sorted((r.cookie, r.state, r.reuseport, tuple(o.pid for o in r.owners)) for r in mine) == \
        sorted((r.cookie, r.state, r.reuseport, tuple(o.pid for o in r.owners)) for r in want)
    assert one.namespaces[ino].busy_ports == frozenset(
        (r.proto, r.local_port) for r in full.sockets
        if r.netns is not None and r.netns.inode == ino and r.proto == "tcp")
