"""The sock_diag collector against the real kernel: sockets the test makes come back
with exactly the fields that were set, and the listing matches `ss -tuanHe`."""

from __future__ import annotations

import os
import re

import pytest
from kit.child import become, in_child

from scenario import build
from sockscope.cli.list_cmd import endpoint
from sockscope.collectors.snapshotter import Collector

pytestmark = pytest.mark.root


@pytest.fixture
def scene(netns, holders):
    root = holders(0)
    other = holders(1001)
    made = build(netns, root, other)
    with Collector(netns=netns.name) as collector:
        snap = collector.snapshot()
    yield netns, made, snap


def by_inode(snap):
    return {r.inode: r for r in snap.sockets if r.inode}


def test_every_made_socket_has_the_fields_set(scene):
    _ns, made, snap = scene
    index = by_inode(snap)
    for name, m in made.items():
        if m.sid < 0:
            continue
        rec = index.get(m.inode)
        assert rec is not None, f"{name}: inode {m.inode} not in the snapshot"
        for field, want in m.expect.items():
            assert getattr(rec, field) == want, f"{name}.{field}: got {getattr(rec, field)!r}, want {want!r}"
        assert rec.cookie == m.cookie, name
        pids = sorted({o.pid for o in rec.owners})
        assert pids == sorted({m.holder.pid, *m.extra_owner_pids}), name
        first = [o for o in rec.owners if o.pid == m.holder.pid][0]
        assert first.fd == m.holder.fileno(m.sid), name
        assert rec.pid == min(pids)


def test_time_wait_is_reported_with_its_timer(scene):
    _ns, made, snap = scene
    tw = [r for r in snap.sockets if r.state == "TIME-WAIT" and r.local_port == 8080
          and r.peer_port == made["time_wait"].expect["peer_port"]]
    assert len(tw) == 1
    assert tw[0].timer is not None and tw[0].timer.kind == "timewait"
    assert 0 < tw[0].timer.expires_ms <= 60_000
    assert tw[0].owners == [] and tw[0].inode == 0
    # Never seen alive by this collector and no fd to read: the BPF iterator reads the
    # kernel's own copy (without BPF: unknown, not guessed; see test_predict_rules).
    assert (tw[0].reuseaddr, tw[0].reuseport) == (True, False)  # inherited from listen4_ra
    assert tw[0].option_source == {"reuseaddr": "kernel", "reuseport": "kernel"}


def test_listener_v6only_comes_from_sock_diag_and_getsockopt_agrees(scene):
    ns, made, snap = scene
    rec = by_inode(snap)[made["listen6_rp_v6only"].inode]
    assert rec.v6only is True and rec.option_source["v6only"] == "diag"
    assert rec.option_source["reuseport"] == "kernel"
    with Collector(netns=ns.name, use_bpf=False) as collector:
        rec = by_inode(collector.snapshot())[made["listen6_rp_v6only"].inode]
    assert rec.v6only is True and rec.option_source["v6only"] == "diag"
    assert rec.option_source["reuseport"] == "read"


def parse_ss(text: str) -> set[tuple[str, str, str, str, int]]:
    rows = set()
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        proto, state, _rq, _sq, local, peer = fields[:6]
        if local.startswith("*:"):
            # ss writes a dual-stack [::] socket (V6ONLY off) as "*".
            local, peer = "[::]" + local[1:], "[::]" + peer[1:]
        m = re.search(r"\bino:(\d+)", line)
        rows.add((proto, state, local, peer, int(m.group(1)) if m else 0))
    return rows


def test_listing_matches_ss(scene):
    ns, _made, snap = scene
    ss_rows = parse_ss(ns.ss("-tuanHe"))
    ours = {
        (r.proto, r.state, endpoint(r.local_addr, r.local_port, r.family, r.device),
         endpoint(r.peer_addr, r.peer_port, r.family, peer=True), r.inode)
        for r in snap.sockets
    }
    # iproute2 before 6.8's ss cannot ask for bound-only TCP sockets (state bit 13).
    bound_only = {row for row in ours if row[0] == "tcp" and row[1] == "UNCONN"}
    assert bound_only, "kernel >= 6.8 dumps bound-only TCP sockets"
    ss_has_bound = any(row[0] == "tcp" and row[1] == "UNCONN" for row in ss_rows)
    if not ss_has_bound:
        ours -= bound_only
    assert ours == ss_rows


def test_states_filter_asks_the_kernel_for_less(scene):
    ns, _made, _snap = scene
    with Collector(netns=ns.name) as collector:
        snap = collector.snapshot(states={"LISTEN"}, protos=("tcp",))
    assert snap.sockets and {r.state for r in snap.sockets} == {"LISTEN"}
    assert {r.proto for r in snap.sockets} == {"tcp"}


