"""BPF socket iterators against the kernel: every flag of every socket made here comes back
with source "kernel" and the value set (or inherited), the cookie sets equal ss's, and the
bind buckets match what the kernel source says they hold (net/ipv4/inet_connection_sock.c:
inet_csk_update_fastreuse)."""

from __future__ import annotations

import os
import re
import socket
import time

import pytest

from sockscope.collectors.bpf.iterators import SocketIterators
from sockscope.collectors.snapshotter import Collector
from kit.netns import setns

pytestmark = pytest.mark.root

IPPROTO_TCP = 6
TCP_DEFER_ACCEPT = 9


def ss_cookies(ns, flag: str) -> set[int]:
    return {int(m.group(1), 16) for m in re.finditer(r"\bsk:([0-9a-f]+)", ns.ss(flag))}


def wait_for(pred, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.02)
    raise AssertionError("condition not reached")


@pytest.fixture
def scene(netns, holders):
    """A namespace with one of each kind of socket; returns (ns, expectations, snapshot),
    expectations = cookie -> (reuseaddr, reuseport, v6only or None, device or None, what)."""
    ns = netns
    ns.add_dummy("vx0", "10.9.0.1/24")
    root, other = holders(0), holders(1001)
    want: dict[int, tuple] = {}

    def note(h, sid, ra, rp, v6, dev, what):
        want[h.cookie(sid)] = (ra, rp, v6, dev, what)

    # a plain listener with SO_REUSEADDR
    l1 = root.socket("tcp", 4, reuseaddr=True)
    root.bind(l1, "127.0.0.1", 7001)
    root.listen(l1)
    note(root, l1, True, False, None, None, "RA listener")
    # a reuseport group of another uid
    group = []
    for _ in range(2):
        s = other.socket("tcp", 4, reuseport=True)
        assert other.bind(s, "0.0.0.0", 7002) is None
        other.listen(s)
        note(other, s, False, True, None, None, "RP group member")
        group.append(s)
    # dual-stack and V6ONLY listeners
    ds = root.socket("tcp", 6, v6only=False, reuseaddr=True)
    root.bind(ds, "::", 7003)
    root.listen(ds)
    note(root, ds, True, False, False, None, "dual-stack listener")
    v6 = root.socket("tcp", 6, v6only=True, reuseport=True)
    root.bind(v6, "::", 7004)
    root.listen(v6)
    note(root, v6, False, True, True, None, "V6ONLY listener")
    # a listener bound to a device
    dv = root.socket("tcp", 4, device="vx0")
    root.bind(dv, "0.0.0.0", 7005)
    root.listen(dv)
    note(root, dv, False, False, None, "vx0", "device-bound listener")
    # accepted sockets inherit the listener's flags; the client has its own
    c1 = other.socket("tcp", 4, reuseport=True)
    other.connect(c1, "127.0.0.1", 7001)
    a1 = root.accept(l1)
    note(other, c1, False, True, None, None, "client")
    note(root, a1, True, False, None, None, "accepted child of the RA listener")
    c6 = root.socket("tcp", 6, v6only=False)
    root.connect(c6, "::ffff:127.0.0.1", 7003)
    a6 = root.accept(ds)
    note(root, c6, False, False, False, None, "v6 client")
    note(root, a6, True, False, False, None, "accepted child of the dual-stack listener")
    # TIME-WAIT on the server side (it closes first) and on the client side
    c2 = other.socket("tcp", 4)
    other.connect(c2, "127.0.0.1", 7001)
    a2 = root.accept(l1)
    note(root, a2, True, False, None, None, "server-side TIME-WAIT (inherited RA)")
    root.close(a2)
    other.close(c2)
    c3 = other.socket("tcp", 4, reuseaddr=True, reuseport=True)
    other.connect(c3, "127.0.0.1", 7001)
    a3 = root.accept(l1)
    note(other, c3, True, True, None, None, "client-side TIME-WAIT")
    other.close(c3)
    root.close(a3)
    # an orphaned FIN-WAIT-2: the client closes, the server never does
    l7 = other.socket("tcp", 4, reuseaddr=True)
    other.bind(l7, "127.0.0.1", 7007)
    other.listen(l7)
    note(other, l7, True, False, None, None, "listener of the FIN-WAIT-2 peer")
    c4 = root.socket("tcp", 4, reuseaddr=True, reuseport=True)
    root.connect(c4, "127.0.0.1", 7007)
    a4 = other.accept(l7)
    note(root, c4, True, True, None, None, "orphaned FIN-WAIT-2")
    note(other, a4, True, False, None, None, "its peer (CLOSE-WAIT)")
    root.close(c4)
    # a request socket: TCP_DEFER_ACCEPT keeps a bare handshake in SYN-RECV
    lq = root.socket("tcp", 4, reuseaddr=True, reuseport=True)
    root.call("setsockopt", lq, IPPROTO_TCP, TCP_DEFER_ACCEPT, 30)
    root.bind(lq, "127.0.0.1", 7006)
    root.listen(lq)
    note(root, lq, True, True, None, None, "deferring listener")
    cq = other.socket("tcp", 4)
    other.connect(cq, "127.0.0.1", 7006)
    note(other, cq, False, False, None, None, "client of the request socket")
    # UDP: an RA chain on one address, a reuseport pair of another uid, a V6ONLY socket
    for _ in range(3):
        u = root.socket("udp", 4, reuseaddr=True)
        root.bind(u, "127.0.0.1", 5353)
        note(root, u, True, False, None, None, "UDP RA")
    for _ in range(2):
        u = other.socket("udp", 6, reuseport=True, v6only=True)
        other.bind(u, "::", 5354)
        note(other, u, False, True, True, None, "UDP v6 RP")
    ud = root.socket("udp", 4, device="vx0")
    root.bind(ud, "0.0.0.0", 5355)
    note(root, ud, False, False, None, "vx0", "UDP device-bound")
    wait_for(lambda: "FIN-WAIT-2" in ns.ss("-tan") and ns.ss("-tan").count("TIME-WAIT") >= 2)
    wait_for(lambda: "SYN-RECV" in ns.ss("-tan"))
    with Collector(netns=ns.name) as collector:
        snap = collector.snapshot()
    return ns, want, snap, (root, other, group, l1, cq)


