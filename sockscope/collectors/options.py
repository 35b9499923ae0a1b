"""SO_REUSEADDR, SO_REUSEPORT, IPV6_V6ONLY, SO_BINDTODEVICE read from the sockets themselves.

No sock_diag attribute carries the reuse flags, so each socket is duplicated into this
process with pidfd_open + pidfd_getfd (Linux 5.6+, needs ptrace rights over the owner),
read with getsockopt, and the duplicate closed at once: while it is open the socket
stays alive and keeps its port, even if its owner closes it.

Flags are remembered by (proto, cookie): the kernel keeps a socket's cookie when it
enters TIME_WAIT, where there is no fd left to read. What cannot be read stays None.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
from collections.abc import Sequence

from sockscope.model import SocketRecord, with_sources

SYS_PIDFD_OPEN = 434
SYS_PIDFD_GETFD = 438
SOL_SOCKET = socket.SOL_SOCKET
SO_REUSEADDR = socket.SO_REUSEADDR
SO_REUSEPORT = getattr(socket, "SO_REUSEPORT", 15)
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
SO_COOKIE = 57
IPPROTO_IPV6 = socket.IPPROTO_IPV6
IPV6_V6ONLY = socket.IPV6_V6ONLY

# A duplicate keeps the socket alive: if its owner closes it meanwhile, the port stays
# taken and the owner's immediate re-bind fails (issue 9). So each socket is duplicated as
# rarely as possible: once, when first seen, and again only when it enters one of these
# states (a bound socket that starts listening may have had setsockopt calls since).
REREAD_STATES = frozenset({"LISTEN", "UNCONN"})

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


def pidfd_open(pid: int) -> int:
    fd = _syscall(SYS_PIDFD_OPEN, ctypes.c_int(pid), ctypes.c_uint(0))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return fd


def pidfd_getfd(pidfd: int, fd: int) -> int:
    dup = _syscall(SYS_PIDFD_GETFD, ctypes.c_int(pidfd), ctypes.c_int(fd), ctypes.c_uint(0))
    if dup < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return dup


Flags = tuple[bool, bool, bool | None, str | None]  # reuseaddr, reuseport, v6only, device


def read_socket_options(fd: int, family: int) -> tuple[int, Flags]:
    """(cookie, flags) of the socket behind `fd` (a descriptor of our own)."""
    s = socket.socket(fileno=fd)
    try:
        cookie = int.from_bytes(s.getsockopt(SOL_SOCKET, SO_COOKIE, 8), "little")
        ra = s.getsockopt(SOL_SOCKET, SO_REUSEADDR) != 0
        rp = s.getsockopt(SOL_SOCKET, SO_REUSEPORT) != 0
        v6 = s.getsockopt(IPPROTO_IPV6, IPV6_V6ONLY) != 0 if family == 6 else None
        dev = s.getsockopt(SOL_SOCKET, SO_BINDTODEVICE, 16).rstrip(b"\0").decode(errors="replace") or None
    finally:
        s.detach()
    return cookie, (ra, rp, v6, dev)


def set_options(rec: SocketRecord, flags: Flags, source: str) -> None:
    """Set `rec`'s reuse options (and V6ONLY, device where given) and say where they came
    from: "read", "remembered", or "kernel" (collectors/bpf). sock_diag's own V6ONLY wins."""
    ra, rp, v6, dev = flags
    rec.reuseaddr = ra
    rec.reuseport = rp
    src = rec.option_source
    if rec.family == 6 and v6 is not None and (src is None or src.get("v6only") != "diag"):
        rec.v6only = v6
        rec.option_source = with_sources(src, source, source)
    else:
        rec.option_source = with_sources(src, source)
    if rec.device is None and dev is not None:
        rec.device = dev


