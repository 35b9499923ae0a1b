"""Socket owners at kernel speed: a BPF task-file iterator (iter/task_file) that emits
(pid, fd, inode) for every socket descriptor of every process, in one read, replacing the
per-descriptor readlink scan of /proc/*/fd where BPF is available (owners.py keeps the
scan as the fallback).

The iterator walks the processes of the caller's PID namespace, one fd table per process
(threads sharing their process's table are skipped by the kernel), like /proc/*/fd.
A file is a socket when its inode's mode is S_IFSOCK; the inode number is the one
sock_diag reports (idiag_inode) and /proc/PID/fd shows as socket:[N].
"""

from __future__ import annotations

import os
import struct

from . import btf as btf_mod
from .asm import AND, FP, JNE, R1, R2, R3, R6, R7, R8, R9, Asm
from .btf import BtfError
from .iterators import BpfUnavailable, may_load_bpf
from .programs import LICENSE, KernelInfo, emit_record
from .syscall import Bpf, BpfError, read_all

S_IFMT, S_IFSOCK = 0o170000, 0o140000
RECORD = struct.Struct("<IIQ")  # tgid, fd, inode
# The iterator holds a reference on each file while it runs the program; if the owner
# closes that fd meanwhile, ours becomes the last reference and the file (the socket, and
# its port) is released only when our read() returns to user space. Short reads keep that
# window short (measured with benchmarks/bench_restart_storm.py).
READ_CHUNK = 4096


def _program(k: KernelInfo, btf: btf_mod.Btf) -> tuple[bytes, int]:
    try:
        btf_id = btf.find("bpf_iter_task_file", btf_mod.FUNC)
        o = {
            "meta": btf.offset_of("bpf_iter__task_file", "meta"),
            "task": btf.offset_of("bpf_iter__task_file", "task"),
            "fd": btf.offset_of("bpf_iter__task_file", "fd"),
            "file": btf.offset_of("bpf_iter__task_file", "file"),
            "f_inode": btf.offset_of("file", "f_inode"),
            "i_mode": btf.offset_of("inode", "i_mode"),
            "i_ino": btf.offset_of("inode", "i_ino"),
            "tgid": btf.offset_of("task_struct", "tgid"),
        }
    except BtfError as exc:
        raise BpfUnavailable(f"no BPF task-file iterator on this kernel ({exc})") from None
    base = -RECORD.size
    a = Asm()
    a.mov(R6, R1)
    a.ldx(8, R9, R6, o["meta"])
    a.ldx(8, R7, R6, o["task"]).jeq_imm(R7, 0, "out")
    a.ldx(8, R8, R6, o["file"]).jeq_imm(R8, 0, "out")
    a.ldx(8, R1, R8, o["f_inode"]).jeq_imm(R1, 0, "out")
    a.ldx(2, R2, R1, o["i_mode"]).alu_imm(AND, R2, S_IFMT).jmp_imm(JNE, R2, S_IFSOCK, "out")
    a.ldx(8, R3, R1, o["i_ino"]).stx(8, FP, base + 8, R3)
    a.ldx(4, R2, R7, o["tgid"]).stx(4, FP, base, R2)
    a.ldx(4, R2, R6, o["fd"]).stx(4, FP, base + 4, R2)
    emit_record(a, k, RECORD.size, base)
    return a.assemble(), btf_id


class TaskFiles:
    """The loaded task-file iterator; read() -> {pid: {fd: inode}} for socket fds."""

    def __init__(self) -> None:
        if not may_load_bpf():
            raise BpfUnavailable("no CAP_BPF+CAP_PERFMON: owners come from /proc/*/fd")
        try:
            btf = btf_mod.load()
            k = KernelInfo.from_btf(btf)
        except (OSError, BtfError) as exc:
            raise BpfUnavailable(f"no kernel BTF for the task-file iterator ({exc})") from None
        code, btf_id = _program(k, btf)
        self._bpf = Bpf(k.cmds)
        try:
            prog = self._bpf.prog_load(k.prog_type_tracing, code, LICENSE, expected_attach_type=k.attach_trace_iter,
                                       attach_btf_id=btf_id, name="sockscope_files")
        except BpfError as exc:
            raise BpfUnavailable(f"cannot load the BPF task-file iterator: {exc.strerror or exc}") from None
        try:
            self._link: int | None = self._bpf.link_create_iter(prog, k.attach_trace_iter)
        except BpfError as exc:
            raise BpfUnavailable(f"cannot attach the BPF task-file iterator: {exc.strerror or exc}") from None
        finally:
            os.close(prog)

    def read(self, chunk: int = READ_CHUNK) -> dict[int, dict[int, int]]:
        if self._link is None:
            raise BpfUnavailable("task-file iterator closed")
        fd = self._bpf.iter_create(self._link)
        try:
            data = read_all(fd, chunk)
        finally:
            os.close(fd)
        out: dict[int, dict[int, int]] = {}
        for tgid, num, inode in RECORD.iter_unpack(data[: len(data) - len(data) % RECORD.size]):
            fds = out.get(tgid)
            if fds is None:
                fds = out[tgid] = {}
            fds[num] = inode
        return out

    def close(self) -> None:
        if self._link is not None:
            os.close(self._link)
            self._link = None


class TaskFileOwners:
    """The fd source owners.OwnerIndex calls instead of scanning /proc/*/fd (the index
    makes the owners from it): one iterator read, or None (then the /proc scan runs).
    The iterator is loaded on first use; a refusal or a failed read is remembered and not
    retried until close(), which releases it: a later call loads it again (a Collector
    closes its own when its namespace was re-created, then reads on)."""

    def __init__(self) -> None:
        self._files: TaskFiles | None = None
        self._tried = False
        self.unavailable: str | None = None

    def __call__(self) -> dict[int, dict[int, int]] | None:
        """pid -> {fd: socket inode} for every process, from one iterator read; None =
        unavailable (then OwnerIndex scans /proc)."""
        if not self._tried:
            self._tried = True
            try:
                self._files = TaskFiles()
            except BpfUnavailable as exc:
                self.unavailable = str(exc)
        if self._files is None:
            return None
        try:
            return self._files.read()
        except (OSError, BpfUnavailable) as exc:
            self.unavailable = f"the BPF task-file iterator failed: {exc}"
            self._release()
            return None

    def _release(self) -> None:
        if self._files is not None:
            self._files.close()
            self._files = None

    def close(self) -> None:
        self._release()
        self._tried = False
        self.unavailable = None
