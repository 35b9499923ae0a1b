"""The BTF reader on hand-built blobs (include/uapi/linux/btf.h), no root needed."""

from __future__ import annotations

import os
import struct

import pytest

from sockscope.collectors.bpf import btf as B
from sockscope.collectors.bpf.asm import FP, R0, R1, Asm, AsmError
from sockscope.collectors.bpf.programs import Layout


class Blob:
    def __init__(self) -> None:
        self.strs = b"\0"
        self.types = b""
        self.count = 0

    def s(self, name: str) -> int:
        if not name:
            return 0
        off = len(self.strs)
        self.strs += name.encode() + b"\0"
        return off

    def add(self, name: str, kind: int, vlen: int, size_or_type: int, extra: bytes = b"", kflag: int = 0) -> int:
        info = (kflag << 31) | (kind << 24) | vlen
        self.types += struct.pack("<III", self.s(name), info, size_or_type) + extra
        self.count += 1
        return self.count

    def int_(self, name: str, size: int, bits: int | None = None) -> int:
        return self.add(name, B.INT, 0, size, struct.pack("<I", bits if bits is not None else size * 8))

    def struct_(self, name: str, size: int, members: list[tuple[str, int, int, int]], kind: int = B.STRUCT) -> int:
        kflag = int(any(m[3] for m in members))
        extra = b"".join(
            struct.pack("<III", self.s(n), t, (bits << 24 | off) if kflag else off) for n, t, off, bits in members
        )
        return self.add(name, kind, len(members), size, extra, kflag)

    def enum(self, name: str, values: dict[str, int]) -> int:
        extra = b"".join(struct.pack("<Ii", self.s(k), v) for k, v in values.items())
        return self.add(name, B.ENUM, len(values), 4, extra)

    def bytes(self) -> bytes:
        hdr = struct.pack("<HBBIIIII", B.BTF_MAGIC, 1, 0, 24, 0, len(self.types), len(self.types), len(self.strs))
        return hdr + self.types + self.strs


def sample() -> bytes:
    b = Blob()
    u8 = b.int_("unsigned char", 1)  # 1
    u16 = b.int_("short unsigned int", 2)  # 2
    i32 = b.int_("int", 4)  # 3
    typedef = b.add("__u16", B.TYPEDEF, 0, u16)  # 4
    inner = b.struct_("", 4, [("skc_dport", typedef, 0, 0), ("skc_num", typedef, 16, 0)])  # 5: anonymous struct
    union = b.struct_("", 4, [("skc_portpair", i32, 0, 0), ("", inner, 0, 0)], kind=B.UNION)  # 6
    sc = b.struct_("sock_common", 16, [
        ("", union, 0, 0),
        ("skc_family", u16, 32, 0),
        ("skc_state", u8, 48, 0),
        ("skc_reuse", u8, 56, 4),
        ("skc_reuseport", u8, 60, 1),
        ("skc_ipv6only", u8, 61, 1),
        ("skc_bound_dev_if", i32, 64, 0),
    ])  # 7
    b.struct_("sock_common", 0, [])  # 8: an empty duplicate (like a forward declaration)
    b.add("bpf_iter_tcp", B.FUNC, 0, 0)  # 9
    b.enum("bpf_cmd", {"BPF_PROG_LOAD": 5, "BPF_LINK_CREATE": 28})  # 10
    b.add("bpf_iter_tcp", B.TYPEDEF, 0, i32)  # 11: same name, another kind
    b.add("ptr", B.PTR, 0, sc)  # 12
    b.add("arr", B.ARRAY, 0, 0, struct.pack("<III", u16, i32, 8))  # 13
    b.add("e64", B.ENUM64, 1, 8, struct.pack("<III", b.s("BIG"), 1, 2))  # 14
    b.add("_tcp", B.FUNC, 0, 0)  # 15: a name whose tail is "tcp"
    return b.bytes()


