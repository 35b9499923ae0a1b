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
from kit import Holder, Netns
from kit.child import become, in_child
from kit.netns import setns

from sockscope.collectors.bpf.iterators import SocketIterators
from sockscope.collectors.snapshotter import Collector
from sockscope.model import BindBucket  # noqa: F401  (eval of a child's repr)

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


@pytest.fixture(scope="module")
def scene():
    """A namespace with one of each kind of socket (built once for the module); returns
    (ns, expectations, snapshot, handles), expectations = cookie -> (reuseaddr, reuseport,
    v6only or None, device or None, what)."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    with Netns() as ns, Holder(ns, uid=0) as root, Holder(ns, uid=1001) as other:
        yield _build_scene(ns, root, other)


def _build_scene(ns, root, other):
    ns.add_dummy("vx0", "10.9.0.1/24")
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
            assert rec.v6only is v6 and src.get("v6only") in ("kernel", "diag"), what  # diag: LISTEN only
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
            tcp, udp = set(its.read("tcp").rows), set(its.read("udp").rows)
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


def _in_child(netns, fn):
    """Run fn() in a forked child inside `netns`; return its repr()-ed result."""
    return in_child(netns.path, fn)


def _flags_of(port: int, drop_to: int | None = None, seccomp: bool = False, use_bpf: bool = True):
    def run():
        if seccomp:
            from kit.seccomp import refuse_bpf

            from sockscope.collectors.bpf.syscall import syscall_number
            refuse_bpf(syscall_number())
        if drop_to is not None:
            become(drop_to)
        with Collector(use_bpf=use_bpf) as collector:
            snaps = [collector.snapshot() for _ in range(3)]
            loads = collector._kernel._loader._tried if collector._kernel else None
        rec = [x for x in snaps[-1].sockets if x.local_port == port][0]
        return (rec.reuseaddr, rec.reuseport, dict(rec.option_source or {}), [s.limitation for s in snaps],
                snaps[-1].tcp_buckets, loads)
    return run


def test_bpf_refused_by_seccomp_falls_back_to_pidfd(netns, holders):
    h = holders(1001)
    s = h.socket("tcp", 4, reuseaddr=True)
    h.bind(s, "127.0.0.1", 7300)
    h.listen(s)
    ra, rp, src, limitations, buckets, _ = _in_child(netns, _flags_of(7300, seccomp=True))
    assert (ra, rp) == (True, False)  # today's answer, read with pidfd_getfd
    assert src["reuseaddr"] == "read"
    assert buckets is None
    for lim in limitations:  # the same single line every refresh
        assert lim == limitations[0]
        assert "bpf() refused (EPERM" in lim and "\n" not in lim


def test_not_root_says_why_and_keeps_todays_answers(netns, holders):
    h = holders(0)
    s = h.socket("tcp", 4, reuseaddr=True)
    h.bind(s, "127.0.0.1", 7301)
    h.listen(s)
    mine = holders(1002)
    m = mine.socket("tcp", 4, reuseport=True)
    mine.bind(m, "127.0.0.1", 7302)
    mine.listen(m)
    ra, rp, src, limitations, buckets, _ = _in_child(netns, _flags_of(7301, drop_to=1002))
    assert (ra, rp) == (None, None) and buckets is None
    assert "not root and no CAP_BPF+CAP_PERFMON" in limitations[-1]
    for port in (7301, 7302):
        got = _in_child(netns, _flags_of(port, drop_to=1002))
        today = _in_child(netns, _flags_of(port, drop_to=1002, use_bpf=False))
        assert got[:3] == today[:3]
        # today's notes (counts of host processes vary between runs), plus the one line on BPF
        notes = lambda text: {re.sub(r"\d+", "N", n) for n in text.split("; ")}
        assert notes(today[3][-1]) <= notes(got[3][-1])
        assert len(got[3][-1].split("; ")) == len(today[3][-1].split("; ")) + 1


def _private_mounts() -> None:
    """A mount namespace of our own, so the bpffs we mount and pin in never reaches the host."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    CLONE_NEWNS, MS_REC, MS_PRIVATE = 0x00020000, 0x4000, 1 << 18
    assert libc.unshare(CLONE_NEWNS) == 0, os.strerror(ctypes.get_errno())
    assert libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) == 0, os.strerror(ctypes.get_errno())


