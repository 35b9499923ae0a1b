"""What changed between two refreshes, without a full dump.

Two cheap sources, both per network namespace (create a ChangeWatch inside it):

- sock_diag's destroy multicast groups (what `ss -E` listens to): the kernel sends one
  inet_diag_msg for every full TCP/UDP socket it frees, with its ports, state and cookie.
  Subscribing needs CAP_NET_ADMIN in the namespace's user namespace. There is no such
  group for creations, and none for timewait or request mini-sockets.
- The namespace's socket counters, /proc/net/sockstat, sockstat6 and snmp (TCP
  ActiveOpens, PassiveOpens, CurrEstab, ...): one small read per tick. Any difference
  means something was created, destroyed, connected, or entered or left TIME-WAIT.

- Where BPF is available (root, or CAP_BPF+CAP_PERFMON; kernel BTF): TCP state changes
  counted per namespace in the kernel (bpf/state_watch.py, a program on the tracepoint
  sock:inet_sock_set_state), one map read per tick. These see a state change that moves
  no counter: ESTAB -> CLOSE-WAIT when the peer closes, FIN-WAIT-1 -> FIN-WAIT-2, ...

What none of them sees: queue and timer values, and options set later with setsockopt
(and, without BPF, the state changes above). The poller's safety timer catches those.

Counting (`count_churn`) is exact for every socket that was a full socket: a socket
created and destroyed between two dumps is never in a dump but its destroy event is.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from sockscope.model import TCP_STATES, SocketRecord

from .bpf import state_watch
from .inet_diag import INET_DIAG_MSG, _PORT
from .netlink import NETLINK_SOCK_DIAG, NLMSGHDR, SOCK_DIAG_BY_FAMILY

# include/uapi/linux/sock_diag.h: enum { SKNLGRP_NONE, SKNLGRP_INET_TCP_DESTROY, ... }
SKNLGRP_INET_TCP_DESTROY = 1
SKNLGRP_INET_UDP_DESTROY = 2
SKNLGRP_INET6_TCP_DESTROY = 3
SKNLGRP_INET6_UDP_DESTROY = 4
DESTROY_GROUPS = 0
for _g in (SKNLGRP_INET_TCP_DESTROY, SKNLGRP_INET_UDP_DESTROY, SKNLGRP_INET6_TCP_DESTROY, SKNLGRP_INET6_UDP_DESTROY):
    DESTROY_GROUPS |= 1 << (_g - 1)

# Each event is a ~380-byte message in its own skb (~1 KiB of receive buffer): 16 MiB
# holds about 16,000 events, several seconds of a 5,000 connections/s churn.
EVENT_RCVBUF = 16 << 20
RECV_SIZE = 1 << 20
# Events kept between two refreshes at most; beyond that they are counted as lost.
MAX_PENDING_EVENTS = 1_000_000

INET_DIAG_PROTOCOL = 10  # enum inet_diag_attr


@dataclass(slots=True, frozen=True)
class DestroyEvent:
    """One socket the kernel freed: `state` is its state at that moment (usually UNCONN,
    i.e. TCP_CLOSE), ports are host order."""

    proto: str
    family: int
    state: str
    local_port: int
    peer_port: int
    cookie: int


def parse_destroy_events(data: bytes, out: list[DestroyEvent]) -> None:
    """Append the events of one receive buffer. The protocol is not in inet_diag_msg;
    sock_diag carries it in the INET_DIAG_PROTOCOL attribute (type 10)."""
    end = len(data)
    off = 0
    hdr = NLMSGHDR
    msg = INET_DIAG_MSG
    port = _PORT
    while off + hdr.size <= end:
        length, mtype, _flags, _seq, _pid = hdr.unpack_from(data, off)
        if length < hdr.size or off + length > end:
            raise ValueError(f"bad netlink message length {length} at offset {off} (buffer {end})")
        body = off + hdr.size
        if mtype == SOCK_DIAG_BY_FAMILY and length - hdr.size >= msg.size:
            (fam, kstate, _t, _r, sport, dport, _src, _dst, _if, c0, c1, *_rest) = msg.unpack_from(data, body)
            proto = "tcp"
            a = body + msg.size
            mend = off + length
            while a + 4 <= mend:
                alen, atype = struct.unpack_from("=HH", data, a)
                if alen < 4 or a + alen > mend:
                    break
                if atype == INET_DIAG_PROTOCOL and alen >= 5:
                    proto = "udp" if data[a + 4] in (socket.IPPROTO_UDP, 136) else "tcp"  # 136: UDP-Lite
                a += (alen + 3) & ~3
            state = TCP_STATES.get(kstate, f"UNKNOWN-{kstate}")
            if proto == "udp" and kstate == 1:
                state = "ESTAB"
            out.append(DestroyEvent(proto, 6 if fam == socket.AF_INET6 else 4, state,
                                    port[sport], port[dport], c0 | (c1 << 32)))
        off += (length + 3) & ~3


class DestroyListener:
    """A NETLINK_SOCK_DIAG socket subscribed to the four destroy groups, non-blocking.
    Raises OSError (EPERM without CAP_NET_ADMIN) when the groups cannot be joined."""

    def __init__(self, rcvbuf: int = EVENT_RCVBUF) -> None:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG)
        try:
            try:
                sock.setsockopt(socket.SOL_SOCKET, 33, rcvbuf)  # SO_RCVBUFFORCE
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.bind((0, DESTROY_GROUPS))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.sock: socket.socket | None = sock
        self.lost = False  # the receive buffer overflowed since the last take()

    def fileno(self) -> int:
        return self.sock.fileno() if self.sock is not None else -1

    def drain(self, out: list[DestroyEvent]) -> int:
        """Read every queued event into `out`; the number read."""
        sock = self.sock
        if sock is None:
            return 0
        before = len(out)
        while True:
            try:
                data = sock.recv(RECV_SIZE)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    self.lost = True  # the kernel dropped events; later ones still come
                    continue
                raise
            if not data:
                break
            if len(out) >= MAX_PENDING_EVENTS:
                self.lost = True
                continue
            parse_destroy_events(data, out)
        return len(out) - before

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _field_values(text: str, prefix: str) -> list[str]:
    """/proc/net/snmp holds a header line and a value line per protocol."""
    lines = [ln for ln in text.splitlines() if ln.startswith(prefix)]
    return lines[1].split()[1:] if len(lines) >= 2 else []


class Counters:
    """The namespace's socket counters as one comparable tuple. The files are opened once
    (inside the namespace; a /proc/net file stays bound to the namespace it was opened in)
    and re-read with pread, about 20 µs a tick."""

    FILES = ("sockstat", "sockstat6", "snmp")
    SNMP_FIELDS = ("ActiveOpens", "PassiveOpens", "AttemptFails", "EstabResets", "CurrEstab")

    def __init__(self, base: str = "/proc/thread-self/net") -> None:
        self._fds: list[int] = []
        for name in self.FILES:
            try:
                self._fds.append(os.open(f"{base}/{name}", os.O_RDONLY | os.O_CLOEXEC))
            except OSError:
                continue  # no IPv6: no sockstat6
        self._snmp_index: list[int] | None = None

    def read(self) -> tuple[int, ...]:
        values: list[int] = []
        for fd in self._fds:
            text = os.pread(fd, 65536, 0).decode("ascii", "replace")
            if text.startswith("Ip:"):
                values.extend(self._snmp(text))
                continue
            for line in text.splitlines():
                words = line.split()
                # "TCP: inuse 3 orphan 0 tw 1 alloc 5 mem 2": the per-namespace counts of
                # hashed sockets and timewaits only. "orphan", "alloc" and "mem" are
                # host-wide; "sockets: used" counts our own netlink sockets too.
                if words and words[0] != "sockets:":
                    for i in range(1, len(words) - 1, 2):
                        if words[i] in ("inuse", "tw") and words[i + 1].isascii() and words[i + 1].isdigit():
                            values.append(int(words[i + 1]))
        return tuple(values)

    def _snmp(self, text: str) -> list[int]:
        head = [ln for ln in text.splitlines() if ln.startswith("Tcp:")]
        if len(head) < 2:
            return []
        names, vals = head[0].split(), head[1].split()
        if self._snmp_index is None:
            self._snmp_index = [names.index(f) for f in self.SNMP_FIELDS if f in names]
        return [int(vals[i]) for i in self._snmp_index if i < len(vals)]

    def tcp_opens(self) -> int | None:
        """ActiveOpens + PassiveOpens: TCP connections created so far (for reports)."""
        for fd in self._fds:
            text = os.pread(fd, 65536, 0).decode("ascii", "replace")
            if text.startswith("Ip:"):
                head = [ln.split() for ln in text.splitlines() if ln.startswith("Tcp:")]
                if len(head) >= 2:
                    row = dict(zip(head[0], head[1]))
                    return int(row["ActiveOpens"]) + int(row["PassiveOpens"])
        return None

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []


@dataclass(slots=True, frozen=True)
class StateChanges:
    """TCP state changes counted by the kernel between two takes: `total`, and per new
    state by ss's names (a connection's end that goes to TIME-WAIT shows as its full
    socket's change to UNCONN, TCP_CLOSE: the mini-socket is a separate object)."""

    total: int
    by_state: dict[str, int]


