"""bpf(2) through ctypes: the few commands sockscope uses, with typed errors.

Command numbers come from the kernel's own `enum bpf_cmd` (BTF); only the syscall number
depends on the architecture. Every descriptor returned is O_CLOEXEC (the kernel sets it).
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform

# bpf(2) syscall numbers (arch/*/…/syscall*.tbl)
_SYSCALL_NR = {
    "x86_64": 321, "aarch64": 280, "arm64": 280, "riscv64": 280, "loongarch64": 280,
    "i386": 357, "i686": 357, "armv7l": 386, "armv6l": 386, "ppc64le": 361, "ppc64": 361,
    "s390x": 351, "mips64": 5315,
}

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


class BpfError(OSError):
    """bpf() failed. `log` holds the verifier's log for a refused program load."""

    def __init__(self, err: int, what: str, log: str = "") -> None:
        super().__init__(err, f"{what}: {os.strerror(err)}")
        self.log = log


def syscall_number() -> int:
    machine = platform.machine()
    nr = _SYSCALL_NR.get(machine)
    if nr is None:
        raise BpfError(errno.ENOSYS, f"bpf() syscall number unknown for {machine}")
    return nr


def bpf(cmd: int, attr: ctypes.Array | bytearray, what: str) -> int:
    """Run bpf(cmd, attr); returns the result (often a new fd) or raises BpfError."""
    buf = attr if isinstance(attr, ctypes.Array) else (ctypes.c_char * len(attr)).from_buffer(attr)
    ret = _syscall(ctypes.c_long(syscall_number()), ctypes.c_int(cmd), buf, ctypes.c_uint(len(attr)))
    if ret < 0:
        raise BpfError(ctypes.get_errno(), what)
    return int(ret)


def _addr(obj: ctypes.Array) -> int:
    return ctypes.addressof(obj)


