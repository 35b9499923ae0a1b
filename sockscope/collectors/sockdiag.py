"""The sock_diag collector: every TCP and UDP socket of one namespace, IPv4 and IPv6."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from operator import attrgetter

from sockscope.model import SocketRecord

from .inet_diag import AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP, Decoder, build_request, states_mask
from .netlink import NetlinkError, open_sock_diag, run_dump

_cookie_of = attrgetter("cookie")
PROTOCOLS = {"tcp": IPPROTO_TCP, "udp": IPPROTO_UDP}
TIME_WAIT_BIT = 1 << 6  # TCP_TIME_WAIT in idiag_states


def kernel_has_bound_inactive() -> bool:
    """TCP bound-only sockets are dumped (state bit 13) from Linux 6.8 on."""
    release = os.uname().release
    try:
        major, minor = (int(x) for x in release.split(".", 2)[:2])
    except ValueError:
        return False
    return (major, minor) >= (6, 8)


class SockDiag:
    """Dumps one namespace's sockets. Create it inside the namespace (the netlink socket
    stays bound to the namespace it was made in); reuse it for warm refreshes."""

    def __init__(self, keep: bool = True) -> None:
        """`keep=False`: for one snapshot; nothing is kept for a warm refresh (Decoder)."""
        self._sock: socket.socket | None = open_sock_diag()
        self.decoder = Decoder(keep)
        self.bound_inactive = kernel_has_bound_inactive()
        self.ports_seen: frozenset[tuple[str, int]] | None = None  # see collect(port=...)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _get(self) -> socket.socket:
        if self._sock is None:
            raise ValueError("sock_diag collector is closed")
        return self._sock

    def _reset(self) -> socket.socket:
        # Only called for ENOBUFS: the old socket may hold the rest of a broken reply.
        # The new socket must be made in the same namespace; the caller's thread may have
        # left it, so this is only safe because the Collector re-enters before dumping.
        self.close()
        self._sock = open_sock_diag()
        return self._sock

    def collect(self, protos: Iterable[str] = ("tcp", "udp"), states: set[str] | None = None,
                port: int | None = None) -> list[SocketRecord]:
        """The sockets of `protos` in `states` (None: all). With `port`, only those with that
        local port are decoded, and `ports_seen` holds every (protocol, local port) the
        dumps held (the ports a one-port snapshot knows to be in use)."""
        out: list[SocketRecord] = []
        seen: set[tuple[str, int]] = set()
        for proto in protos:
            protocol = PROTOCOLS[proto]
            mask = states_mask(states, bound_inactive=self.bound_inactive and proto == "tcp")
            if proto == "udp":
                # UDP sockets are only ever TCP_CLOSE (unconnected) or TCP_ESTABLISHED.
                mask &= (1 << 7) | (1 << 1)
            if not mask:
                continue
            # TIME-WAIT sockets in a dump of their own: their timers count down, so their
            # messages change at every refresh; apart, they leave the other buffers
            # byte-identical while those sockets do not change, and the decoder reuses
            # those whole. (The kernel walks its established hash twice: ~1 ms per
            # 100,000 sockets. TCP records keep no meaningful order; UDP's do.)
            split = proto == "tcp" and bool(mask & TIME_WAIT_BIT) and bool(mask & ~TIME_WAIT_BIT)
            ports: set[int] = set()
            for family in (AF_INET, AF_INET6):
                if not split:
                    self._dump_one(proto, protocol, family, mask, out, port, ports)
                    continue
                start = len(out)
                self._dump_one(proto, protocol, family, mask & ~TIME_WAIT_BIT, out, port, ports)
                middle = len(out)
                self._dump_one(proto, protocol, family, TIME_WAIT_BIT, out, port, ports)
                _drop_overtaken(out, start, middle)
            seen.update((proto, p) for p in ports)
        self.decoder.finish(complete=states is None and port is None)
        self.ports_seen = frozenset(seen) if port is not None else None
        return out

    def _dump_one(self, proto: str, protocol: int, family: int, mask: int, out: list[SocketRecord],
                  port: int | None = None, ports: set[int] | None = None) -> None:
        start = len(out)
        attempt: set[int] = set()

        def begin():
            del out[start:]  # a retried dump starts from scratch
            attempt.clear()
            return self.decoder.consumer(proto, out, port, attempt if port is not None else None)

        # The same sequence number for the same request every time: the replies then hold
        # the same bytes when nothing changed, which the decoder reuses buffer by buffer.
        # (Dumps never overlap on this socket, and a broken one resets it.)
        request = build_request(family, protocol, mask, seq=(mask << 16) | (protocol << 8) | family)
        try:
            run_dump(self._get, self._reset, request, begin)
        except NetlinkError as exc:
            # A kernel without IPv6 or without udp_diag answers ENOENT for that family or
            # protocol: there is simply nothing of that kind to list.
            if exc.errno in (2, 97):  # ENOENT, EAFNOSUPPORT
                return
            raise
        if ports is not None:
            ports |= attempt  # the attempt that completed


def _drop_overtaken(out: list[SocketRecord], start: int, middle: int) -> None:
    """A connection that closed between the two dumps of a family is in both: in the first
    in its last full state (FIN-WAIT-2, say), in the second as TIME-WAIT with the same
    cookie. One socket is one record: the TIME-WAIT one, its state now. (A single dump
    walks each hash bucket once under its lock and cannot see a socket twice.)"""
    if len(out) == middle or middle == start:
        return
    waiting = set(map(_cookie_of, out[middle:]))
    if waiting.isdisjoint(map(_cookie_of, out[start:middle])):
        return
    out[start:middle] = [r for r in out[start:middle] if r.cookie not in waiting]