def test_every_flag_comes_from_the_kernel(scene):
    _ns, want, snap, _ = scene
    by_cookie = {r.cookie: r for r in snap.sockets}
    for cookie, (ra, rp, v6, dev, what) in want.items():
        rec = by_cookie.get(cookie)
        assert rec is not None, what
        assert (rec.reuseaddr, rec.reuseport) == (ra, rp), (what, rec.state)
        src = rec.option_source or {}
        assert src.get("reuseaddr") == src.get("reuseport") == "kernel", (what, rec.state, src)
        if rec.family == 6:
            assert rec.v6only is v6 and src.get("v6only") == "kernel", what
        assert rec.device == dev, what
    states = {r.state for r in snap.sockets if r.cookie in want}
    assert {"LISTEN", "ESTAB", "TIME-WAIT", "FIN-WAIT-2", "CLOSE-WAIT", "UNCONN"} <= states
    # the server-side request socket (not a socket we hold, so not in `want`) takes the
    # flags of its listener
    req = [r for r in snap.sockets if r.state == "SYN-RECV" and r.local_port == 7006]
    assert len(req) == 1 and (req[0].reuseaddr, req[0].reuseport) == (True, True)
    assert req[0].option_source["reuseaddr"] == "kernel"
    assert "BPF" not in (snap.limitation or "")


def test_time_wait_and_orphans_have_real_flags(scene):
    _ns, want, snap, _ = scene
    tw = [r for r in snap.sockets if r.timewait]
    assert len(tw) >= 3
    for r in tw:
        assert r.option_source["reuseaddr"] == "kernel"
        assert (r.reuseaddr, r.reuseport) == want[r.cookie][:2]


