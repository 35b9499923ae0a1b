"""Make bpf(2) fail with EPERM in the calling process (a seccomp filter, as container
runtimes install): for testing sockscope's fallback when bpf() is refused."""

from __future__ import annotations

import ctypes
import errno
import struct

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15
BPF_RET_K = 0x06


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def refuse_bpf(nr: int) -> None:
    """Install a filter: syscall `nr` (bpf) returns EPERM, everything else is allowed."""
    insns = [
        (BPF_LD_W_ABS, 0, 0, 0),  # A = seccomp_data.nr
        (BPF_JEQ_K, 0, 1, nr),
        (BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.EPERM),
        (BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
    ]
    raw = b"".join(struct.pack("<HBBI", *i) for i in insns)
    buf = ctypes.create_string_buffer(raw, len(raw))
    prog = _SockFprog(len(insns), ctypes.addressof(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP")
