"""Struct-based decoder of sock_diag's inet_diag_msg replies (include/uapi/linux/inet_diag.h).

One pass over each receive buffer, straight into SocketRecords: no per-attribute
objects. Pure: bytes in, records out; the kernel-facing loop is in netlink.py.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import sys
from collections.abc import Callable

from sockscope.model import TCP_STATES, TIMER_KINDS, Proto, SocketRecord, Timer

from .netlink import (
    NLM_F_DUMP,
    NLM_F_DUMP_INTR,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSGHDR,
    SOCK_DIAG_BY_FAMILY,
    DumpState,
    NetlinkError,
)

# struct inet_diag_msg: family, state, timer, retrans, inet_diag_sockid (sport, dport big
# endian; src[4], dst[4]; if; cookie[2]), expires, rqueue, wqueue, uid, inode.
INET_DIAG_MSG = struct.Struct("=BBBBHH16s16sIIIIIIII")
RTATTR = struct.Struct("=HH")
# struct inet_diag_req_v2: family, protocol, ext, pad, states, then an all-zero sockid.
INET_DIAG_REQ_V2 = struct.Struct("=BBBBI48x")

INET_DIAG_SHUTDOWN = 8
INET_DIAG_SKV6ONLY = 11
INET_DIAG_SOCKOPT = 22

AF_INET = socket.AF_INET
AF_INET6 = socket.AF_INET6
IPPROTO_TCP = socket.IPPROTO_TCP
IPPROTO_UDP = socket.IPPROTO_UDP

# Ports arrive in network byte order inside a native-order struct: swap by table lookup.
if sys.byteorder == "little":
    _PORT = [((p & 0xFF) << 8) | (p >> 8) for p in range(65536)]
else:
    _PORT = list(range(65536))

# ss state name -> kernel state numbers to request (TCP). UNCONN covers TCP_CLOSE and
# TCP_BOUND_INACTIVE (13, dumped by kernels >= 6.8 and reported as TCP_CLOSE).
STATE_BITS: dict[str, tuple[int, ...]] = {
    "ESTAB": (1,),
    "SYN-SENT": (2,),
    "SYN-RECV": (3, 12),
    "FIN-WAIT-1": (4,),
    "FIN-WAIT-2": (5,),
    "TIME-WAIT": (6,),
    "UNCONN": (7, 13),
    "CLOSE-WAIT": (8,),
    "LAST-ACK": (9,),
    "LISTEN": (10,),
    "CLOSING": (11,),
}
ALL_STATES_MASK = 0
for _bits in STATE_BITS.values():
    for _b in _bits:
        ALL_STATES_MASK |= 1 << _b


def states_mask(states: set[str] | frozenset[str] | None, bound_inactive: bool = True) -> int:
    """The idiag_states bitmask for a set of ss state names (None = all)."""
    if states is None:
        mask = ALL_STATES_MASK
    else:
        mask = 0
        for name in states:
            for b in STATE_BITS[name]:
                mask |= 1 << b
    if not bound_inactive:
        mask &= ~(1 << 13)
    return mask


def build_request(family: int, protocol: int, states: int, seq: int, ext: int = 0) -> bytes:
    payload = INET_DIAG_REQ_V2.pack(family, protocol, ext, 0, states)
    header = NLMSGHDR.pack(NLMSGHDR.size + len(payload), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
    return header + payload


def format_ipv6(raw: bytes) -> str:
    """An IPv6 address as Python's ipaddress prints it, but v4-mapped kept as ::ffff:a.b.c.d."""
    text = socket.inet_ntop(AF_INET6, raw)
    if "." in text and not text.startswith("::ffff:"):
        # glibc prints IPv4-compatible addresses (::/96) dotted; ipaddress does not.
        text = str(ipaddress.IPv6Address(raw))
    return text


# The address caches keep every address of the last refresh plus this many more; beyond
# that they are emptied at the end of a refresh (a churn of distinct peers would otherwise
# keep every address ever seen: 48,000 peers left 111 MB behind with no socket open).
ADDR_CACHE_SLACK = 4096
# Whole buffers kept beyond twice those of the last complete refresh: partial refreshes
# (listening sockets only) whose queues change add a buffer each time (up to 32 KiB).
BUFFER_SLACK = 64


