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
from operator import attrgetter
from typing import cast

from sockscope.model import TCP_STATES, TIMER_KINDS, Proto, SocketRecord, Timer, with_sources

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
SPORT = struct.Struct("=4xH")  # inet_diag_msg's idiag_sport alone (network order, swapped via _PORT)
RTATTR = struct.Struct("=HH")
NLMSGHDR3 = struct.Struct("=IHH")  # the first three fields of NLMSGHDR: len, type, flags
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
BUFFER_KEY_BYTES = 48  # of each end of a buffer, with its length: the key it is kept under


class Decoder:
    """Decodes the replies of one dump (one protocol, one family) into `out`.

    Keeps caches that outlive a dump: address strings, and the records of earlier
    refreshes keyed by their raw message. A socket the kernel reports byte for byte as
    before (same state, queues, timer) gets its old record back, with the owners and
    options already resolved: on a warm refresh most of 100,000 sockets are such. So
    records must be treated as read-only outside the collectors. Create one Decoder per
    Collector, call `consumer()` for each dump and `finish()` after each refresh.

    Two levels of reuse:
    - whole receive buffers: when nothing changed, the kernel fills its buffers with the
      same bytes (the requests carry a fixed sequence number for that), so a buffer of
      ~250 sockets costs one hash and one compare;
    - single messages, in a dict per protocol that is updated in place (a refresh where
      a few sockets changed adds their new messages; nothing is rebuilt, and nothing
      large is left for the garbage collector to walk).

    Every cache is bounded: the message dicts hold the sockets of the last complete
    refresh plus at most as many again plus ADDR_CACHE_SLACK older messages (beyond
    that they are rebuilt from the last refresh); the kept buffers are the last complete
    refresh's plus at most as many again plus BUFFER_SLACK; the address caches are
    emptied once they exceed two addresses per kept message plus ADDR_CACHE_SLACK.
    """

    def __init__(self, keep: bool = True) -> None:
        """`keep=False`: a decoder for one refresh (a one-shot command): no message or
        buffer is kept for a next one, which saves a bytes copy and a dict insert per
        socket (~20 ms and 14 MB at 100,000 sockets)."""
        self.keep = keep
        self.addr4: dict[bytes, str] = {}
        self.addr6: dict[bytes, str] = {}
        self.ifnames: dict[int, str] = {}
        # One dict per protocol, keyed by the raw message alone: no key tuple to build
        # and hash per socket on the warm path.
        self._messages: dict[str, dict[bytes, SocketRecord]] = {}
        # This refresh, per protocol: the records delivered (for the bound in finish()).
        self._delivered: dict[str, list[list[SocketRecord]]] = {}
        # Whole receive buffers, by (length, head, tail) -> (the bytes, their records).
        self._previous_buffers: dict[tuple[int, bytes, bytes], tuple[bytes, list[SocketRecord]]] = {}
        self._current_buffers: dict[tuple[int, bytes, bytes], tuple[bytes, list[SocketRecord]]] = {}
        self._complete_buffers = 0  # buffers kept by the last complete refresh
        # Kept lists may hold a record renumbered since they were kept: after a partial
        # refresh (its records came through other buffers) or a retried dump.
        self._blocks_unsure = False
        self._retried = False
        self._live: dict[str, int] = {}  # records of each protocol in the last complete refresh
        self._finished = False  # a refresh has ended: lookups can find something
        self._mark: tuple[str, list[SocketRecord], int, int] | None = None
        self.segments: list[list[SocketRecord]] = []  # of the last refresh: see finish()

    @property
    def reusable(self) -> int:
        """Messages kept for the next refresh to reuse."""
        return sum(len(d) for d in self._messages.values())

    def finish(self, complete: bool = True) -> None:
        """End a refresh. Its messages stay reusable, and so do older ones while they fit
        in the bound (after a refresh of only some states, the other states' records
        are needed again at the next complete refresh)."""
        for proto, outs in self._delivered.items():
            messages = self._messages.get(proto)
            live = sum(len(o) for o in outs)
            # After a partial refresh the other states' messages still count as live.
            bound = 2 * (live if complete else max(live, self._live.get(proto, 0))) + ADDR_CACHE_SLACK
            if messages is not None and len(messages) > bound:
                # Too many messages of sockets gone or changed: keep those delivered now.
                # (A record given back with a whole buffer kept across an earlier rebuild
                # may have no message left here: it is decoded again if it changes.)
                key_of = {id(r): k for k, r in messages.items()}
                self._messages[proto] = {key_of[id(r)]: r for o in outs for r in o if id(r) in key_of}
            if complete:
                self._live[proto] = live
        self._blocks_unsure = not complete or self._retried
        self._retried = False
        if complete:
            self._previous_buffers = self._current_buffers
            self._complete_buffers = len(self._current_buffers)
        else:
            self._previous_buffers.update(self._current_buffers)
            if len(self._previous_buffers) > 2 * self._complete_buffers + BUFFER_SLACK:
                # Partial refreshes whose sockets keep changing (a listener's queue)
                # add a buffer (up to 32 KiB) each time.
                self._previous_buffers = self._current_buffers
        # The lists records were delivered in, in dump order: a list given again is the
        # very same records (a buffer reused whole), which the collector need not revisit.
        self.segments = [seg for outs in self._delivered.values() for seg in outs]
        self._delivered = {}
        self._current_buffers = {}
        self._mark = None
        self._finished = True
        bound = 2 * self.reusable + ADDR_CACHE_SLACK
        if len(self.addr4) > bound:
            self.addr4.clear()
        if len(self.addr6) > bound:
            self.addr6.clear()

    def consumer(self, proto: str, out: list[SocketRecord], only_port: int | None = None,
                 ports: set[int] | None = None) -> Callable[[bytes, DumpState], None]:
        """A consumer of one dump's buffers, decoding into `out`. With `only_port`, only
        sockets with that local port are decoded (what `check` asks about: on a host with
        100,000 sockets the others cost a port read each, not a record), every local
        port met is added to `ports`, and no buffer is kept for reuse (it was not decoded
        whole); finish the refresh with complete=False."""
        msg_unpack = INET_DIAG_MSG.unpack_from
        sport_unpack = SPORT.unpack_from
        seen_port = ports.add if ports is not None else None
        hdr_unpack = NLMSGHDR.unpack_from
        hdr3_unpack = NLMSGHDR3.unpack_from
        get_order = attrgetter("order")
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
        keep = self.keep
        diag_v6 = with_sources(None, None, "diag")  # sock_diag's V6ONLY: the kernel's own
        messages = self._messages.setdefault(proto, {})
        lookup = messages.get
        delivered = self._delivered.setdefault(proto, [])
        # A retried dump (run_dump) truncates `out` back to where the failed attempt
        # began and asks for a new consumer: forget what that attempt delivered. (Another
        # dump starting at the same length delivered no records: nothing is lost.)
        mark = self._mark
        if mark is not None and mark[0] == proto and mark[1] is out and mark[2] == len(out):
            del delivered[mark[3]:]
            self._retried = True
        self._mark = (proto, out, len(out), len(delivered))
        previous_buffers = self._previous_buffers
        current_buffers = self._current_buffers
        trust_blocks = not self._blocks_unsure
        # The first refresh (every dump of it, retried ones too) decodes every message
        # without looking it up: the index only holds what this refresh itself put there.
        first = not self._finished

        def decode(data: bytes, off: int, length: int, order: int) -> SocketRecord | None:
            """The record of the socket message at `off` (None: a family not ours)."""
            body = off + hdr_size
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
                return None
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
                diag_v6 if v6only is not None else None,
            )
            if keep:
                messages[data[body : off + length]] = rec
            return rec

        def deliver(recs: list[SocketRecord], order: int, data: bytes,
                    bkey: tuple[int, bytes, bytes] | None, whole: bool = False) -> None:
            """Give `recs` to the dump from position `order`, renumbered where any moved;
            with `bkey`, keep them as this buffer's records for the next refresh. `whole`:
            a kept list given back, numbered as one block when it was kept; unless a
            partial refresh or a retried dump since can have moved one of its records
            through another buffer (_blocks_unsure), its first record tells."""
            if not recs:
                pass
            elif whole and trust_blocks and recs[0].order == order:
                pass
            elif list(map(get_order, recs)) != list(range(order, order + len(recs))):
                for i, r in enumerate(recs, order):
                    r.order = i
            out.extend(recs)
            delivered.append(recs)
            if bkey is not None:
                current_buffers[bkey] = (data, recs)

        def consume(data: bytes, st: DumpState) -> None:
            order = len(out)
            if only_port is not None or not keep:
                consume_each(data, st, order, None)
                return
            # Buffers are kept under a short key (hashing 100 bytes instead of 32 KiB), and
            # compared whole on a hit.
            bkey = (len(data), data[:BUFFER_KEY_BYTES], data[-BUFFER_KEY_BYTES:])
            entry = previous_buffers.get(bkey)
            recs = entry[1] if entry is not None and entry[0] == data else None
            if recs is not None and (not recs or recs[0].proto == rproto):
                # The same bytes as a buffer of the last refresh: the same sockets, in the
                # same states, queues and timers. Only buffers of socket messages alone
                # are kept (no NLMSG_DONE, no error, no NLM_F_DUMP_INTR).
                deliver(recs, order, data, bkey, whole=True)
                return
            if first or not messages:
                consume_each(data, st, order, bkey)
                return
            end = len(data)
            slice_of = cast("Callable[[slice], bytes]", data.__getitem__)
            # A buffer of socket messages alone (every one but a dump's last): split it,
            # then look every message up at once; only new or changed sockets are decoded.
            starts: list[int] = []
            ends: list[int] = []
            off = 0
            while off < end:
                if end - off < hdr_size:
                    break
                length, mtype, flags = hdr3_unpack(data, off)
                mend = off + length
                if mtype != SOCK_DIAG_BY_FAMILY or flags & NLM_F_DUMP_INTR or \
                        length < hdr_size + msg_size or mend > end:
                    break
                starts.append(off + hdr_size)
                ends.append(mend)
                off = (mend + 3) & ~3
            else:
                if starts:
                    found: list[SocketRecord | None] = list(map(lookup, map(slice_of, map(slice, starts, ends))))
                    if None in found:
                        i = found.index(None)
                        while True:
                            start = starts[i] - hdr_size
                            found[i] = decode(data, start, ends[i] - start, order + i)
                            try:
                                i = found.index(None, i + 1)
                            except ValueError:
                                break
                        if None in found:  # a family not ours: skipped, and not kept whole
                            deliver([r for r in found if r is not None], order, data, None)
                            return
                    deliver(cast("list[SocketRecord]", found), order, data, bkey)  # no None left
                    return
            consume_each(data, st, order, bkey)

        def consume_each(data: bytes, st: DumpState, order: int, bkey: tuple[int, bytes, bytes] | None) -> None:
            """Message by message: the first refresh, a buffer that ends the dump or holds
            an error, or a port-filtered dump (no `bkey`: the buffer is not kept)."""
            end = len(data)
            off = 0
            buf_start = order
            plain = True  # socket messages alone: the buffer may be reused whole
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
                    if length - hdr_size < msg_size:
                        raise ValueError(f"truncated inet_diag_msg: {length - hdr_size} bytes, need {msg_size}")
                    if only_port is not None:
                        sport = port[sport_unpack(data, off + hdr_size)[0]]
                        if seen_port is not None:
                            seen_port(sport)
                        if sport != only_port:
                            off += (length + 3) & ~3
                            continue
                    rec = lookup(data[off + hdr_size : off + length]) if messages and not first else None
                    if rec is None:
                        rec = decode(data, off, length, order)
                    if rec is not None:
                        rec.order = order
                        order += 1
                        append(rec)
                    else:
                        plain = False
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
            recs = out[buf_start:]
            delivered.append(recs)
            if plain and bkey is not None:
                current_buffers[bkey] = (data, recs)

        return consume
