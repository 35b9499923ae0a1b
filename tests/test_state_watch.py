"""TCP state changes counted by BPF (collectors/bpf/state_watch.py) and the ChangeWatch
that uses them, against real sockets in private namespaces: the kernel is the judge of
what changed, what is counted where, and that nothing stays attached after close."""

from __future__ import annotations

import ctypes
import errno
import os
import re
import socket
import struct
import threading
import time

import pytest
from kit import Netns
from kit.child import become, in_child
from kit.netns import run

from sockscope.collectors import netns as netns_mod
from sockscope.collectors.bpf import state_watch
from sockscope.collectors.bpf.syscall import Bpf, BpfError
from sockscope.collectors.events import STATES_UNSEEN, ChangeWatch
from sockscope.tui.poller import CollectorSource, Poller, churn_text

pytestmark = pytest.mark.root


@pytest.fixture(autouse=True)
def _no_program_left():
    """Every test starts and ends with the process's shared program unloaded."""
    assert state_watch._program is None and not state_watch._users
    yield
    assert state_watch._program is None and not state_watch._users, "a watch was not closed"


def _watch(ns: Netns, **kw) -> ChangeWatch:
    with netns_mod.entered(ns.name):
        return ChangeWatch(**kw)


def _link_info(fd: int) -> dict[str, str]:
    with open(f"/proc/self/fdinfo/{fd}") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def _our_state_links() -> list[int]:
    """Descriptors of this process that are links of the inet_sock_set_state tracepoint."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") != "anon_inode:bpf_link":
                continue
            if _link_info(int(name)).get("tp_name") == state_watch.TRACEPOINT:
                found.append(int(name))
        except OSError:
            continue  # the listdir's own descriptor
    return found


def _burst(port: int, graceful: int, rst: int) -> None:
    """Short connections to 127.0.0.1:port in the calling thread's namespace, each step
    waited for: `graceful` closed by the client first then by the server, `rst` reset by
    the client (SO_LINGER 0)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", port))
    srv.listen(512)
    try:
        for i in range(graceful + rst):
            c = socket.create_connection(("127.0.0.1", port))
            a, _ = srv.accept()
            if i < rst:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
            try:
                a.recv(1)  # the client's FIN (or its RST)
            except ConnectionResetError:
                pass
            a.close()
    finally:
        srv.close()


def _settle(watch: ChangeWatch, want: int, timeout: float = 5.0) -> int:
    """The last state changes run from softirq or timers: wait (bounded) for `want`."""
    assert watch.states is not None
    end = time.monotonic() + timeout
    mark = watch._state_mark
    assert mark is not None
    while True:
        got = watch.states.read()[0] - mark[0]
        if got >= want or time.monotonic() > end:
            return got
        time.sleep(0.02)


@pytest.fixture
def pair():
    """Two namespaces joined by a veth pair: 10.77.0.1 in `a`, 10.77.0.2 in `b`."""
    with Netns() as a, Netns() as b:
        run("ip", "link", "add", "swa", "netns", a.name, "type", "veth", "peer", "name", "swb", "netns", b.name)
        a.ip("addr", "add", "10.77.0.1/24", "dev", "swa")
        b.ip("addr", "add", "10.77.0.2/24", "dev", "swb")
        a.ip("link", "set", "swa", "up")
        b.ip("link", "set", "swb", "up")
        yield a, b


