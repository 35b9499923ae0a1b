"""The state-change program's generator, its BTF lookups on hand-built blobs, the shared
loader's reference counts (with a stand-in program) and the naming of counts: no root."""

from __future__ import annotations

import errno
import struct

import pytest

from sockscope.collectors.bpf import asm as A
from sockscope.collectors.bpf import btf as B
from sockscope.collectors.bpf import state_watch as SW
from sockscope.collectors.bpf.syscall import BpfError

from .test_btf import Blob

INSN = struct.Struct("<BBhi")


def _blob(tracepoint: bool = True, protocol_bits: int = 0, protocol_shift: int = 0) -> bytes:
    b = Blob()
    u16 = b.int_("short unsigned int", 2)
    u32 = b.int_("unsigned int", 4)
    ns_common = b.struct_("ns_common", 24, [("stashed", u32, 0, 0), ("inum", u32, 16 * 8, 0)])
    net = b.struct_("net", 256, [("passive", u32, 0, 0), ("ns", ns_common, 160 * 8, 0)])
    net_ptr = b.add("", B.PTR, 0, net)
    possible = b.struct_("", 8, [("net", net_ptr, 0, 0)])
    possible_t = b.add("possible_net_t", B.TYPEDEF, 0, possible)
    sc = b.struct_("sock_common", 136, [("skc_family", u16, 16 * 8, 0), ("skc_net", possible_t, 48 * 8, 0)])
    proto = ("sk_protocol", u16, 532 * 8, 0)
    if protocol_bits:  # Linux < 5.6: `unsigned int sk_protocol:8` among other bitfields
        proto = ("sk_protocol", u32, 532 * 8 + protocol_shift, protocol_bits)
    b.struct_("sock", 760, [("__sk_common", sc, 0, 0), proto])
    if tracepoint:
        b.add("btf_trace_inet_sock_set_state", B.TYPEDEF, 0, net_ptr)
    b.enum("bpf_cmd", {"BPF_MAP_CREATE": 0, "BPF_PROG_LOAD": 5, "BPF_RAW_TRACEPOINT_OPEN": 17})
    b.enum("bpf_prog_type", {"BPF_PROG_TYPE_TRACING": 26})
    b.enum("bpf_attach_type", {"BPF_TRACE_RAW_TP": 23})
    b.enum("bpf_map_type", {"BPF_MAP_TYPE_HASH": 1})
    b.enum("bpf_func_id", {"BPF_FUNC_map_lookup_elem": 1})
    return b.bytes()


def test_numbers_and_offsets_come_from_btf() -> None:
    k = SW.StateWatchInfo.from_btf(B.Btf(_blob()))
    assert (k.prog_type_tracing, k.attach_raw_tp, k.map_type_hash, k.map_lookup_elem) == (26, 23, 1, 1)
    assert k.sk_protocol == (532, 2)
    assert k.skc_net == 48  # through the possible_net_t typedef and its anonymous struct
    assert k.ns_inum == 176
    assert k.tracepoint_btf_id > 0


@pytest.mark.parametrize("blob, message", [
    (_blob(tracepoint=False), "no tracepoint sock:inet_sock_set_state"),
    (_blob(protocol_bits=8, protocol_shift=4), "not a whole byte"),
])
def test_a_kernel_without_what_the_program_needs_says_what(blob, message) -> None:
    with pytest.raises(SW.StateWatchUnavailable, match=message):
        SW.StateWatchInfo.from_btf(B.Btf(blob))


def test_a_byte_aligned_protocol_bitfield_is_one_byte_load() -> None:
    k = SW.StateWatchInfo.from_btf(B.Btf(_blob(protocol_bits=8)))
    assert k.sk_protocol == (532, 1)


def _decode(code: bytes) -> list[tuple[int, int, int, int, int]]:
    return [(op, regs & 0xF, regs >> 4, off, imm) for op, regs, off, imm in INSN.iter_unpack(code)]


def test_program_filters_tcp_looks_up_the_namespace_and_adds_atomically() -> None:
    k = SW.StateWatchInfo.from_btf(B.Btf(_blob()))
    insns = _decode(SW.program(k, map_fd=7))
    ops = [i[0] for i in insns]
    # ctx is u64[3]: sk and newstate are 8-byte loads at 0 and 16
    assert insns[0] == (A.LDX | A.MEM | A.DW, A.R6, A.R1, 0, 0)
    assert insns[1] == (A.LDX | A.MEM | A.DW, A.R7, A.R1, 16, 0)
    # sk_protocol: a 2-byte load, compared with IPPROTO_TCP
    assert insns[2] == (A.LDX | A.MEM | A.H, A.R2, A.R6, 532, 0)
    assert insns[3][0] == A.JMP | A.JNE | A.K and insns[3][4] == 6
    # the map: a two-slot 64-bit immediate load of the fd, marked as a map fd
    at = ops.index(A.LD | A.DW | A.IMM)
    assert insns[at][2] == A.PSEUDO_MAP_FD and insns[at][4] == 7 and insns[at + 1] == (0, 0, 0, 0, 0)
    assert (A.JMP | A.CALL, 0, 0, 0, 1) in insns  # bpf_map_lookup_elem
    adds = [i for i in insns if i[0] == A.STX | A.ATOMIC | A.DW]
    assert len(adds) == 2 and all(i[4] == A.ADD for i in adds)  # the total, then the state's slot
    # the state index is bounded before it becomes an offset: newstate <= SLOTS - 1, times 8
    bound = ops.index(A.JMP | A.JGT | A.K)
    assert insns[bound][4] == SW.SLOTS - 1
    assert insns[bound + 1] == (A.ALU64 | A.LSH | A.K, A.R7, 0, 0, 3)
    assert insns[-1][0] == A.JMP | A.EXIT
    # every jump lands inside the program
    for n, (op, _d, _s, off, _imm) in enumerate(insns):
        if op & 0x07 == A.JMP and op not in (A.JMP | A.CALL, A.JMP | A.EXIT):
            assert 0 <= n + 1 + off < len(insns)