STATES_UNSEEN = ("a change that moves no counter (a peer's close, ESTAB -> CLOSE-WAIT) shows at the next "
                 "periodic full refresh")


class ChangeWatch:
    """Tells the poller whether anything changed since the last refresh, and collects the
    destroy events in between. Create it in the namespace it watches (the Collector's);
    `subscribe=False` leaves out the destroy events, `states=False` the BPF state-change
    counts (both fall back with a sentence in `limitation`).

    With `reader=True` a small daemon thread reads the events as they come, so a long
    dump (seconds at 100,000 sockets) cannot let the kernel's buffer overflow under a
    churn; otherwise call `drain()` often."""

    def __init__(self, subscribe: bool = True, reader: bool = False, states: bool = True) -> None:
        self.counters = Counters()
        self.listener: DestroyListener | None = None
        self._limits: dict[str, str] = {}  # what -> one sentence, joined into `limitation`
        if subscribe:
            try:
                self.listener = DestroyListener()
            except OSError as exc:
                self._limits["events"] = (
                    f"socket destroy events unavailable ({exc.strerror or exc}): sockets that open "
                    "and close between two refreshes are not counted"
                )
        else:
            self._limits["events"] = ("socket destroy events not subscribed: sockets that open and close between two "
                                      "refreshes are not counted")
        self.states: state_watch.StateCounts | None = None
        if states:
            try:
                self.states = state_watch.acquire(os.stat("/proc/thread-self/ns/net").st_ino)
            except (state_watch.StateWatchUnavailable, OSError) as exc:
                self._limits["states"] = f"socket state changes not watched ({exc}): {STATES_UNSEEN}"
        else:
            self._limits["states"] = f"socket state changes not watched (not asked for): {STATES_UNSEEN}"
        self._state_mark = self._read_states()  # the state counters at the last take
        self.events: list[DestroyEvent] = []
        self._lock = threading.Lock()
        self._last = self._read()
        self._dirty = True  # the first refresh always runs
        self.received = 0  # destroy events read so far
        self._taken = 0  # `received` at the last take()
        self._stop = threading.Event()
        self.reader_cpu = 0.0  # CPU seconds the reader thread has used (for the CPU budget)
        self._thread: threading.Thread | None = None
        if reader and self.listener is not None:
            self._thread = threading.Thread(target=self._read_loop, name="sockscope-events", daemon=True)
            self._thread.start()

    @property
    def subscribed(self) -> bool:
        return self.listener is not None

    @property
    def watching_states(self) -> bool:
        return self.states is not None

    @property
    def limitation(self) -> str | None:
        return "; ".join(self._limits.values()) or None

    def _read_states(self) -> tuple[int, ...] | None:
        if self.states is None:
            return None
        try:
            return self.states.read()
        except (state_watch.StateWatchUnavailable, OSError) as exc:
            # Not expected while our handle holds the entry; degrade, never fail a tick.
            self.states.close()
            self.states = None
            self._limits["states"] = f"socket state changes no longer watched ({exc}): {STATES_UNSEEN}"
            return None

    def _read(self) -> tuple[int, ...]:
        """The counters, and the namespace's count of TCP state changes when watched."""
        now = self.counters.read()
        states = self._read_states()
        return now + states[:1] if states is not None else now

    @property
    def threaded(self) -> bool:
        return self._thread is not None

    def _read_loop(self) -> None:
        listener = self.listener
        assert listener is not None
        poll = select.poll()
        poll.register(listener.fileno(), select.POLLIN)
        while not self._stop.is_set():
            if poll.poll(500):
                try:
                    self._drain_now()
                except (OSError, ValueError):
                    return  # closed under us, or garbage: the counters still work
                self.reader_cpu = time.thread_time()

    def _drain_now(self) -> int:
        if self.listener is None:
            return 0
        got: list[DestroyEvent] = []
        n = self.listener.drain(got)
        if n:
            with self._lock:
                self.events.extend(got)
                self.received += n
                self._dirty = True
        return n

    def drain(self) -> int:
        """Read queued destroy events (needed only without the reader thread)."""
        if self._thread is not None:
            return 0
        return self._drain_now()

    def changed(self) -> bool:
        """Whether something changed since `mark_refreshed()`: a destroy event, a counter,
        or (with BPF) a TCP state change."""
        self.drain()
        now = self._read()
        with self._lock:
            if now != self._last:
                self._last = now
                self._dirty = True
            return self._dirty

    def begin(self) -> tuple[tuple[int, ...], int]:
        """Call before a full dump; pass the result to `mark_refreshed` after it."""
        self.drain()
        now = self._read()
        with self._lock:
            return now, self.received

    def take(self) -> tuple[list[DestroyEvent], bool]:
        """The destroy events since the last take, and whether some were lost."""
        self.drain()
        with self._lock:
            events, self.events = self.events, []
            self._taken = self.received
        lost = False
        if self.listener is not None:
            lost, self.listener.lost = self.listener.lost, False
        return events, lost

    def take_state_changes(self) -> StateChanges | None:
        """The TCP state changes since the last call (or since the watch was made); None
        when they are not watched."""
        now = self._read_states()
        if now is None or self._state_mark is None:
            return None
        delta = state_watch.difference(now, self._state_mark)
        self._state_mark = now
        return StateChanges(delta[0], state_watch.named(delta))

    def mark_refreshed(self, token: tuple[tuple[int, ...], int] | None = None, stale: bool = False) -> None:
        """A full dump that began at `token` (from `begin()`) ended, and its events were
        taken (`take()`). The watch is clean unless `stale` (the caller found a socket in
        the dump that an event says is gone: destroyed during the dump), or events came
        after the take, or a counter moved during the dump (a socket may have been
        created behind the dump's walk): then the next tick refreshes again."""
        if token is None:
            token = self.begin()
        counters, _received = token
        with self._lock:
            self._dirty = stale or self.received != self._taken
            self._last = counters

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None
        if self.listener is not None:
            self.listener.close()
        if self.states is not None:
            self.states.close()
            self.states = None
        self.counters.close()