def test_a_peer_close_moves_no_counter_yet_the_watch_sees_it(pair):
    """ESTAB -> CLOSE-WAIT of a client whose server lives in another namespace: the
    namespace's counters stay put, so a watch without BPF sees nothing; with BPF the
    next tick knows (and says which state)."""
    a, b = pair
    with netns_mod.entered(b.name):
        srv = socket.socket()
        srv.bind(("10.77.0.2", 4100))
        srv.listen()
    with netns_mod.entered(a.name):
        cli = socket.create_connection(("10.77.0.2", 4100), timeout=5)
    peer, _ = srv.accept()
    cli.sendall(b"x")  # settle the connection (the last ACK) before the watches start
    assert peer.recv(1) == b"x"
    time.sleep(0.2)
    with_bpf = _watch(a)
    without = _watch(a, states=False)
    try:
        assert with_bpf.watching_states and with_bpf.limitation is None
        assert not without.watching_states
        assert "socket state changes not watched" in (without.limitation or "")
        for w in (with_bpf, without):
            w.take()
            w.take_state_changes()
            w.mark_refreshed()
            assert not w.changed()
        counters = with_bpf.counters.read()
        peer.close()  # the peer's FIN: our client goes ESTAB -> CLOSE-WAIT
        assert cli.recv(1) == b""  # the FIN was processed: the state is set
        assert _settle(with_bpf, 1) == 1
        assert with_bpf.counters.read() == counters  # sockstat, sockstat6, snmp: unchanged
        assert not without.changed()  # counters and destroy events alone miss it
        assert with_bpf.changed()
        changes = with_bpf.take_state_changes()
        assert changes is not None and (changes.total, changes.by_state) == (1, {"CLOSE-WAIT": 1})
        assert without.take_state_changes() is None
    finally:
        with_bpf.close()
        without.close()
        cli.close()
        srv.close()


def test_counts_per_new_state_of_a_burst_are_exact(netns):
    graceful, rst = 60, 40
    watch = _watch(netns)
    try:
        watch.take_state_changes()
        with netns_mod.entered(netns.name):
            _burst(4200, graceful, rst)
        n = graceful + rst
        # Per connection: client CLOSE -> SYN-SENT -> ESTAB; the server's child SYN-RECV ->
        # ESTAB. A graceful close: client FIN-WAIT-1 -> FIN-WAIT-2 -> CLOSE (its TIME-WAIT
        # is a mini-socket: no set_state), server CLOSE-WAIT -> LAST-ACK -> CLOSE. A reset:
        # both ends straight to CLOSE. The listener: LISTEN, then CLOSE.
        want = {
            "SYN-SENT": n, "SYN-RECV": n, "ESTAB": 2 * n,
            "FIN-WAIT-1": graceful, "FIN-WAIT-2": graceful, "CLOSE-WAIT": graceful, "LAST-ACK": graceful,
            "UNCONN": 2 * n + 1, "LISTEN": 1,
        }
        _settle(watch, sum(want.values()))
        time.sleep(0.2)  # nothing more may come
        changes = watch.take_state_changes()
    finally:
        watch.close()
    assert changes is not None
    assert changes.by_state == want
    assert changes.total == sum(want.values())


def test_another_namespace_is_not_counted_and_one_program_serves_both(netns):
    with Netns() as other:
        mine = _watch(netns)
        theirs = _watch(other)
        try:
            assert mine.states is not None and theirs.states is not None
            # One program and one link for the process, whatever the number of watches.
            assert mine.states.link_fd == theirs.states.link_fd
            assert _our_state_links() == [mine.states.link_fd]
            for w in (mine, theirs):
                w.take_state_changes()
                w.mark_refreshed()
            with netns_mod.entered(other.name):
                _burst(4300, 10, 0)
            _settle(theirs, 10 * 10 + 2)
            time.sleep(0.1)
            assert not mine.changed()
            got_mine = mine.take_state_changes()
            got_theirs = theirs.take_state_changes()
        finally:
            mine.close()
            theirs.close()
    assert got_mine is not None and got_mine.total == 0 and got_mine.by_state == {}
    assert got_theirs is not None and got_theirs.total == 10 * 10 + 2


def test_two_watches_of_one_namespace_share_its_entry(netns):
    first = _watch(netns)
    second = _watch(netns)
    try:
        assert state_watch._users == {first.states.inode: 2}  # type: ignore[union-attr]
        first.take_state_changes()
        second.take_state_changes()
        first.close()  # the other watch keeps the program and the namespace's entry
        with netns_mod.entered(netns.name):
            _burst(4400, 1, 0)
        assert _settle(second, 12) == 12
    finally:
        first.close()
        second.close()