def test_pinned_iterators_let_another_user_read_flags(netns, holders):
    h = holders(0)
    s = h.socket("tcp", 4, reuseaddr=True, reuseport=True)
    h.bind(s, "127.0.0.1", 7400)
    h.listen(s)
    u = h.socket("udp", 6, reuseport=True, v6only=True)
    h.bind(u, "::1", 7401)

    def run():
        from sockscope.cli import main
        from sockscope.collectors.bpf.iterators import PIN_DIR

        _private_mounts()
        assert main(["bpf", "pin"]) == 0
        modes = sorted(oct(os.stat(os.path.join(PIN_DIR, n)).st_mode & 0o777) for n in os.listdir(PIN_DIR))
        become(1002)
        got = _flags_of(7400)() + _flags_of(7401)()
        return modes, got

    modes, got = _in_child(netns, run)
    assert modes == ["0o444", "0o444"]
    ra, rp, src, lims, buckets, _ = got[:6]
    assert (ra, rp, src["reuseaddr"]) == (True, True, "kernel")  # root's socket, read by uid 1002
    assert "CAP_BPF" not in lims[-1]
    assert buckets[7400][0].fastreuseport > 0 and buckets[7400][0].fastuid == 0
    ra, rp, src = got[6:9]
    assert (ra, rp, src["reuseport"]) == (False, True, "kernel")


def test_unpin_removes_the_pins(netns):
    def run():
        from sockscope.cli import main
        from sockscope.collectors.bpf.iterators import PIN_DIR

        _private_mounts()
        assert main(["bpf", "pin"]) == 0
        before = sorted(os.listdir(PIN_DIR))
        assert main(["bpf", "unpin"]) == 0
        return before, os.path.exists(PIN_DIR)

    assert _in_child(netns, run) == (["tcp_v1", "udp_v1"], False)


def test_owners_from_the_task_file_iterator_equal_the_proc_scan(netns, holders):
    import threading

    a, b = holders(0), holders(1001)
    for h, port in ((a, 7500), (b, 7501)):
        s = h.socket("tcp", 4)
        h.bind(s, "127.0.0.1", port)
        h.listen(s)
        c = h.socket("tcp", 4)
        h.connect(c, "127.0.0.1", port)
        h.accept(s)
        u = h.socket("udp", 6)
        h.bind(u, "::1", port)
    shared = a.socket("udp", 4)
    a.bind(shared, "127.0.0.1", 7502)
    sibling = a.call("fork_share")  # a second process holding every socket of `a`
    # a process whose sockets were opened by a second thread
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            setns(netns.path)
            keep = []

            def opener() -> None:
                for port in (7503, 7504):
                    s = socket.socket()
                    s.bind(("127.0.0.1", port))
                    s.listen()
                    keep.append(s)

            t = threading.Thread(target=opener)
            t.start()
            t.join()
            idle = threading.Thread(target=time.sleep, args=(30,), daemon=True)
            idle.start()  # a live thread too
            os.write(w, b"ok")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and os.getppid() != 1:
                time.sleep(0.05)
        finally:
            os._exit(0)
    os.close(w)
    try:
        assert os.read(r, 2) == b"ok"
        owners = {}
        for use_bpf in (True, False):
            with Collector(netns=netns.name, use_bpf=use_bpf) as collector:
                snap = collector.snapshot()
                if use_bpf:
                    assert collector._task_files is not None and collector._task_files.unavailable is None
            owners[use_bpf] = {r.inode: sorted((o.pid, o.fd, o.process, o.user) for o in r.owners)
                               for r in snap.sockets if r.inode}
        assert owners[True] == owners[False]
        pids = {o[0] for os_ in owners[True].values() for o in os_}
        assert {a.pid, b.pid, sibling, pid} <= pids
        assert len(owners[True]) >= 9
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(r)


def test_empty_namespace(netns):
    with Collector(netns=netns.name) as collector:
        snap = collector.snapshot()
        again = collector.snapshot(protos=("tcp",))
    assert snap.sockets == [] and snap.tcp_buckets == {} and again.tcp_buckets == {}
    assert "BPF" not in (snap.limitation or "")


def test_warm_refresh_reuses_the_read_until_something_changes(netns, holders):
    h = holders(1001)
    s = h.socket("tcp", 4, reuseaddr=True)
    h.bind(s, "127.0.0.1", 7600)
    h.listen(s)
    with Collector(netns=netns.name) as collector:
        first = collector.snapshot()
        second = collector.snapshot()
        assert collector._kernel.reused == 1
        u = h.socket("udp", 4, reuseport=True)
        h.bind(u, "127.0.0.1", 7601)
        third = collector.snapshot()  # a new socket: the iterators are read again
        assert collector._kernel.reused == 1
    for snap in (first, second, third):
        rec = next(r for r in snap.sockets if r.local_port == 7600)
        assert (rec.reuseaddr, rec.reuseport, rec.option_source["reuseaddr"]) == (True, False, "kernel")
        assert rec.bind_bucket is not None and snap.tcp_buckets[7600] == [rec.bind_bucket]
    new = next(r for r in third.sockets if r.local_port == 7601)
    assert (new.reuseaddr, new.reuseport, new.option_source["reuseport"]) == (False, True, "kernel")
    assert new.udp_chain_pos == 0