class Decoder:
    """Decodes the replies of one dump (one protocol, one family) into `out`.

    Keeps caches that outlive a dump: address strings, and the records of the previous
    refresh keyed by their raw message. A socket the kernel reports byte for byte as
    before (same state, queues, timer) gets its old record back, with the owners and
    options already resolved: on a warm refresh most of 100,000 sockets are such. So
    records must be treated as read-only outside the collectors. Create one Decoder per
    Collector, call `consumer()` for each dump and `finish()` after each refresh.

    Every cache is bounded by the last refreshes: reusable records are those of the last
    complete refresh (plus, after partial ones, at most as many again), and the address
    caches are emptied once they exceed two addresses per such record plus
    ADDR_CACHE_SLACK, so memory returns after a churn.
    """

    def __init__(self) -> None:
        self.addr4: dict[bytes, str] = {}
        self.addr6: dict[bytes, str] = {}
        self.ifnames: dict[int, str] = {}
        # One dict per protocol, keyed by the raw message alone: no key tuple to build
        # and hash per socket on the warm path.
        self._previous: dict[str, dict[bytes, SocketRecord]] = {}
        # This refresh, per protocol: (message keys, records) of each receive buffer, and
        # whether every record was one of the last refresh's. The next `_previous` is
        # made from them in finish(), or is the same dict again when nothing changed
        # (no 100,000-entry dict rebuilt, and none for the garbage collector to walk).
        self._parts: dict[str, list[tuple[list[bytes], list[SocketRecord]]]] = {}
        self._all_reused: dict[str, bool] = {}
        # Whole receive buffers of the last refresh -> (message keys, records). On a host
        # where nothing changed, the kernel fills its buffers with the same bytes (the
        # requests carry a fixed sequence number for that), so a buffer of ~250 sockets
        # costs one hash and one compare instead of 250 slices and lookups.
        self._previous_buffers: dict[bytes, tuple[list[bytes], list[SocketRecord]]] = {}
        self._current_buffers: dict[bytes, tuple[list[bytes], list[SocketRecord]]] = {}
        self._complete_size = 0  # records in the last complete refresh
        self._complete_buffers = 0  # ... and its reusable buffers
        self._mark: tuple[str, list[SocketRecord], int, int] | None = None

    @property
    def reusable(self) -> int:
        """Records kept for the next refresh to reuse."""
        return sum(len(d) for d in self._previous.values())

    def _seen_now(self, proto: str) -> dict[bytes, SocketRecord]:
        """The messages of this refresh's `proto` dumps, keyed as `_previous`."""
        previous = self._previous.get(proto)
        parts = self._parts.get(proto, [])
        if previous is not None and self._all_reused.get(proto, False) and \
                sum(len(keys) for keys, _recs in parts) == len(previous):
            return previous  # every buffer reused, none missing: the same messages
        seen: dict[bytes, SocketRecord] = {}
        for keys, recs in parts:
            seen.update(zip(keys, recs))
        return seen

    def finish(self, complete: bool = True) -> None:
        """End a refresh: what was seen now is what the next refresh may reuse. After a
        refresh of only some states, the other states' records stay reusable too."""
        current = {proto: self._seen_now(proto) for proto in self._parts}
        if complete:
            self._previous = current
            self._previous_buffers = self._current_buffers
            self._complete_size = self.reusable
            self._complete_buffers = len(self._current_buffers)
        else:
            for proto, seen in current.items():
                kept = self._previous.setdefault(proto, {})
                if seen is not kept:
                    kept.update(seen)
            self._previous_buffers.update(self._current_buffers)
            if self.reusable > 2 * self._complete_size + ADDR_CACHE_SLACK or \
                    len(self._previous_buffers) > 2 * self._complete_buffers + BUFFER_SLACK:
                # Partial refreshes of changing sockets (a listener's queue) keep adding
                # keys; start over from what this refresh saw.
                self._previous = current
                self._previous_buffers = self._current_buffers
        self._parts = {}
        self._all_reused = {}
        self._current_buffers = {}
        self._mark = None
        bound = 2 * self.reusable + ADDR_CACHE_SLACK
        if len(self.addr4) > bound:
            self.addr4.clear()
        if len(self.addr6) > bound:
            self.addr6.clear()

    def consumer(self, proto: str, out: list[SocketRecord]) -> Callable[[bytes, DumpState], None]:
        msg_unpack = INET_DIAG_MSG.unpack_from
        hdr_unpack = NLMSGHDR.unpack_from
        attr_unpack = RTATTR.unpack_from
        msg_size = INET_DIAG_MSG.size
        hdr_size = NLMSGHDR.size
        addr4 = self.addr4
        addr6 = self.addr6
        ifnames = self.ifnames
        states = TCP_STATES
        timers = TIMER_KINDS
        port = _PORT
        rec_new = SocketRecord
        append = out.append
        is_udp = proto == "udp"
        rproto: Proto = "udp" if is_udp else "tcp"
        previous = self._previous.get(proto, {})
        parts = self._parts.setdefault(proto, [])
        # A retried dump (run_dump) truncates `out` back to where the failed attempt
        # began and asks for a new consumer: drop that attempt's parts too. (Another
        # dump starting at the same length added no records: dropping its parts loses
        # nothing.)
        mark = self._mark
        if mark is not None and mark[0] == proto and mark[1] is out and mark[2] == len(out):
            del parts[mark[3]:]
        self._mark = (proto, out, len(out), len(parts))
        self._all_reused.setdefault(proto, True)
        previous_buffers = self._previous_buffers
        current_buffers = self._current_buffers
        reused = self._all_reused

        def consume(data: bytes, st: DumpState) -> None:
            order = len(out)
            seen = previous_buffers.get(data)
            if seen is not None and (not seen[1] or seen[1][0].proto == rproto):
                # The same bytes as a buffer of the last refresh: the same sockets, in the
                # same states, queues and timers. Only buffers of socket messages alone
                # are kept (no NLMSG_DONE, no error, no NLM_F_DUMP_INTR).
                keys, recs = seen
                if recs and recs[0].order != order:
                    for i, r in enumerate(recs, order):
                        r.order = i
                out.extend(recs)
                parts.append(seen)
                current_buffers[data] = seen
                return
            end = len(data)
            off = 0
            plain = True  # only socket messages in this buffer: it may be reused whole
            buf_keys: list[bytes] = []
            buf_start = order
            while off < end:
                if end - off < hdr_size:
                    raise ValueError(f"truncated netlink header: {end - off} bytes at offset {off}")
                length, mtype, flags, _seq, _pid = hdr_unpack(data, off)
                if length < hdr_size or off + length > end:
                    raise ValueError(f"bad netlink message length {length} at offset {off} (buffer {end})")
                if flags & NLM_F_DUMP_INTR:
                    st.interrupted = True
                    plain = False
                if mtype == SOCK_DIAG_BY_FAMILY:
                    body = off + hdr_size
                    if length - hdr_size < msg_size:
                        raise ValueError(f"truncated inet_diag_msg: {length - hdr_size} bytes, need {msg_size}")
                    key = data[body : off + length]
                    rec = previous.get(key)
                    if rec is not None:
                        rec.order = order
                        order += 1
                        append(rec)
                        buf_keys.append(key)
                        off += (length + 3) & ~3
                        continue
                    (fam, kstate, ktimer, _retrans, sport, dport, src, dst, ifindex, c0, c1,
                     expires, rq, wq, uid, inode) = msg_unpack(data, body)
                    v6only = None
                    if fam == AF_INET:
                        s4 = src[:4]
                        local = addr4.get(s4)
                        if local is None:
                            local = addr4[s4] = socket.inet_ntop(AF_INET, s4)
                        d4 = dst[:4]
                        peer = addr4.get(d4)
                        if peer is None:
                            peer = addr4[d4] = socket.inet_ntop(AF_INET, d4)
                        family = 4
                    elif fam == AF_INET6:
                        local = addr6.get(src)
                        if local is None:
                            local = addr6[src] = format_ipv6(src)
                        peer = addr6.get(dst)
                        if peer is None:
                            peer = addr6[dst] = format_ipv6(dst)
                        family = 6
                        # Attributes: only V6ONLY is needed, and only IPv6 carries it.
                        a = body + msg_size
                        mend = off + length
                        while a + 4 <= mend:
                            alen, atype = attr_unpack(data, a)
                            if alen < 4 or a + alen > mend:
                                raise ValueError(f"bad attribute length {alen} at offset {a}")
                            if atype == INET_DIAG_SKV6ONLY:
                                if alen < 5:
                                    raise ValueError("truncated INET_DIAG_SKV6ONLY attribute")
                                v6only = data[a + 4] != 0
                            a += (alen + 3) & ~3
                    else:
                        plain = False
                        off += (length + 3) & ~3
                        continue
                    reused[proto] = False  # a socket not in the last refresh, or changed
                    state = states.get(kstate)
                    if state is None:
                        state = f"UNKNOWN-{kstate}"
                    elif is_udp and kstate == 1:
                        state = "ESTAB"
                    rec = rec_new(
                        rproto, family, state, local, port[sport], peer, port[dport], uid, inode,
                        c0 | (c1 << 32), ifindex,
                        (ifnames.get(ifindex) or f"if{ifindex}") if ifindex else None,
                        v6only, None, None, [], rq, wq,
                        Timer(timers.get(ktimer, str(ktimer)), expires) if ktimer else None,
                        order,
                        {"v6only": "diag"} if v6only is not None else None,
                    )
                    order += 1
                    append(rec)
                    buf_keys.append(key)
                elif mtype == NLMSG_DONE:
                    st.done = True
                    plain = False
                    break
                elif mtype == NLMSG_ERROR:
                    plain = False
                    if length < hdr_size + 4:
                        raise ValueError("truncated NLMSG_ERROR")
                    (err,) = struct.unpack_from("=i", data, off + hdr_size)
                    if err:
                        raise NetlinkError(-err, f"sock_diag dump failed: {os.strerror(-err)}")
                else:
                    plain = False
                off += (length + 3) & ~3
            part = (buf_keys, out[buf_start:])
            parts.append(part)
            if plain:
                current_buffers[data] = part

        return consume