def test_closing_the_last_watch_detaches_the_program(netns):
    """The kernel is the judge: after close, neither the link nor the program exists."""
    watch = _watch(netns)
    assert watch.states is not None and watch.states.link_fd is not None
    info = _link_info(watch.states.link_fd)
    assert info["link_type"] == "raw_tracepoint" and info["tp_name"] == "inet_sock_set_state"
    link_id, prog_id = int(info["link_id"]), int(info["prog_id"])
    bpf = Bpf(state_watch._program.bpf.cmds)  # type: ignore[union-attr]
    fd = bpf.fd_by_id("LINK", link_id)  # alive now
    os.close(fd)
    watch.close()
    assert _our_state_links() == []
    # Freeing is deferred to an RCU grace period and a work queue: wait, bounded.
    end = time.monotonic() + 10
    gone: dict[str, bool] = {}
    while time.monotonic() < end:
        for kind, obj in (("LINK", link_id), ("PROG", prog_id)):
            try:
                os.close(bpf.fd_by_id(kind, obj))
                gone[kind] = False
            except BpfError as exc:
                assert exc.errno == errno.ENOENT
                gone[kind] = True
        if all(gone.values()):
            break
        time.sleep(0.05)
    assert gone == {"LINK": True, "PROG": True}
    # Loading again works (a new program), and closes again.
    again = _watch(netns)
    try:
        assert again.watching_states
        assert int(_link_info(again.states.link_fd)["prog_id"]) != prog_id  # type: ignore[union-attr]
    finally:
        again.close()


CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39


