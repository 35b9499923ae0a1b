"""Acting on the host, only when the user explicitly asks: destroying one socket through
sock_diag (SOCK_DESTROY, what `ss -K` does) and signalling one process through a pidfd.

SOCK_DESTROY names the socket by its exact 4-tuple, interface and cookie; the kernel
refuses with ESTALE when the socket it finds there has another cookie, so a socket that
closed and was replaced meanwhile is never touched. It needs CAP_NET_ADMIN and a kernel
built with CONFIG_INET_DIAG_DESTROY (else EOPNOTSUPP); a TCP socket is aborted like
tcp_abort() does: its peer gets a RST, its owner's next call fails with ECONNABORTED.

Signals go through pidfd_send_signal() on a pidfd opened while the process was seen
holding the selected socket, so a pid reused by another process is never signalled.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import struct

from sockscope.model import SocketRecord

from .netlink import NLMSGHDR, NLM_F_REQUEST, NetlinkError, iter_messages, open_sock_diag
from .netns import entered

SOCK_DESTROY = 21
NLM_F_ACK = 0x04
IPPROTO = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP}
# TCP states as the kernel numbers them, for the request's state mask (every state).
ALL_STATES = 0xFFFFFFFF

REQ_HEAD = struct.Struct("=BBBBI")  # family, protocol, ext, pad, states
SOCKID_PORTS = struct.Struct(">HH")  # sport, dport: big endian
SOCKID_TAIL = struct.Struct("=III")  # if, cookie[0], cookie[1]


class ActionError(OSError):
    """The kernel refused an action: one sentence for people, the errno kept."""


def _raw(family: int, addr: str) -> bytes:
    if family == 4:
        return socket.inet_pton(socket.AF_INET, addr) + bytes(12)
    return socket.inet_pton(socket.AF_INET6, addr)


def destroy_request(rec: SocketRecord, seq: int = 1) -> bytes:
    """The SOCK_DESTROY message naming exactly `rec` (4-tuple, interface, cookie)."""
    fam = socket.AF_INET if rec.family == 4 else socket.AF_INET6
    payload = (
        REQ_HEAD.pack(fam, IPPROTO[rec.proto], 0, 0, ALL_STATES)
        + SOCKID_PORTS.pack(rec.local_port, rec.peer_port)
        + _raw(rec.family, rec.local_addr)
        + _raw(rec.family, rec.peer_addr)
        + SOCKID_TAIL.pack(rec.ifindex, rec.cookie & 0xFFFFFFFF, rec.cookie >> 32)
    )
    return NLMSGHDR.pack(NLMSGHDR.size + len(payload), SOCK_DESTROY, NLM_F_REQUEST | NLM_F_ACK, seq, 0) + payload


REFUSALS = {
    errno.EPERM: "permission denied: destroying a socket needs CAP_NET_ADMIN (run as root)",
    errno.EACCES: "permission denied: destroying a socket needs CAP_NET_ADMIN (run as root)",
    errno.EOPNOTSUPP: "this kernel cannot destroy sockets (built without CONFIG_INET_DIAG_DESTROY, "
    "or no diag module for this protocol)",
    errno.ENOENT: "the socket is gone (closed since it was listed)",
    errno.ESTALE: "a different socket now has that address (the selected one closed): nothing was done",
    errno.EINVAL: "the kernel would not destroy this socket (invalid request for its state)",
}


def destroy_socket(rec: SocketRecord, netns: str | None = None) -> None:
    """Destroy exactly `rec` in namespace `netns`. Raises ActionError with one sentence."""
    if rec.proto not in IPPROTO or not rec.cookie:
        raise ActionError(errno.EINVAL, "only a TCP or UDP socket with a known cookie can be destroyed")
    with entered(netns):
        sock = open_sock_diag(rcvbuf=1 << 16)
    try:
        sock.settimeout(5)
        sock.send(destroy_request(rec))
        data = sock.recv(65536)
        try:
            for _ in iter_messages(data, seq=1):
                pass  # an ACK (NLMSG_ERROR with 0) is success
        except NetlinkError as exc:
            code = exc.errno or 0
            raise ActionError(code, REFUSALS.get(code, f"the kernel refused: {os.strerror(code)}")) from None
    except TimeoutError:
        raise ActionError(errno.ETIMEDOUT, "the kernel did not answer the destroy request") from None
    finally:
        sock.close()


class ProcessHandle:
    """A pidfd for a process that was seen holding a socket: signals go to that process
    and no other, even if its pid is reused after it exits."""

    def __init__(self, pid: int, inode: int | None = None) -> None:
        self.pid = pid
        try:
            self.fd = os.pidfd_open(pid)
        except ProcessLookupError:
            raise ActionError(errno.ESRCH, f"process {pid} is gone") from None
        except OSError as exc:
            raise ActionError(exc.errno or 0, f"cannot open process {pid}: {exc.strerror}") from None
        # The pid was looked up in a snapshot: make sure the process behind the pidfd is
        # still the one holding the selected socket.
        if inode and not self.holds(inode):
            self.close()
            raise ActionError(errno.ESRCH, f"process {pid} no longer holds the selected socket: nothing was done")

    def holds(self, inode: int) -> bool:
        target = f"socket:[{inode}]"
        try:
            for fd in os.listdir(f"/proc/{self.pid}/fd"):
                try:
                    if os.readlink(f"/proc/{self.pid}/fd/{fd}") == target:
                        return True
                except OSError:
                    continue
        except OSError:
            return False
        return False

    def send(self, sig: int) -> None:
        try:
            signal.pidfd_send_signal(self.fd, sig)
        except ProcessLookupError:
            raise ActionError(errno.ESRCH, f"process {self.pid} has already exited") from None
        except PermissionError:
            raise ActionError(errno.EPERM, f"permission denied: cannot signal process {self.pid} "
                                           "(it belongs to another user; run as root)") from None

    def alive(self) -> bool:
        try:
            signal.pidfd_send_signal(self.fd, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True

    def wait_exit(self, timeout: float) -> bool:
        """True once the process has exited (the pidfd becomes readable), within `timeout`."""
        import select

        ready, _, _ = select.select([self.fd], [], [], timeout)
        return bool(ready) or not self.alive()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "ProcessHandle":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_cmdline(pid: int) -> list[str] | None:
    """A process's argv (None when gone or unreadable); the caller sanitizes it."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read(4096)
    except OSError:
        return None
    return [p.decode("utf-8", "surrogateescape") for p in raw.split(b"\0") if p] or None