def test_port_filtered_snapshots_in_one_collector(netns, holders):
    h = holders(0)
    for port, ra in ((7700, True), (7701, False)):
        s = h.socket("tcp", 4, reuseaddr=ra)
        h.bind(s, "127.0.0.1", port)
        h.listen(s)
    with Collector(netns=netns.name) as collector:
        for port, ra in ((7700, True), (7701, False), (7700, True), (None, None), (7701, False)):
            snap = collector.snapshot(port=port)
            for rec in snap.sockets:
                assert rec.option_source["reuseaddr"] == "kernel"
                assert rec.reuseaddr is (rec.local_port == 7700)
            if port is not None:
                assert set(snap.tcp_buckets) == {port}


def test_root_without_bpf_capabilities_falls_back(netns, holders):
    import json
    import subprocess
    import sys

    h = holders(1001)
    s = h.socket("tcp", 4, reuseaddr=True)
    h.bind(s, "127.0.0.1", 7800)
    h.listen(s)
    out = subprocess.run(
        ["ip", "netns", "exec", netns.name, "setpriv", "--bounding-set", "-bpf,-perfmon,-sys_admin",
         sys.executable, "-m", "sockscope", "list", "--json", "-p", "7800"],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    (row,) = json.loads(out.stdout)
    assert (row["reuseaddr"], row["option_source"]["reuseaddr"]) == (True, "read")  # pidfd_getfd, as today
    assert "root without CAP_BPF+CAP_PERFMON (capabilities dropped)" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_listening_refreshes_reuse_the_read(netns, holders):
    """The TUI refreshes listeners every second: that must not walk the iterators each time."""
    h = holders(0)
    s = h.socket("tcp", 4, reuseport=True)
    h.bind(s, "127.0.0.1", 7900)
    h.listen(s)
    c = h.socket("tcp", 4)
    h.connect(c, "127.0.0.1", 7900)
    h.accept(s)
    listening = {"LISTEN", "UNCONN"}
    with Collector(netns=netns.name) as collector:
        collector.snapshot()
        part = collector.snapshot(states=listening)
        assert collector._kernel.reused == 1
        s2 = h.socket("tcp", 4, reuseaddr=True)
        h.bind(s2, "127.0.0.1", 7901)
        h.listen(s2)
        part2 = collector.snapshot(states=listening)  # a new listener: read again
        assert collector._kernel.reused == 1
        full = collector.snapshot()  # nothing new since: reused
        assert collector._kernel.reused == 2
    for snap in (part, part2, full):
        rec = next(r for r in snap.sockets if r.local_port == 7900 and r.state == "LISTEN")
        assert (rec.reuseport, rec.option_source["reuseport"]) == (True, "kernel")
    new = next(r for r in part2.sockets if r.local_port == 7901)
    assert (new.reuseaddr, new.option_source["reuseaddr"]) == (True, "kernel")


def test_task_file_owners_are_kept_across_revalidations_while_nothing_changed(netns, holders):
    """The owner details of a task-file read are re-validated every META_INTERVAL like the
    /proc scan's: unchanged processes keep their Owner records (and the decoder's reused
    socket records keep theirs), a process that changed gets new ones."""
    from sockscope.collectors import owners as owners_mod

    h = holders(0)
    for port in (7800, 7801):
        s = h.socket("tcp", 4)
        h.bind(s, "127.0.0.1", port)
        h.listen(s)
    with Collector(netns=netns.name) as collector:
        first = collector.snapshot()
        assert collector._task_files is not None and collector._task_files.unavailable is None
        collector._owners._meta_at = 0.0  # due now
        revalidated = collector._owners._meta_at
        second = collector.snapshot()
        assert collector._owners._meta_at != revalidated  # it ran
        before = {r.local_port: r.owners for r in first.sockets if r.local_port in (7800, 7801)}
        after = {r.local_port: r.owners for r in second.sockets if r.local_port in (7800, 7801)}
        assert len(before) == 2 and all(before[p] and after[p] is before[p] for p in before)
        # A changed process (as after an exec: another name) gets new owner records.
        info = collector._owners._owned_info[h.pid]
        collector._owners._owned_info[h.pid] = owners_mod.ProcessInfo(
            info.start, "before-exec", info.user, info.uid, info.cmdline, info.exe, info.raw_cmdline)
        collector._owners._meta_at = 0.0
        third = collector.snapshot()
        again = {r.local_port: r.owners for r in third.sockets if r.local_port in (7800, 7801)}
        assert all(again[p] is not before[p] and again[p][0].process == before[p][0].process for p in before)
