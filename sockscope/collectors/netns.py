"""Entering a named network namespace for the calling thread only.

setns(CLONE_NEWNET) moves one thread; sockets made while inside stay bound to that
namespace for life, so callers enter once, make their netlink sockets, and leave.
Python 3.11 has no os.setns, hence ctypes.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"

_libc = ctypes.CDLL(None, use_errno=True)


def netns_path(name: str) -> str:
    """/run/netns/NAME for a name, or the path itself if given one (e.g. /proc/PID/ns/net)."""
    if not name or name in (".", ".."):
        raise ValueError(f"bad network namespace name: {name!r}")
    if name.startswith("/"):
        return name
    if "/" in name:
        raise ValueError(f"bad network namespace name: {name!r}")
    return os.path.join(NETNS_RUN_DIR, name)


def _setns(fd: int, what: str) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        if err == errno.EPERM:
            raise PermissionError(err, f"cannot enter network namespace {what}: not permitted (needs CAP_SYS_ADMIN)")
        raise OSError(err, f"cannot enter network namespace {what}: {os.strerror(err)}")


def open_netns(name: str) -> int:
    path = netns_path(name)
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"no network namespace {name!r} ({path} does not exist)") from None
    except PermissionError:
        raise PermissionError(errno.EACCES, f"cannot open network namespace {name!r} ({path}): permission denied") from None


@contextmanager
def entered(name: str | None) -> Iterator[None]:
    """Run the body with the calling thread in namespace `name` (None: stay where we are)."""
    if name is None:
        yield
        return
    target = open_netns(name)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(target, repr(name))
        try:
            yield
        finally:
            _setns(home, "(returning home)")
    finally:
        os.close(target)
        os.close(home)


@contextmanager
def entered_fd(fd: int | None, what: str = "") -> Iterator[None]:
    """Run the body with the calling thread in the namespace open at `fd` (None: stay).

    Entering by descriptor, not by name, is what makes a namespace's identity its inode:
    a name deleted and re-created meanwhile cannot switch the thread to another one."""
    if fd is None:
        yield
        return
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(fd, what or f"fd {fd}")
        try:
            yield
        finally:
            _setns(home, "(returning home)")
    finally:
        os.close(home)


def namespace_id(name: str | None) -> int:
    """The inode of a namespace: equal inodes mean the same namespace."""
    if name is None:
        return os.stat("/proc/thread-self/ns/net").st_ino
    return os.stat(netns_path(name)).st_ino