def test_finds_types_members_bitfields_and_enums() -> None:
    btf = B.Btf(sample())
    assert len(btf) == 15
    assert btf.find("bpf_iter_tcp", B.FUNC) == 9
    assert btf.find("bpf_iter_tcp", B.TYPEDEF) == 11
    assert btf.find_struct("sock_common") == 7
    sc = btf.find_struct("sock_common")
    # through an anonymous union and an anonymous struct, and a typedef
    assert btf.member(sc, "skc_num").offset == 16 and btf.member(sc, "skc_num").bits == 0
    assert btf.offset_of("sock_common", "skc_num") == 2
    assert btf.offset_of("sock_common", "skc_bound_dev_if") == 8
    reuse, rp, v6 = (btf.member(sc, n) for n in ("skc_reuse", "skc_reuseport", "skc_ipv6only"))
    assert (reuse.byte, reuse.offset % 8, reuse.bits) == (7, 0, 4)
    assert (rp.byte, rp.offset % 8, rp.bits) == (7, 4, 1)
    assert (v6.byte, v6.offset % 8, v6.bits) == (7, 5, 1)
    with pytest.raises(B.BtfError, match="bitfield"):
        btf.offset_of("sock_common", "skc_reuse")
    assert btf.enum_values("bpf_cmd") == {"BPF_PROG_LOAD": 5, "BPF_LINK_CREATE": 28}
    assert btf.enum_value("e64", "BIG") == (2 << 32) | 1
    assert btf.size(12) == 8 and btf.size(13) == 16 and btf.size(4) == 2
    assert btf.ids_named("tcp") == []


def test_missing_names_are_one_sentence_errors() -> None:
    btf = B.Btf(sample())
    with pytest.raises(B.BtfError, match="no function 'bpf_iter_udp'"):
        btf.find("bpf_iter_udp", B.FUNC)
    with pytest.raises(B.BtfError, match="has no member 'nope'"):
        btf.member(btf.find_struct("sock_common"), "nope")
    with pytest.raises(B.BtfError, match="no enum"):
        btf.enum_values("bpf_func_id")
    with pytest.raises(B.BtfError, match="has no X"):
        btf.enum_value("bpf_cmd", "X")


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b"\x00\x00" + b[2:], "magic"),
    (lambda b: b[:10], "too short"),
    (lambda b: b[:4] + b"\x00" * 20 + b[24:], None),  # empty sections: parses, nothing found
    (lambda b: b[:24 + 4] + struct.pack("<I", 31 << 24) + b[24 + 8:], "unknown BTF kind"),
    (lambda b: b[:12] + struct.pack("<I", 10**6) + b[16:], "past the end"),
    (lambda b: b[:6] + b"\x00\x01\x00\x00" + b[10:], "past the end"),
])
def test_malformed_blobs(mutate, message) -> None:
    blob = mutate(sample())
    if message is None:
        assert len(B.Btf(blob)) == 0
        return
    with pytest.raises(B.BtfError, match=message):
        B.Btf(blob)


def test_records_not_ending_on_a_boundary() -> None:
    b = Blob()
    b.int_("int", 4)
    blob = bytearray(b.bytes())
    struct.pack_into("<I", blob, 12, len(b.types) - 2)  # type_len cuts the last record
    with pytest.raises(B.BtfError):
        B.Btf(bytes(blob))


def test_records_cut_short_by_the_section_end() -> None:
    b = Blob()
    b.struct_("s", 4, [("a", 0, 0, 0), ("b", 0, 0, 0)])
    blob = bytearray(b.bytes())
    struct.pack_into("<I", blob, 12, len(b.types) - 12)  # a word-aligned cut inside the members
    with pytest.raises(B.BtfError, match="record boundary|truncated"):
        B.Btf(bytes(blob))


def test_names_shared_by_several_records_and_values_that_look_like_names() -> None:
    b = Blob()
    i32 = b.int_("int", 4)  # 1
    name_off = len(b.strs)
    s = b.struct_("sock", 8, [("x", i32, 0, 0)])  # 2
    # A struct whose size and member offset hold the value of the name "sock": not a name.
    b.struct_("other", name_off, [("y", i32, name_off, 0)])  # 3
    f = b.add("sock", B.FUNC, 0, 0)  # 4: the same string, another kind
    btf = B.Btf(b.bytes())
    assert btf.ids_named("sock") == [s, f]
    assert btf.find_struct("sock") == s and btf.find("sock", B.FUNC) == f
    assert btf.ids_named("") == [] and btf.ids_named("nope") == []


