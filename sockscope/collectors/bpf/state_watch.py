"""TCP state changes per network namespace, counted in the kernel by a BPF program on the
tracepoint sock:inet_sock_set_state (include/trace/events/sock.h), so that a change which
moves no socket counter (ESTAB -> CLOSE-WAIT when the peer closes, FIN-WAIT-1 ->
FIN-WAIT-2, a SYN-SENT that fails) is seen at the next tick instead of the safety dump.

    counts = acquire(os.stat("/proc/thread-self/ns/net").st_ino)   # BpfUnavailable: why not
    before = counts.read()        # SLOTS u64: [0] every TCP state change, [s] changes to state s
    ...
    counts.close()

Cheap for the host by construction: no event is sent to user space. The program reads the
socket's protocol and its namespace's inode number, looks that inode up in a hash map that
user space fills with the namespaces it watches, and does two atomic adds when it is there.
A state change elsewhere costs one map lookup; user space reads one map value per
namespace per tick (one bpf() call).

One program, map and link serve every watch of a process (a module-level loader with a
count of users per namespace); the last `close()` closes the link, which detaches the
program (nothing stays in the kernel). Every number comes from the running kernel's BTF:
the tracepoint's typedef `btf_trace_inet_sock_set_state` (a BTF-typed raw tracepoint,
"tp_btf": its context is the tracepoint's arguments as an array of u64), struct offsets,
and the helper, program, attach and map type numbers.

The tracepoint fires from inet_sk_state_store / inet_sk_set_state (tcp_set_state and
the child a listener clones in SYN-RECV). A TIME-WAIT mini-socket and a request socket
(NEW_SYN_RECV) are separate objects that never pass through it: a connection entering
TIME-WAIT shows as its full socket's change to CLOSE (ss: UNCONN), counted under that name.
"""

from __future__ import annotations

import errno
import os
import struct
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from sockscope.model import TCP_STATES

from . import btf as btf_mod
from .asm import FP, JGT, JNE, LSH, R0, R1, R2, R3, R6, R7, ADD, Asm
from .btf import Btf, BtfError
from .iterators import BpfUnavailable, may_load_bpf
from .programs import LICENSE
from .syscall import Bpf, BpfError

IPPROTO_TCP = 6
TRACEPOINT = "inet_sock_set_state"
# Per namespace: SLOTS u64 counters, [0] every TCP state change, [s] the changes to state
# s (include/net/tcp_states.h numbers 1..13 today; room up to 15).
SLOTS = 16
VALUE = struct.Struct(f"<{SLOTS}Q")
KEY = struct.Struct("<I")  # the namespace's inode number (net->ns.inum)
MAX_NAMESPACES = 4096  # the map's bound; a watch beyond it runs without state changes
BPF_NOEXIST = 1


class StateWatchUnavailable(BpfUnavailable):
    """The state-change program cannot run here; str() says why in one clause. `lasting`:
    retrying in this process would fail again (rights, kernel, verifier)."""

    def __init__(self, why: str, lasting: bool = True) -> None:
        super().__init__(why)
        self.lasting = lasting