class OptionReader:
    """Reads and remembers options by (proto, cookie).

    After the first apply(), a socket not present in the previous apply() is left for the
    next one: a socket that lives less than one refresh (a server restarting in a loop,
    a socket between bind() and listen()) is never duplicated, so sockscope cannot keep it
    alive past its owner's close(). The first apply() (one-shot commands) reads all."""

    def __init__(self) -> None:
        self._memory: dict[tuple[str, int], tuple[Flags, str]] = {}  # -> (flags, state read in)
        # cookies of the last apply()'s sockets (unique across protocols: one kernel counter)
        self._previous: set[int] | None = None
        self.read_count = 0  # sockets read by getsockopt in the last apply()
        self.deferred = 0  # sockets first seen in the last apply(), left for the next
        self.denied = 0

    def apply(self, records: Sequence[SocketRecord], complete: bool = True, defer_new: bool = True) -> str | None:
        """Fill the options of `records` in place; return one line on what could not be read.

        `complete` is False when `records` holds only some states (a listening-only refresh):
        the memory of the other sockets must then survive, or the next full refresh would
        re-read every established socket's options. `defer_new=False` reads sockets first
        seen now too, as the first apply() does (a fresh snapshot for a question)."""
        memory = self._memory
        previous = self._previous
        pidfds: dict[int, int | None] = {}
        denied_pids: set[int] = set()
        read = deferred = 0
        unsupported: str | None = None
        reread = REREAD_STATES
        try:
            for rec in records:
                key = (rec.proto, rec.cookie)
                known = memory.get(key)
                flags = known[0] if known is not None else None
                stale = known is None or (known[1] != rec.state and rec.state in reread)
                if rec.owners and unsupported is None and stale:
                    if defer_new and previous is not None and rec.cookie not in previous:
                        deferred += 1  # first seen now: read it if it is still there next time
                    else:
                        got = self._read_one(rec, pidfds, denied_pids)
                        if isinstance(got, str):
                            unsupported = got
                        elif got is not None:
                            memory[key] = (got, rec.state)
                            set_options(rec, got, "read")
                            read += 1
                            continue
                if flags is not None and rec.reuseaddr is None:
                    # A record reused from the last refresh already carries its flags.
                    set_options(rec, flags, "remembered")
        finally:
            for pfd in pidfds.values():
                if pfd is not None:
                    os.close(pfd)
        if complete:
            self._previous = {r.cookie for r in records}
        elif previous is not None:
            self._previous = previous | {r.cookie for r in records}
        if complete and len(memory) > 2 * len(records) + 1024:
            # Forget sockets that are gone, so memory stays bounded on a churning host.
            alive = {(r.proto, r.cookie) for r in records}
            self._memory = {k: v for k, v in memory.items() if k in alive}
        self.read_count = read
        self.deferred = deferred
        self.denied = len(denied_pids)
        if unsupported:
            return unsupported
        if denied_pids:
            who = "not root" if os.geteuid() != 0 else "not permitted (ptrace restrictions)"
            return (
                f"{who}: SO_REUSEADDR/SO_REUSEPORT of sockets owned by {len(denied_pids)} "
                "processes are unknown (reading them needs pidfd_getfd, i.e. ptrace rights over the owner)"
            )
        return None

    def _read_one(self, rec: SocketRecord, pidfds: dict[int, int | None], denied: set[int]) -> Flags | str | None:
        for owner in rec.owners:
            pid = owner.pid
            if pid in pidfds:
                pfd = pidfds[pid]
            else:
                try:
                    pfd = pidfd_open(pid)
                except OSError as exc:
                    if exc.errno == errno.ENOSYS:
                        return "this kernel has no pidfd_open (Linux < 5.3): reuse options are unknown"
                    pfd = None  # exited meanwhile
                pidfds[pid] = pfd
            if pfd is None:
                continue
            try:
                dup = pidfd_getfd(pfd, owner.fd)
            except OSError as exc:
                if exc.errno in (errno.EPERM, errno.EACCES):
                    denied.add(pid)
                elif exc.errno == errno.ENOSYS:
                    return "this kernel has no pidfd_getfd (Linux < 5.6): reuse options are unknown"
                continue  # EBADF: the fd was closed meanwhile
            try:
                cookie, flags = read_socket_options(dup, rec.family)
            except OSError:
                continue  # not a socket any more (fd number reused)
            finally:
                os.close(dup)
            if cookie == rec.cookie or rec.cookie == 0:
                return flags
            # The fd now holds another socket: its flags are not this record's.
        return None
