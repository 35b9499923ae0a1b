"""Pinning the iterator links in a bpffs so that users without CAP_BPF can read flags.

A pinned iterator link is a file: open() + read() runs the iterator over the opener's own
network namespace, with no capability needed beyond the file's mode. sockscope pins its
links read-only (0444) under PIN_DIR; `sockscope bpf unpin` removes them. The records
carry what /proc/net/tcp and /proc/net/udp already show to every user (addresses, ports,
states, uids, cookies) plus each socket's reuse flags, bound device and the TCP ports'
bind-bucket fast-path state; no kernel addresses (the bucket's fast_* fields, which hold
stale bytes unless fastreuseport > 0, are copied only then).
"""

from __future__ import annotations

import ctypes
import errno
import os

from .iterators import PIN_DIR, PROTOS, SocketIterators, pin_name
from .syscall import Bpf

BPF_FS_MAGIC = 0xCAFE4A11
_libc = ctypes.CDLL(None, use_errno=True)


class PinError(Exception):
    """Pinning failed; str() is one sentence for users."""


def _statfs_type(path: str) -> int | None:
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit
    if _libc.statfs(os.fsencode(path), buf) != 0:
        return None
    return int.from_bytes(buf.raw[:8], "little") if ctypes.sizeof(ctypes.c_long) == 8 else int.from_bytes(buf.raw[:4], "little")


def is_bpffs(path: str) -> bool:
    return _statfs_type(path) == BPF_FS_MAGIC


def mount_bpffs(path: str) -> None:
    if _libc.mount(b"bpf", os.fsencode(path), b"bpf", 0, None) != 0:
        err = ctypes.get_errno()
        raise PinError(f"cannot mount a bpffs at {path}: {os.strerror(err)}")


def pin(pin_dir: str = PIN_DIR) -> tuple[list[str], list[str]]:
    """Load the iterators and pin their links in `pin_dir`; returns (paths, notes).
    Mounts a bpffs at the parent directory if none is there (the user asked to pin)."""
    notes: list[str] = []
    parent = os.path.dirname(pin_dir.rstrip("/")) or "/"
    if not is_bpffs(parent):
        if not os.path.isdir(parent):
            raise PinError(f"{parent} does not exist")
        mount_bpffs(parent)
        notes.append(f"mounted a bpffs at {parent}")
    its = SocketIterators.open(pin_dir="/nonexistent", allow_load=True)
    try:
        if its.source != "loaded":
            raise PinError("could not load the iterators to pin them")
        try:
            os.mkdir(pin_dir, 0o755)
        except FileExistsError:
            pass
        os.chmod(pin_dir, 0o755)
        bpf = Bpf(its.kernel.cmds)
        paths = []
        for proto in PROTOS:
            fd = its.link_fd(proto)
            if fd is None:
                continue
            path = os.path.join(pin_dir, pin_name(proto))
            try:
                os.unlink(path)  # re-pin: replace an older pin of the same layout
            except FileNotFoundError:
                pass
            bpf.obj_pin(fd, path)
            os.chmod(path, 0o444)
            paths.append(path)
    finally:
        its.close()  # the pins keep the links alive
    mode = os.stat(parent).st_mode
    if not mode & 0o001:
        notes.append(f"{parent} is mode {mode & 0o7777:o}: other users cannot reach the pins until it is "
                     "searchable (chmod o+x)")
    return paths, notes


def unpin(pin_dir: str = PIN_DIR) -> list[str]:
    removed: list[str] = []
    if not os.path.isdir(pin_dir):
        return removed
    for name in sorted(os.listdir(pin_dir)):
        proto, _, version = name.partition("_v")
        if proto in PROTOS and version.isdigit():
            os.unlink(os.path.join(pin_dir, name))
            removed.append(os.path.join(pin_dir, name))
    try:
        os.rmdir(pin_dir)
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.ENOENT):
            raise
    return removed


__all__ = ["PinError", "is_bpffs", "pin", "unpin"]
