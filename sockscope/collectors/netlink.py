"""A raw NETLINK_SOCK_DIAG socket and the dump loop.

Plain `socket` module on purpose: this is the hot path (100,000 sockets a second),
and a generic netlink library's per-message objects cost 50x more here.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Callable, Iterator

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20

NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_OVERRUN = 4

NLM_F_REQUEST = 0x01
NLM_F_MULTI = 0x02
NLM_F_ROOT = 0x100
NLM_F_MATCH = 0x200
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH
NLM_F_DUMP_INTR = 0x10

SOL_NETLINK = 270
NETLINK_EXT_ACK = 11
NETLINK_GET_STRICT_CHK = 12

NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid

RECV_BUFSIZE = 1 << 20
MAX_DUMP_RETRIES = 5


class DumpInterrupted(Exception):
    """The kernel's tables changed while dumping (NLM_F_DUMP_INTR): the result is inconsistent."""


class NetlinkError(OSError):
    """An NLMSG_ERROR reply to a request."""


def open_sock_diag(rcvbuf: int = 4 << 20) -> socket.socket:
    """A NETLINK_SOCK_DIAG socket. It belongs to the network namespace of the calling
    thread at creation time, for its whole life."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot open a NETLINK_SOCK_DIAG socket: {exc.strerror}") from None
    try:
        # A big receive buffer keeps the kernel from stalling (or failing with ENOBUFS)
        # between our reads; FORCE needs CAP_NET_ADMIN, so fall back quietly.
        sock.setsockopt(socket.SOL_SOCKET, 33, rcvbuf)  # SO_RCVBUFFORCE
    except OSError:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        except OSError:
            pass
    sock.bind((0, 0))
    _prime(sock)
    return sock


# An inet_diag dump request (struct inet_diag_req_v2: family AF_INET, protocol 0, no states)
# that no protocol handler serves: the kernel answers at once, with one small message.
_PRIME_REQUEST = NLMSGHDR.pack(NLMSGHDR.size + 56, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 0xFFFF, 0) + \
    struct.pack("=BBBBI48x", 2, 0, 0, 0, 0)


def _prime(sock: socket.socket) -> None:
    """The kernel sizes a dump's buffers by the largest receive it has seen on the socket,
    and the first dump of a new socket starts with a small one: its buffers then differ
    from every later dump's, which the decoder could otherwise reuse whole. One tiny
    request read with the full receive size makes the first real dump like the others.
    Best effort: any failure leaves the socket as it was."""
    try:
        sock.settimeout(1.0)  # the answer is immediate; never hang on a strange kernel
        sock.send(_PRIME_REQUEST)
        for _ in range(4):  # one message is expected; never loop on a strange reply
            data = sock.recv(RECV_BUFSIZE)
            if len(data) >= NLMSGHDR.size and NLMSGHDR.unpack_from(data, 0)[1] in (NLMSG_DONE, NLMSG_ERROR):
                return
    except OSError:
        pass
    finally:
        sock.settimeout(None)


def iter_messages(buf: bytes | memoryview, seq: int | None = None) -> Iterator[tuple[int, int, int, int]]:
    """Yield (type, flags, payload_offset, payload_end) for each netlink message in `buf`.

    Raises ValueError on a truncated or malformed header, NetlinkError on NLMSG_ERROR.
    """
    end = len(buf)
    off = 0
    unpack = NLMSGHDR.unpack_from
    while off < end:
        if end - off < NLMSGHDR.size:
            raise ValueError(f"truncated netlink header: {end - off} bytes at offset {off}")
        length, mtype, flags, mseq, _pid = unpack(buf, off)
        if length < NLMSGHDR.size or off + length > end:
            raise ValueError(f"bad netlink message length {length} at offset {off} (buffer {end})")
        if seq is not None and mseq != seq:
            off += (length + 3) & ~3
            continue  # a stale reply to an earlier request on this socket
        if mtype == NLMSG_ERROR:
            if length < NLMSGHDR.size + 4:
                raise ValueError("truncated NLMSG_ERROR")
            (err,) = struct.unpack_from("=i", buf, off + NLMSGHDR.size)
            if err != 0:
                raise NetlinkError(-err, f"netlink request failed: {os.strerror(-err)}")
        yield mtype, flags, off + NLMSGHDR.size, off + length
        off += (length + 3) & ~3


class DumpState:
    """What one pass over a dump's buffers learnt besides the payload."""

    __slots__ = ("done", "interrupted")

    def __init__(self) -> None:
        self.done = False
        self.interrupted = False


def dump(sock: socket.socket, request: bytes, consume: Callable[[bytes, DumpState], None]) -> None:
    """Send one dump request and feed every receive buffer to `consume(data, state)`,
    which decodes it in one pass and sets state.done at NLMSG_DONE (and state.interrupted
    on NLM_F_DUMP_INTR). Raises DumpInterrupted after the whole dump was read if the
    kernel flagged it, so that the socket is left clean for the retry."""
    sock.send(request)
    state = DumpState()
    recv = sock.recv
    while not state.done:
        data = recv(RECV_BUFSIZE)
        if not data:
            raise ValueError("netlink socket closed during dump")
        consume(data, state)
    if state.interrupted:
        raise DumpInterrupted("socket tables changed during the dump")


def run_dump(
    get_sock: Callable[[], socket.socket],
    reset_sock: Callable[[], socket.socket],
    request: bytes,
    begin: Callable[[], Callable[[bytes, DumpState], None]],
    retries: int = MAX_DUMP_RETRIES,
) -> None:
    """Run a dump, starting again on NLM_F_DUMP_INTR and on ENOBUFS (after which the
    socket may hold a partial reply, so `reset_sock` makes a new one). `begin()` returns
    a fresh consumer for each attempt, so a retried dump never mixes two attempts."""
    last: Exception | None = None
    for _attempt in range(retries):
        try:
            dump(get_sock(), request, begin())
            return
        except DumpInterrupted as exc:
            last = exc
        except OSError as exc:
            if exc.errno != errno.ENOBUFS:
                raise
            last = exc
            reset_sock()
    raise OSError(errno.EAGAIN, f"sock_diag dump failed {retries} times in a row: {last}")