def test_the_running_kernels_btf_finds_every_sampled_type_by_its_name() -> None:
    # The name lookup searches a column of name offsets; on the real blob (126,000
    # types here) every sampled named type must come back for its own name, and only
    # types of that name.
    try:
        btf = B.load()
    except OSError:
        pytest.skip("no /sys/kernel/btf/vmlinux on this machine")  # CI has it: see test_bpf_iter
    step = max(1, len(btf) // 500)
    for type_id in range(1, len(btf) + 1, step):
        name = btf.name(type_id)
        if name:
            found = btf.ids_named(name)
            assert type_id in found and all(btf.name(i) == name for i in found), name


def test_parse_cache_is_keyed_by_content() -> None:
    blob = sample()
    assert B.from_bytes(blob) is B.from_bytes(bytes(blob))
    other = bytearray(blob)
    other[-2] = ord("X")  # another string: another blob
    assert B.from_bytes(bytes(other)) is not B.from_bytes(blob)
    assert len(B._CACHE) <= B._CACHE_MAX


def test_assembler_encodes_and_resolves_labels() -> None:
    a = Asm()
    a.mov_imm(R0, 0).jeq_imm(R1, 0, "end").ldx(1, R0, R1, 19).stx(8, FP, -8, R0).label("end").exit()
    code = a.assemble()
    assert len(code) == 5 * 8
    op, regs, off, imm = struct.unpack_from("<BBhi", code, 8)
    assert (op, regs & 0xF, off, imm) == (0x15, R1, 2, 0)  # skips two instructions
    assert struct.unpack_from("<BBhi", code, 16)[:3] == (0x71, (R1 << 4) | R0, 19)
    assert struct.unpack_from("<BBhi", code, 24)[:3] == (0x7B, (R0 << 4) | FP, -8)
    with pytest.raises(AsmError):
        Asm().ja("nowhere").assemble()


def test_record_layout_is_aligned() -> None:
    lay = Layout([("a", 8, False), ("b", 1, True), ("c", 4, False), ("d", 16, False), ("e", 2, False)])
    assert lay.offsets == {"a": 0, "b": 8, "c": 12, "d": 16, "e": 32}
    assert lay.size == 40 and struct.calcsize(lay.fmt) == 40


def test_degraded_modes_say_why(tmp_path, monkeypatch) -> None:
    from sockscope.collectors.bpf import iterators
    from sockscope.collectors.bpf.iterators import BpfUnavailable, SocketIterators

    # As if we had CAP_BPF: the BTF's own problems must be said (without it, the missing
    # capability is said first and the BTF is never parsed; tests/test_bpf_iter.py).
    monkeypatch.setattr(iterators, "may_load_bpf", lambda: True)

    with pytest.raises(BpfUnavailable, match=r"^no kernel BTF"):
        SocketIterators.open(btf_path=str(tmp_path / "missing"))
    old = tmp_path / "vmlinux"
    old.write_bytes(sample())  # no enum bpf_prog_type etc.: an old kernel's BTF
    with pytest.raises(BpfUnavailable, match=r"^kernel too old for BPF socket iterators"):
        SocketIterators.open(btf_path=str(old))
    bad = tmp_path / "bad"
    bad.write_bytes(b"garbage" * 10)
    with pytest.raises(BpfUnavailable, match=r"^cannot read the kernel's BTF"):
        SocketIterators.open(btf_path=str(bad))


def test_load_reuses_the_parse_of_the_same_file_and_reads_a_changed_one(tmp_path) -> None:
    path = tmp_path / "vmlinux"
    path.write_bytes(sample())
    first = B.load(str(path))
    assert B.load(str(path)) is first
    other = bytearray(sample())
    other[-2] = ord("X")  # another string: another blob, and another size or mtime
    path.write_bytes(bytes(other) + b"\0")
    os.utime(path, ns=(1, 1))
    assert B.load(str(path)) is not first
    assert len(B._BY_PATH) <= B._CACHE_MAX