@dataclass(slots=True)
class Churn:
    """Sockets created and destroyed between two full refreshes, exact for every full
    socket when destroy events were received (`exact`)."""

    created: int = 0
    destroyed: int = 0
    # (proto, local port) -> [created, destroyed]
    by_port: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    # state -> [created, destroyed]: a creation counts in the state it was first seen in
    # (its destroy state for one never dumped), a destruction in its last state.
    by_state: dict[str, list[int]] = field(default_factory=dict)
    timewait_created: int = 0  # sockets that entered TIME-WAIT in between
    ephemeral_created: int = 0  # created sockets whose local port is in ip_local_port_range
    exact: bool = True
    seconds: float = 0.0  # time between the two refreshes
    states: StateChanges | None = None  # TCP state changes in between (BPF), None: not watched

    def _add(self, proto: str, port: int, state: str, i: int) -> None:
        slot = self.by_port.get((proto, port))
        if slot is None:
            slot = self.by_port[(proto, port)] = [0, 0]
        slot[i] += 1
        s = self.by_state.get(state)
        if s is None:
            s = self.by_state[state] = [0, 0]
        s[i] += 1


Seen = dict[tuple[str, int], tuple[int, int, str]]  # (proto, cookie) -> (local port, peer port, state)


def seen_of(records: list[SocketRecord]) -> Seen:
    return {(r.proto, r.cookie): (r.local_port, r.peer_port, r.state) for r in records}