def _drop_caps(*caps: int) -> None:
    """Clear capabilities from this process's effective and permitted sets (capset(2))."""
    libc = ctypes.CDLL(None, use_errno=True)
    header = struct.pack("<Ii", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    data = ctypes.create_string_buffer(24)
    if libc.capget(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    words = list(struct.unpack("<6I", data.raw))  # (effective, permitted, inheritable) x 2
    for cap in caps:
        i, bit = divmod(cap, 32)
        words[3 * i] &= ~(1 << bit)
        words[3 * i + 1] &= ~(1 << bit)
    if libc.capset(header, struct.pack("<6I", *words)) != 0:
        raise OSError(ctypes.get_errno(), "capset")


def _in_child(ns: Netns, how: str) -> str:
    """Run a ChangeWatch in a forked child without the rights to load BPF; its report."""

    def report() -> str:
        if how == "nobody":
            become(65534)
        else:
            _drop_caps(CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF)
        watch = ChangeWatch()
        watch.take_state_changes()
        watch.mark_refreshed()
        quiet = watch.changed()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        u.close()
        end = time.monotonic() + 5
        while not watch.events and time.monotonic() < end:
            watch.drain()
            time.sleep(0.02)
        # The kernel agrees: loading the program for real is refused.
        try:
            info = state_watch.StateWatchInfo.from_btf(state_watch.btf_mod.load())
            state_watch.StateProgram(info).close()
            kernel = "loaded"
        except BpfError as exc:
            kernel = errno.errorcode.get(exc.errno or 0, "?")
        text = "|".join([str(watch.watching_states), str(watch.subscribed), str(quiet), str(watch.changed()),
                         str(len(watch.events)), str(watch.take_state_changes()), kernel, watch.limitation or ""])
        watch.close()
        return text

    return in_child(ns.path, report)


@pytest.mark.parametrize("how,why", [
    ("nobody", "not root and no CAP_BPF+CAP_PERFMON to load a BPF program"),
    ("dropped", "root without CAP_BPF+CAP_PERFMON (capabilities dropped) cannot load a BPF program"),
])
def test_without_bpf_rights_the_watch_works_on_counters_and_events_and_says_why(netns, how, why):
    # A watch in the parent first: a forked child must not inherit its use of the program.
    parent = _watch(netns)
    try:
        report = _in_child(netns, how)
    finally:
        parent.close()
    states, subscribed, quiet, changed, events, taken, kernel, limitation = report.split("|", 7)
    got = (states, subscribed, quiet, changed, events, taken)
    assert got == ("False", "True", "False", "True", "1", "None"), report
    assert kernel == "EPERM"
    assert limitation == f"socket state changes not watched ({why}): {STATES_UNSEEN}"
    assert "\n" not in limitation


@pytest.fixture
def fresh_loader():
    """Forget a remembered refusal after a test that provokes one."""
    yield
    state_watch._refused = None


def test_a_verifier_refusal_is_one_sentence_and_the_watch_goes_on(netns, monkeypatch, fresh_loader):
    """The real verifier judges a program that reads a fourth argument the tracepoint does
    not have; the watch says so and works on counters and events."""
    real = state_watch.program

    def broken(k, map_fd):
        code = real(k, map_fd)
        return code[:8] + struct.pack("<BBhi", 0x79, (1 << 4) | 7, 24, 0) + code[16:]  # r7 = ctx[3]

    monkeypatch.setattr(state_watch, "program", broken)
    watch = _watch(netns)
    try:
        assert not watch.watching_states and watch.subscribed
        lim = watch.limitation or ""
        assert lim.startswith("socket state changes not watched (the kernel refused sockscope's state-change program (")
        assert "\n" not in lim
        assert _our_state_links() == [] and state_watch._program is None
        watch.take()
        watch.mark_refreshed()
        with netns_mod.entered(netns.name):
            _burst(4600, 1, 0)
        assert watch.changed()  # the counters still see the connection
    finally:
        watch.close()
    # Remembered: the next watch does not ask the verifier again.
    monkeypatch.setattr(state_watch, "program", real)
    again = _watch(netns)
    try:
        assert not again.watching_states and again.limitation == lim
    finally:
        again.close()


def test_a_kernel_without_the_tracepoint_says_so(netns, monkeypatch, fresh_loader):
    monkeypatch.setattr(state_watch, "TRACEPOINT", "no_such_tracepoint")
    watch = _watch(netns)
    try:
        assert not watch.watching_states
        assert "this kernel has no tracepoint sock:no_such_tracepoint in its BTF" in (watch.limitation or "")
    finally:
        watch.close()


def _wait(pred, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not pred() and time.monotonic() < end:
        time.sleep(0.05)


def test_the_poller_refreshes_on_a_peer_close_long_before_the_safety_timer(pair):
    """End to end: with a safety period of 10 minutes, a peer's close still brings a full
    dump within a tick, and the header says why; without BPF it does not."""
    a, b = pair
    with netns_mod.entered(b.name):
        srv = socket.socket()
        srv.bind(("10.77.0.2", 4500))
        srv.listen()
    clients, peers = [], []
    for _ in range(2):
        with netns_mod.entered(a.name):
            clients.append(socket.create_connection(("10.77.0.2", 4500), timeout=5))
        peers.append(srv.accept()[0])
        clients[-1].sendall(b"x")
        assert peers[-1].recv(1) == b"x"
    results = {}
    try:
        for i, states in enumerate((True, False)):
            frames: list = []
            poller = Poller(lambda: CollectorSource(a.name, "auto", states=states), 0.1, frames.append,
                            lambda e: frames.append(e), cpu_budget=1.0, safety_period=600)
            t = threading.Thread(target=poller.run, daemon=True)
            t.start()
            try:
                _wait(lambda: any(getattr(f, "full", False) for f in frames))
                time.sleep(1.0)  # settled: idle ticks
                fulls = len([f for f in frames if getattr(f, "full", False)])
                peers[i].close()
                assert clients[i].recv(1) == b""
                _wait(lambda: len([f for f in frames if getattr(f, "full", False)]) > fulls, timeout=4.0)
                newer = [f for f in frames if getattr(f, "full", False)][fulls:]
                results[states] = (newer, frames[-1].limitation if frames else None)
            finally:
                poller.stop()
                t.join(10)
            assert not t.is_alive()
    finally:
        for s in clients + peers + [srv]:
            s.close()
    refreshed, limitation = results[True]
    assert refreshed, "no refresh after the peer's close"
    states_seen = [f.churn.states for f in refreshed if f.churn is not None and f.churn.states is not None]
    assert states_seen and states_seen[0].by_state == {"CLOSE-WAIT": 1}
    assert re.search(r"1 state change \(to CLOSE-WAIT 1\)$", churn_text(refreshed[0].churn))
    assert "state changes" not in (limitation or "")
    unseen, limitation = results[False]
    assert unseen == []  # only the safety timer (10 minutes) would have caught it
    assert "socket state changes not watched" in (limitation or "")