def test_assembler_atomic_add_and_map_load_encoding() -> None:
    a = A.Asm().ld_map_fd(A.R1, 3).label("x").atomic_add(4, A.R0, 8, A.R1).ja("x")
    code = a.assemble()
    assert code[:16] == INSN.pack(0x18, (1 << 4) | 1, 0, 3) + bytes(8)
    assert code[16:24] == INSN.pack(0xC3, (1 << 4) | 0, 8, 0)
    assert INSN.unpack(code[24:32])[2] == -2  # labels count the two slots of the map load
    with pytest.raises(A.AsmError):
        A.Asm().atomic_add(2, A.R0, 0, A.R1)


def test_counts_are_named_as_ss_names_states() -> None:
    before = (10,) + (0,) * 15
    now = list(before)
    now[0] += 9
    for state, n in ((1, 2), (3, 1), (12, 1), (7, 2), (13, 1), (8, 1), (15, 1)):
        now[state] += n
    delta = SW.difference(now, before)
    assert delta[0] == 9
    # TCP_SYN_RECV and TCP_NEW_SYN_RECV are both SYN-RECV; TCP_CLOSE and BOUND_INACTIVE UNCONN
    assert SW.named(delta) == {"ESTAB": 2, "SYN-RECV": 2, "UNCONN": 3, "CLOSE-WAIT": 1, "UNKNOWN-15": 1}


def test_explanations_are_one_clause() -> None:
    log = "0: R1=ctx()\nR2 invalid mem access 'scalar'\nprocessed 12 insns (limit 1000000)\n"
    why = SW.explain(BpfError(errno.EACCES, "loading", log))
    assert why == "the kernel refused sockscope's state-change program (R2 invalid mem access 'scalar')"
    assert "ENOSYS" in SW.explain(BpfError(errno.ENOSYS, "bpf"))
    assert "\n" not in SW.explain(BpfError(errno.EIO, "bpf"))


class FakeProgram:
    """Stands in for the loaded program: records what the loader asks of it."""

    def __init__(self) -> None:
        self.entries: dict[int, tuple[int, ...]] = {}
        self.closed = False
        self.link_fd = -1

    def add(self, inode: int) -> None:
        if inode in self.entries:
            raise BpfError(errno.EEXIST, "update")
        self.entries[inode] = (0,) * SW.SLOTS

    def remove(self, inode: int) -> None:
        del self.entries[inode]

    def read(self, inode: int) -> tuple[int, ...]:
        return self.entries[inode]

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def loader(monkeypatch):
    made: list[FakeProgram] = []
    failures: list[SW.StateWatchUnavailable] = []

    def load(_path: str) -> FakeProgram:
        if failures:
            raise failures.pop(0)
        made.append(FakeProgram())
        return made[-1]

    monkeypatch.setattr(SW, "_load", load)
    SW._forget_in_child()  # a clean module state, as in a fresh process
    yield made, failures
    SW._forget_in_child()


def test_one_program_for_every_watch_and_one_entry_per_namespace(loader) -> None:
    made, _failures = loader
    a1, a2, b = SW.acquire(100), SW.acquire(100), SW.acquire(200)
    assert len(made) == 1 and set(made[0].entries) == {100, 200}
    assert SW._users == {100: 2, 200: 1}
    a1.close()
    a1.close()  # twice is harmless
    assert 100 in made[0].entries and not made[0].closed
    b.close()
    assert set(made[0].entries) == {100} and not made[0].closed
    assert a2.read() == (0,) * SW.SLOTS
    a2.close()
    assert made[0].closed and made[0].entries == {} and SW._program is None
    with pytest.raises(SW.StateWatchUnavailable, match="closed"):
        a2.read()
    c = SW.acquire(100)  # a new program after the last one went
    assert len(made) == 2
    c.close()


def test_a_lasting_refusal_is_not_retried_a_passing_one_is(loader) -> None:
    made, failures = loader
    failures.append(SW.StateWatchUnavailable("out of memory", lasting=False))
    with pytest.raises(SW.StateWatchUnavailable, match="out of memory"):
        SW.acquire(1)
    failures.append(SW.StateWatchUnavailable("not root", lasting=True))
    with pytest.raises(SW.StateWatchUnavailable, match="not root"):
        SW.acquire(1)
    with pytest.raises(SW.StateWatchUnavailable, match="not root"):
        SW.acquire(2)  # remembered: no second load
    assert made == [] and failures == []


def test_a_forked_child_forgets_the_parents_program(loader) -> None:
    made, _failures = loader
    handle = SW.acquire(5)
    SW._forget_in_child()  # what os.register_at_fork runs in the child
    assert made[0].closed  # the child's copies of the descriptors
    assert SW._program is None and SW._users == {}
    handle.close()  # the inherited handle does not touch the (parent's) entry
    assert made[0].entries == {5: (0,) * SW.SLOTS}