def count_churn(
    before: Seen,
    after: Seen,
    events: list[DestroyEvent],
    ephemeral: tuple[int, int],
    exact: bool,
) -> Churn:
    """Compare two full dumps plus the destroy events received between them.

    A connection that closes first frees its full socket (a destroy event) and lives on
    as a TIME-WAIT mini-socket. That one keeps the cookie only if the cookie was made
    before (sockscope dumped the socket); for a connection born between two dumps the
    kernel gives the mini-socket a new one. So an event whose ports match a TIME-WAIT
    socket first seen in `after` is that socket's predecessor, not a socket gone."""
    churn = Churn(exact=exact)
    lo, hi = ephemeral
    new_timewait: set[tuple[str, int, int]] = set()
    for key, (port, peer, state) in after.items():
        old = before.get(key)
        if old is None:
            churn.created += 1
            churn._add(key[0], port, state, 0)
            if lo <= port <= hi:
                churn.ephemeral_created += 1
            if state == "TIME-WAIT":
                churn.timewait_created += 1
                new_timewait.add((key[0], port, peer))
        elif state == "TIME-WAIT" and old[2] != "TIME-WAIT":
            churn.timewait_created += 1
    for key, (port, _peer, state) in before.items():
        if key not in after:
            churn.destroyed += 1
            churn._add(key[0], port, state, 1)
    counted: set[tuple[str, int]] = set()
    for ev in events:
        key = (ev.proto, ev.cookie)
        if key in before or key in after or key in counted:
            continue  # already counted by the dumps
        counted.add(key)
        if ev.proto == "tcp" and (ev.proto, ev.local_port, ev.peer_port) in new_timewait:
            new_timewait.discard((ev.proto, ev.local_port, ev.peer_port))
            continue  # the full socket of a connection now in TIME-WAIT, counted above
        # Created and destroyed between the two dumps: seen only by its destroy event.
        churn.created += 1
        churn.destroyed += 1
        churn._add(ev.proto, ev.local_port, ev.state, 0)
        churn._add(ev.proto, ev.local_port, ev.state, 1)
        if lo <= ev.local_port <= hi:
            churn.ephemeral_created += 1
    return churn