@dataclass(frozen=True, slots=True)
class StateWatchInfo:
    """The running kernel's numbers and offsets the program needs, from its BTF."""

    cmds: dict[str, int]
    prog_type_tracing: int
    attach_raw_tp: int
    map_type_hash: int
    map_lookup_elem: int
    tracepoint_btf_id: int
    sk_protocol: tuple[int, int]  # (byte offset in struct sock, size)
    skc_net: int  # byte offset of sk->__sk_common.skc_net.net (struct net *)
    ns_inum: int  # byte offset of net->ns.inum (u32)

    @classmethod
    def from_btf(cls, btf: Btf) -> StateWatchInfo:
        """Raises StateWatchUnavailable naming what this kernel lacks."""
        try:
            cmds = btf.enum_values("bpf_cmd")
            prog_types = btf.enum_values("bpf_prog_type")
            attach = btf.enum_values("bpf_attach_type")
            maps = btf.enum_values("bpf_map_type")
            funcs = btf.enum_values("bpf_func_id")
        except BtfError as exc:
            raise StateWatchUnavailable(f"the kernel's BTF lacks BPF's enums ({exc})") from None
        need = (("BPF_PROG_TYPE_TRACING", prog_types), ("BPF_TRACE_RAW_TP", attach), ("BPF_MAP_TYPE_HASH", maps),
                ("BPF_FUNC_map_lookup_elem", funcs), ("BPF_RAW_TRACEPOINT_OPEN", cmds))
        for name, table in need:
            if name not in table:
                raise StateWatchUnavailable(f"this kernel has no {name} (BTF-typed tracepoints need Linux 5.5+)")
        try:
            tp = btf.find("btf_trace_" + TRACEPOINT, btf_mod.TYPEDEF)
        except BtfError:
            raise StateWatchUnavailable(f"this kernel has no tracepoint sock:{TRACEPOINT} in its BTF") from None
        try:
            sock = btf.find_struct("sock")
            proto = btf.member(sock, "sk_protocol")
            net = btf.member(sock, "__sk_common.skc_net.net")
            inum = btf.member(btf.find_struct("net"), "ns.inum")
        except BtfError as exc:
            raise StateWatchUnavailable(f"unexpected socket layout on this kernel ({exc})") from None
        proto_size = proto.bits or 8 * btf.size(proto.type_id)
        if proto.offset % 8 or proto_size not in (8, 16):
            # Before Linux 5.6 sk_protocol was an 8-bit bitfield; byte-aligned (as it was
            # on little-endian hosts) it is still one byte load, otherwise give up.
            raise StateWatchUnavailable("sock.sk_protocol is not a whole byte or u16 on this kernel")
        if net.offset % 8 or inum.offset % 8 or btf.size(inum.type_id) != 4:
            raise StateWatchUnavailable("unexpected layout of skc_net or net->ns.inum on this kernel")
        return cls(cmds, prog_types["BPF_PROG_TYPE_TRACING"], attach["BPF_TRACE_RAW_TP"], maps["BPF_MAP_TYPE_HASH"],
                   funcs["BPF_FUNC_map_lookup_elem"], tp, (proto.byte, proto_size // 8), net.byte, inum.byte)


def program(k: StateWatchInfo, map_fd: int) -> bytes:
    """The tp_btf program: ctx is u64[3] = (const struct sock *sk, int oldstate, int newstate).

    Loads through `sk` and the struct net pointer read from it are BTF-typed (the verifier
    turns them into fault-tolerant loads); the new state indexes the map value with a
    bound the verifier can check (1..SLOTS-1, times 8)."""
    a = Asm()
    a.ldx(8, R6, R1, 0)  # sk
    a.ldx(8, R7, R1, 16)  # newstate
    off, size = k.sk_protocol
    a.ldx(size, R2, R6, off).jmp_imm(JNE, R2, IPPROTO_TCP, "out")
    a.ldx(8, R2, R6, k.skc_net).jeq_imm(R2, 0, "out")
    a.ldx(4, R3, R2, k.ns_inum).stx(4, FP, -4, R3)
    a.ld_map_fd(R1, map_fd)
    a.mov(R2, FP).add_imm(R2, -4)
    a.call(k.map_lookup_elem)
    a.jeq_imm(R0, 0, "out")  # a namespace nobody watches
    a.mov_imm(R1, 1)
    a.atomic_add(8, R0, 0, R1)
    a.jeq_imm(R7, 0, "out")
    a.jmp_imm(JGT, R7, SLOTS - 1, "out")
    a.alu_imm(LSH, R7, 3)
    a.alu(ADD, R0, R7)
    a.atomic_add(8, R0, 0, R1)
    a.label("out")
    a.mov_imm(R0, 0)
    a.exit()
    return a.assemble()


class StateProgram:
    """The loaded program, its map and its link (owned by the module-level loader)."""

    def __init__(self, info: StateWatchInfo) -> None:
        self.bpf = Bpf(info.cmds)
        self.map_fd = self.bpf.map_create(info.map_type_hash, KEY.size, VALUE.size, MAX_NAMESPACES, "sockscope_state")
        try:
            prog = self.bpf.prog_load(info.prog_type_tracing, program(info, self.map_fd), LICENSE,
                                      expected_attach_type=info.attach_raw_tp, attach_btf_id=info.tracepoint_btf_id,
                                      name="sockscope_state")
            try:
                self.link_fd = self.bpf.raw_tracepoint_open(prog)
            finally:
                os.close(prog)  # the link keeps the program
        except BaseException:
            os.close(self.map_fd)
            raise

    def add(self, inode: int) -> None:
        self.bpf.map_update(self.map_fd, KEY.pack(inode), bytes(VALUE.size), BPF_NOEXIST)

    def remove(self, inode: int) -> None:
        self.bpf.map_delete(self.map_fd, KEY.pack(inode))

    def read(self, inode: int) -> tuple[int, ...]:
        raw = self.bpf.map_lookup(self.map_fd, KEY.pack(inode), VALUE.size)
        if raw is None:
            raise StateWatchUnavailable(f"namespace {inode} is not in the state-change map")
        return VALUE.unpack(raw)

    def close(self) -> None:
        for fd in (self.link_fd, self.map_fd):
            try:
                os.close(fd)
            except OSError:
                pass


# The process's one program, and how many watches use each namespace's entry.
_lock = threading.Lock()
_program: StateProgram | None = None
_users: dict[int, int] = {}
_refused: str | None = None  # a lasting refusal (rights, kernel), not retried by every watch


class StateCounts:
    """One watch's handle on a namespace's counters; `close()` once."""

    def __init__(self, prog: StateProgram, inode: int) -> None:
        self._prog: StateProgram | None = prog
        self.inode = inode

    def read(self) -> tuple[int, ...]:
        """SLOTS counters since the namespace was added: [0] all, [s] to state s."""
        with _lock:
            if self._prog is None or self._prog is not _program:
                raise StateWatchUnavailable("the state-change program was closed")
            return self._prog.read(self.inode)

    @property
    def link_fd(self) -> int | None:
        return self._prog.link_fd if self._prog is not None else None

    def close(self) -> None:
        global _program
        with _lock:
            prog, self._prog = self._prog, None
            if prog is None or prog is not _program:
                return  # already closed, or inherited through fork()
            left = _users.get(self.inode, 1) - 1
            if left > 0:
                _users[self.inode] = left
            else:
                _users.pop(self.inode, None)
                try:
                    prog.remove(self.inode)
                except BpfError:
                    pass
            if not _users:
                prog.close()  # closing the link detaches the program
                _program = None

    def __enter__(self) -> StateCounts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def acquire(inode: int, btf_path: str = btf_mod.VMLINUX) -> StateCounts:
    """Count the TCP state changes of the namespace with this inode number, loading the
    shared program on first use. Raises StateWatchUnavailable (one clause: why)."""
    global _program, _refused
    with _lock:
        if _refused is not None:
            raise StateWatchUnavailable(_refused)
        if _program is None:
            try:
                _program = _load(btf_path)
            except StateWatchUnavailable as exc:
                if exc.lasting:
                    _refused = str(exc)
                raise
        prog = _program
        if inode not in _users:
            try:
                prog.add(inode)
            except BpfError as exc:
                if not _users:
                    prog.close()
                    _program = None
                if exc.errno == errno.E2BIG:
                    raise StateWatchUnavailable(f"more than {MAX_NAMESPACES} namespaces watched") from None
                if exc.errno != errno.EEXIST:
                    why = f"cannot add the namespace to the state-change map: {exc.strerror}"
                    raise StateWatchUnavailable(why) from None
        _users[inode] = _users.get(inode, 0) + 1
        return StateCounts(prog, inode)


def _load(btf_path: str) -> StateProgram:
    if not may_load_bpf():
        raise StateWatchUnavailable(explain(BpfError(errno.EPERM, "bpf")))
    if sys.byteorder != "little":
        raise StateWatchUnavailable("big-endian hosts are not supported")
    try:
        btf = btf_mod.load(btf_path)
    except FileNotFoundError:
        raise StateWatchUnavailable("no kernel BTF (/sys/kernel/btf/vmlinux; CONFIG_DEBUG_INFO_BTF)") from None
    except (OSError, BtfError) as exc:
        raise StateWatchUnavailable(f"cannot read the kernel's BTF: {exc}") from None
    try:
        info = StateWatchInfo.from_btf(btf)
    except BtfError as exc:  # a malformed record met on the way
        raise StateWatchUnavailable(f"cannot read the kernel's BTF: {exc}") from None
    try:
        return StateProgram(info)
    except BpfError as exc:
        # Out of memory or descriptors passes; rights, lockdown and the verifier do not.
        passing = exc.errno in (errno.ENOMEM, errno.EMFILE, errno.ENFILE, errno.EAGAIN)
        raise StateWatchUnavailable(explain(exc), lasting=not passing) from None


def explain(exc: BpfError) -> str:
    """One clause for a failed load or attach."""
    if exc.errno == errno.EPERM:
        if os.geteuid() != 0:
            return "not root and no CAP_BPF+CAP_PERFMON to load a BPF program"
        if not may_load_bpf():
            return "root without CAP_BPF+CAP_PERFMON (capabilities dropped) cannot load a BPF program"
        return "bpf() refused (EPERM: capabilities dropped, a seccomp filter or lockdown)"
    if exc.errno == errno.ENOSYS:
        return "bpf() is not available (ENOSYS: no CONFIG_BPF_SYSCALL, or filtered)"
    if exc.errno in (errno.EINVAL, errno.EACCES) and exc.log:
        lines = [ln for ln in exc.log.strip().splitlines() if ln.strip() and not ln.startswith("processed ")]
        last = lines[-1:] or [""]
        return f"the kernel refused sockscope's state-change program ({last[0][:120]})"
    return f"cannot load the state-change program: {exc.strerror or exc}"


def named(counts: Sequence[int]) -> dict[str, int]:
    """Changes per new state by ss's state names (from a difference of two reads; slot 0,
    the total, is left out). States that share a name (two SYN-RECV, two UNCONN) add up."""
    out: dict[str, int] = {}
    for state in range(1, min(len(counts), SLOTS)):
        n = counts[state]
        if n:
            name = TCP_STATES.get(state, f"UNKNOWN-{state}")
            out[name] = out.get(name, 0) + n
    return out


def difference(now: Sequence[int], before: Sequence[int]) -> tuple[int, ...]:
    return tuple(a - b for a, b in zip(now, before))


def _forget_in_child() -> None:
    """A forked child must not close the parent's entries or count as their user: drop
    its copies of the descriptors and start afresh."""
    global _program, _refused, _lock
    _lock = threading.Lock()
    if _program is not None:
        _program.close()
    _program = None
    _users.clear()
    _refused = None


os.register_at_fork(after_in_child=_forget_in_child)

__all__ = ["SLOTS", "StateCounts", "StateWatchInfo", "StateWatchUnavailable", "acquire", "difference", "named",
           "program"]