def test_cookie_sets_equal_ss(scene):
    ns, _want, snap, _ = scene
    its = SocketIterators.open()
    try:
        fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        setns(ns.path)
        try:
            tcp, udp = set(its.read("tcp")), set(its.read("udp"))
        finally:
            os.setns(fd, 0) if hasattr(os, "setns") else setns(f"/proc/self/fd/{fd}")
            os.close(fd)
    finally:
        its.close()
    # ss lists TCP bound-only sockets only when asked; the iterator never does.
    assert tcp == ss_cookies(ns, "-tanHe")
    assert udp == ss_cookies(ns, "-uanHe")


def test_bind_buckets(scene):
    """Reasoned from inet_csk_update_fastreuse (6.18): a port's first socket sets the
    bucket; a reuseport socket makes fastreuseport > 0 and records its uid and address; a
    listener is never fastreuse (its state is LISTEN when listen() re-runs get_port);
    a port held only by non-reuseport sockets has fastreuseport 0."""
    _ns, _want, snap, _ = scene
    buckets = snap.tcp_buckets
    assert buckets is not None
    (rp,) = buckets[7002]
    assert rp.fastreuseport > 0
    assert (rp.fastuid, rp.fast_rcv_saddr, rp.fast_sk_family) == (1001, "0.0.0.0", 4)
    assert rp.fastreuse == 0 and rp.l3mdev == 0
    (ra,) = buckets[7001]
    assert (ra.fastreuse, ra.fastreuseport) == (0, 0)
    assert ra.fastuid is None and ra.fast_rcv_saddr is None  # not meaningful: not reported
    (v6,) = buckets[7004]
    assert v6.fastreuseport > 0 and v6.fast_sk_family == 6 and v6.fast_ipv6_only is True
    assert v6.fast_v6_rcv_saddr == "::" and v6.fastuid == 0
    # every TCP socket the iterator walks, except request sockets, hangs on its port's bucket
    for r in snap.sockets:
        if r.proto == "tcp" and r.option_source and r.state != "SYN-RECV":
            assert r.bind_bucket is not None and r.bind_bucket.port == r.local_port, r.state
            assert r.bind_bucket in buckets[r.local_port]
            assert r.bind2_fastreuseport is not None


def test_udp_chain_order(scene):
    """On 6.18 a UDP v4 socket goes to the head of its hash2 chain: the iterator shows the
    last one bound first; IPv6 reuseport sockets are appended at the tail."""
    _ns, _want, snap, (root, other, *_rest) = scene
    ra = [r for r in snap.sockets if r.proto == "udp" and r.local_port == 5353]
    assert len(ra) == 3 and len({r.udp_bucket for r in ra}) == 1
    by_pos = sorted(ra, key=lambda r: r.udp_chain_pos)
    assert [r.udp_chain_pos for r in by_pos] == [0, 1, 2]
    # inodes grow with creation order: last bound first
    assert [r.inode for r in by_pos] == sorted((r.inode for r in ra), reverse=True)
    v6 = sorted((r for r in snap.sockets if r.proto == "udp" and r.local_port == 5354), key=lambda r: r.udp_chain_pos)
    assert [r.inode for r in v6] == sorted(r.inode for r in v6)


def test_pidfd_only_for_bound_only_tcp(netns, holders):
    h = holders(1001)
    b = h.socket("tcp", 4, reuseaddr=True)
    h.bind(b, "127.0.0.1", 7010)  # bound, never listens: not in the iterator
    lst = h.socket("tcp", 4, reuseport=True)
    h.bind(lst, "127.0.0.1", 7011)
    h.listen(lst)
    with Collector(netns=netns.name) as collector:
        snap = collector.snapshot()
        reads = collector._options.read_count if collector._options else None
    recs = {r.local_port: r for r in snap.sockets}
    assert recs[7010].option_source["reuseaddr"] == "read" and recs[7010].reuseaddr is True
    assert recs[7011].option_source["reuseaddr"] == "kernel" and recs[7011].reuseport is True
    assert reads == 1  # one duplicate descriptor, for the bound-only socket only