def test_warm_refresh_reuses_the_collector_and_agrees(scene):
    ns, _made, first = scene
    with Collector(netns=ns.name) as collector:
        a = collector.snapshot()
        b = collector.snapshot()
    key = lambda s: sorted((r.proto, r.state, r.local_addr, r.local_port, r.peer_addr, r.peer_port, r.inode,
                            r.reuseaddr, r.reuseport) for r in s.sockets)
    assert key(a) == key(b) == key(first)


def test_time_wait_remembers_flags_seen_alive(netns, holders):
    h = holders(0)
    lst = h.socket("tcp", 4, reuseaddr=True, reuseport=True)
    h.bind(lst, "127.0.0.1", 7000)
    h.listen(lst)
    c = h.socket("tcp", 4)
    h.connect(c, "127.0.0.1", 7000)
    a = h.accept(lst)
    with Collector(netns=netns.name, use_bpf=False) as collector:  # the pidfd path's memory
        alive = collector.snapshot()
        server = [r for r in alive.sockets if r.state == "ESTAB" and r.local_port == 7000][0]
        assert (server.reuseaddr, server.reuseport) == (True, True)  # inherited from the listener
        h.close(a)  # the server side closes first and ends in TIME-WAIT
        h.close(c)
        later = collector.snapshot()
    tw = [r for r in later.sockets if r.cookie == server.cookie]
    assert len(tw) == 1 and tw[0].state == "TIME-WAIT"
    assert (tw[0].reuseaddr, tw[0].reuseport) == (True, True)
    assert tw[0].option_source["reuseaddr"] == "remembered"


def test_reading_options_leaves_no_duplicate_open(netns, holders):
    h = holders(1001)
    s = h.socket("tcp", 4, reuseaddr=True)
    h.bind(s, "127.0.0.1", 7100)
    h.listen(s)
    before = len(os.listdir("/proc/self/fd"))
    with Collector(netns=netns.name) as collector:
        collector.snapshot()
        collector.snapshot()
    assert len(os.listdir("/proc/self/fd")) == before
    h.close(s)
    # The port is really free: no duplicate kept the socket alive.
    fresh = h.socket("tcp", 4)
    assert h.bind(fresh, "127.0.0.1", 7100) is None


def test_procfs_fallback_finds_the_same_sockets(scene):
    ns, _made, snap = scene
    with Collector(netns=ns.name, method="procfs") as collector:
        fallback = collector.snapshot()
    assert fallback.collector == "procfs"
    assert "unknown" in (fallback.limitation or "")
    key = lambda r: (r.proto, r.family, r.state, r.local_addr, r.local_port, r.peer_addr, r.peer_port, r.inode, r.uid)
    # /proc/net lists no bound-only TCP sockets.
    want = {key(r) for r in snap.sockets if not (r.proto == "tcp" and r.state == "UNCONN")}
    assert {key(r) for r in fallback.sockets} == want
    for r in fallback.sockets:
        assert r.reuseaddr is None and r.reuseport is None and r.cookie == 0
        if r.inode:
            assert r.owners, "owners are still resolved in the fallback"


def test_without_root_options_of_others_are_unknown_and_said_once(netns, holders):
    h = holders(0)
    s = h.socket("tcp", 4, reuseaddr=True)
    h.bind(s, "127.0.0.1", 7200)
    h.listen(s)

    def as_another_user():
        become(1002)
        with Collector() as collector:
            snap = collector.snapshot()
        rec = [x for x in snap.sockets if x.local_port == 7200][0]
        return rec.reuseaddr, rec.reuseport, rec.owners, snap.limitation

    ra, rp, owners, limitation = in_child(netns.path, as_another_user)
    assert (ra, rp) == (None, None)
    assert owners == []
    assert limitation and limitation.startswith("not root")
    assert "\n" not in limitation


def test_warm_refresh_follows_a_reused_fd_number(netns, holders):
    """A process closes a socket and opens another under the same fd number: a warm
    refresh right after must still find the new socket's owner (and so its options)."""
    h = holders(1001)
    first = h.socket("udp", 4, reuseaddr=True)
    assert h.bind(first, "127.0.0.1", 5301) is None
    fd = h.fileno(first)
    with Collector(netns=netns.name) as collector:
        collector.snapshot()
        h.close(first)
        second = h.socket("udp", 4, reuseport=True)
        assert h.fileno(second) == fd
        assert h.bind(second, "127.0.0.1", 5302) is None
        snap = collector.snapshot()
    rec = next(r for r in snap.sockets if r.local_port == 5302)
    assert [(o.pid, o.fd) for o in rec.owners] == [(h.call("ping"), fd)]
    assert (rec.reuseaddr, rec.reuseport) == (False, True)