class Bpf:
    """bpf() commands, numbered from the running kernel's `enum bpf_cmd`."""

    def __init__(self, cmds: dict[str, int]) -> None:
        self.cmds = cmds

    def _cmd(self, name: str) -> int:
        try:
            return self.cmds[name]
        except KeyError:
            raise BpfError(errno.ENOSYS, f"this kernel has no {name}") from None

    def prog_load(self, prog_type: int, insns: bytes, license: str, *, expected_attach_type: int = 0,
                  attach_btf_id: int = 0, name: str = "", log_size: int = 1 << 20) -> int:
        insn_buf = ctypes.create_string_buffer(insns, len(insns))
        lic = ctypes.create_string_buffer(license.encode())
        attr = bytearray(128)
        log = ctypes.create_string_buffer(log_size)
        ctypes_pack(attr, 0, "<II", prog_type, len(insns) // 8)
        ctypes_pack(attr, 8, "<QQ", _addr(insn_buf), _addr(lic))
        ctypes_pack(attr, 48, "16s", name.encode()[:15])
        ctypes_pack(attr, 68, "<I", expected_attach_type)
        ctypes_pack(attr, 108, "<I", attach_btf_id)
        try:
            return bpf(self._cmd("BPF_PROG_LOAD"), attr, f"loading BPF program {name}")
        except BpfError as exc:
            if exc.errno not in (errno.EACCES, errno.EINVAL):
                raise
        # Refused by the verifier: load again with a log for the reason.
        ctypes_pack(attr, 24, "<II", 1, log_size)
        ctypes_pack(attr, 32, "<Q", _addr(log))
        try:
            return bpf(self._cmd("BPF_PROG_LOAD"), attr, f"loading BPF program {name}")
        except BpfError as exc:
            text = log.value.decode(errors="replace")
            raise BpfError(exc.errno or errno.EINVAL, f"loading BPF program {name}", text) from None

    def link_create_iter(self, prog_fd: int, attach_type: int) -> int:
        attr = bytearray(64)
        ctypes_pack(attr, 0, "<IIII", prog_fd, 0, attach_type, 0)
        return bpf(self._cmd("BPF_LINK_CREATE"), attr, "creating BPF iterator link")

    def iter_create(self, link_fd: int) -> int:
        attr = bytearray(16)
        ctypes_pack(attr, 0, "<II", link_fd, 0)
        return bpf(self._cmd("BPF_ITER_CREATE"), attr, "creating BPF iterator")

    def raw_tracepoint_open(self, prog_fd: int) -> int:
        """Attach a BTF-typed tracepoint program (tp_btf: its attach_btf_id names the
        tracepoint, so the name is NULL); returns the link fd, whose close detaches it."""
        attr = bytearray(24)
        ctypes_pack(attr, 0, "<QII", 0, prog_fd, 0)
        return bpf(self._cmd("BPF_RAW_TRACEPOINT_OPEN"), attr, "attaching BPF tracepoint program")

    def map_create(self, map_type: int, key_size: int, value_size: int, max_entries: int, name: str = "") -> int:
        attr = bytearray(72)
        ctypes_pack(attr, 0, "<IIIII", map_type, key_size, value_size, max_entries, 0)
        ctypes_pack(attr, 28, "16s", name.encode()[:15])
        return bpf(self._cmd("BPF_MAP_CREATE"), attr, f"creating BPF map {name}")

    def _map_elem(self, cmd: str, map_fd: int, key: bytes, value: ctypes.Array | None, flags: int = 0,
                  missing_ok: bool = False) -> bool:
        """Run a map element command on `key`; False (not an error) for ENOENT when
        `missing_ok`: no such key."""
        key_buf = ctypes.create_string_buffer(key, len(key))
        attr = bytearray(32)
        ctypes_pack(attr, 0, "<IIQQQ", map_fd, 0, _addr(key_buf), _addr(value) if value is not None else 0, flags)
        try:
            bpf(self._cmd(cmd), attr, f"{cmd} on a BPF map")
        except BpfError as exc:
            if missing_ok and exc.errno == errno.ENOENT:
                return False
            raise
        return True

    def map_update(self, map_fd: int, key: bytes, value: bytes, flags: int = 0) -> None:
        """flags: 0 = BPF_ANY, 1 = BPF_NOEXIST, 2 = BPF_EXIST."""
        self._map_elem("BPF_MAP_UPDATE_ELEM", map_fd, key, ctypes.create_string_buffer(value, len(value)), flags)

    def map_lookup(self, map_fd: int, key: bytes, value_size: int) -> bytes | None:
        """The value under `key`, or None when there is none (ENOENT)."""
        out = ctypes.create_string_buffer(value_size)
        return out.raw if self._map_elem("BPF_MAP_LOOKUP_ELEM", map_fd, key, out, missing_ok=True) else None

    def map_delete(self, map_fd: int, key: bytes) -> bool:
        """False when there was no such key."""
        return self._map_elem("BPF_MAP_DELETE_ELEM", map_fd, key, None, missing_ok=True)

    def fd_by_id(self, kind: str, obj_id: int) -> int:
        """A new fd for the program, map or link with this id (kind "PROG", "MAP", "LINK");
        BpfError ENOENT when the kernel has freed it."""
        attr = bytearray(12)
        ctypes_pack(attr, 0, "<III", obj_id, 0, 0)
        return bpf(self._cmd(f"BPF_{kind}_GET_FD_BY_ID"), attr, f"getting BPF {kind.lower()} {obj_id}")

    def obj_pin(self, fd: int, path: str) -> None:
        p = ctypes.create_string_buffer(os.fsencode(path))
        attr = bytearray(24)
        ctypes_pack(attr, 0, "<QII", _addr(p), fd, 0)
        bpf(self._cmd("BPF_OBJ_PIN"), attr, f"pinning at {path}")


def ctypes_pack(buf: bytearray, offset: int, fmt: str, *values: object) -> None:
    import struct

    struct.pack_into(fmt, buf, offset, *values)


def read_all(fd: int, chunk: int = 1 << 20) -> bytes:
    """Read an iterator descriptor to its end."""
    parts = []
    buf = bytearray(chunk)
    view = memoryview(buf)
    while True:
        n = os.readv(fd, [view])
        if n <= 0:
            break
        parts.append(bytes(view[:n]))
    return b"".join(parts)
