"""The iterator programs, generated for the running kernel: every offset, BTF id, helper,
program-type and attach-type number is looked up in its BTF (btf.py), never hard-coded.

Each program writes one fixed-size record per socket with bpf_seq_write; `Layout` holds
the record's fields so that the generator and the decoder agree by construction.

Verifier rules these programs follow (bpf-iterator-notes.md): the context's socket pointer
is NULL-checked; one load per struct member (a wider load spanning two members is
refused); fields past struct sock_common are reached only through bpf_skc_to_tcp_sock /
bpf_skc_to_tcp_timewait_sock / bpf_skc_to_tcp_request_sock, whose result is NULL-checked;
the licence is GPL-compatible (the iterator context is GPL-only).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from . import btf as btf_mod
from .asm import FP, JGT, R0, R1, R2, R3, R6, R7, R8, R9, Asm
from .btf import Btf, BtfError

LICENSE = "Dual MIT/GPL"
# Bumped whenever a record layout changes: pinned links carry it in their file name, so a
# sockscope never decodes a pin made by another version's program.
LAYOUT_VERSION = 1

_FMT = {1: "B", 2: "H", 4: "I", 8: "Q"}
_SFMT = {1: "b", 2: "h", 4: "i", 8: "q"}


@dataclass
class Layout:
    """A record: fields in order, each (name, size, signed); natural alignment."""

    fields: list[tuple[str, int, bool]]
    offsets: dict[str, int] = field(default_factory=dict)
    size: int = 0
    fmt: str = ""

    def __post_init__(self) -> None:
        off = 0
        fmt = "<"
        for name, size, signed in self.fields:
            pad = (-off) % min(size, 8)
            fmt += "x" * pad
            off += pad
            self.offsets[name] = off
            fmt += (_SFMT if signed else _FMT)[size] if size in _FMT else f"{size}s"
            off += size
        pad = (-off) % 8
        fmt += "x" * pad
        self.size = off + pad
        self.fmt = fmt
        assert struct.calcsize(self.fmt) == self.size

    def names(self) -> list[str]:
        return [f[0] for f in self.fields]

    def tail_as_bytes(self, first: str) -> tuple[str, list[str]]:
        """A format that reads the fields before `first` one by one and everything from
        `first` to the end as one bytes value named "tail"; and the names in order."""
        names = self.names()
        cut = names.index(first)
        start = self.offsets[first]
        fmt = "<"
        off = 0
        for name, size, signed in self.fields[:cut]:
            fmt += "x" * (self.offsets[name] - off)
            fmt += (_SFMT if signed else _FMT)[size] if size in _FMT else f"{size}s"
            off = self.offsets[name] + size
        fmt += "x" * (start - off) + f"{self.size - start}s"
        assert struct.calcsize(fmt) == self.size
        return fmt, names[:cut] + ["tail"]

    def tail_format(self, first: str) -> str:
        """The format of the tail alone (for decoding it when needed)."""
        start = self.offsets[first]
        fmt = "<"
        off = start
        for name, size, signed in self.fields[self.names().index(first):]:
            fmt += "x" * (self.offsets[name] - off)
            fmt += (_SFMT if signed else _FMT)[size] if size in _FMT else f"{size}s"
            off = self.offsets[name] + size
        fmt += "x" * (self.size - off)
        return fmt


# The bucket fields come last and in one run (BUCKET_FIRST..end): the decoder takes them as
# one bytes value, the key of a cache of BindBucket objects (a port's sockets share one).
# The head both records share: the cookie, the uid, and what _copy_common takes from
# struct sock_common.
COMMON_FIELDS = [
    ("cookie", 8, False),
    ("uid", 4, False),
    ("bound_dev_if", 4, True),
    ("num", 2, False),
    ("family", 2, False),
    ("state", 1, False),
    ("reuse", 1, False),        # the byte holding skc_reuse
    ("reuseport", 1, False),    # the byte holding skc_reuseport
    ("ipv6only", 1, False),     # the byte holding skc_ipv6only
]

TCP_LAYOUT = Layout([
    *COMMON_FIELDS,
    ("has_tb2", 1, False),
    ("tb2_fastreuse", 1, True),
    ("tb2_fastreuseport", 1, True),
    ("has_tb", 1, False),
    ("fastreuse", 1, True),
    ("fastreuseport", 1, True),
    ("fast_ipv6_only", 1, False),
    ("fast_sk_family", 2, False),
    ("tb_port", 2, False),
    ("l3mdev", 4, True),
    ("fastuid", 4, False),
    ("fast_rcv_saddr", 4, False),
    ("fast_v6_rcv_saddr", 16, False),
])
BUCKET_FIRST = "has_tb"

UDP_LAYOUT = Layout([
    *COMMON_FIELDS,
    ("bucket", 4, True),
])


@dataclass(frozen=True)
class Bit:
    """Where a bitfield lives: the byte to load and how to extract it (little-endian)."""

    byte: int
    shift: int
    mask: int

    def get(self, value: int) -> int:
        return (value >> self.shift) & self.mask


@dataclass
class KernelInfo:
    """Numbers and offsets of the running kernel, from its BTF."""

    cmds: dict[str, int]
    prog_type_tracing: int
    attach_trace_iter: int
    helpers: dict[str, int]
    tcp_btf_id: int | None
    udp_btf_id: int | None
    offsets: dict[str, int]
    bits: dict[str, Bit]
    missing: dict[str, str]  # iterator -> why it cannot be built on this kernel

    @classmethod
    def from_btf(cls, btf: Btf) -> KernelInfo:
        """Looked up once per BTF blob and process (several Collectors share it)."""
        cached = _INFO_CACHE.get(id(btf))
        if cached is not None and cached[0] is btf:
            return cached[1]
        info = cls._from_btf(btf)
        _INFO_CACHE.clear()  # bounded: one kernel
        _INFO_CACHE[id(btf)] = (btf, info)
        return info

    @classmethod
    def _from_btf(cls, btf: Btf) -> KernelInfo:
        cmds = btf.enum_values("bpf_cmd")
        prog_types = btf.enum_values("bpf_prog_type")
        attach = btf.enum_values("bpf_attach_type")
        funcs = btf.enum_values("bpf_func_id")
        if "BPF_PROG_TYPE_TRACING" not in prog_types or "BPF_TRACE_ITER" not in attach:
            raise BtfError("this kernel has no BPF iterators (Linux 5.8+ needed)")
        helpers = {}
        for name in ("get_socket_cookie", "seq_write", "skc_to_tcp_sock", "skc_to_tcp_timewait_sock"):
            value = funcs.get("BPF_FUNC_" + name)
            if value is not None:
                helpers[name] = value
        missing: dict[str, str] = {}
        need = {"get_socket_cookie", "seq_write"}
        if not need <= helpers.keys():
            raise BtfError("this kernel lacks bpf_seq_write or bpf_get_socket_cookie (Linux 5.9+ needed)")
        offsets: dict[str, int] = {}
        bits: dict[str, Bit] = {}
        sc = btf.find_struct("sock_common")

        def off(struct_name: str, path: str, key: str) -> None:
            offsets[key] = btf.offset_of(struct_name, path)

        for name in ("skc_state", "skc_family", "skc_bound_dev_if", "skc_num"):
            offsets[name] = btf.member(sc, name).byte
        for name in ("skc_reuse", "skc_reuseport", "skc_ipv6only"):
            m = btf.member(sc, name)
            width = m.bits or 8 * btf.size(m.type_id)
            if (m.offset % 8) + width > 8:
                raise BtfError(f"sock_common.{name} does not fit in one byte on this kernel")
            bits[name] = Bit(m.byte, m.offset % 8, (1 << width) - 1)
        off("bpf_iter_meta", "seq", "meta.seq")

        tcp_id = udp_id = None
        try:
            tcp_id = btf.find("bpf_iter_tcp", btf_mod.FUNC)
            off("bpf_iter__tcp", "meta", "tcp.meta")
            off("bpf_iter__tcp", "sk_common", "tcp.sk_common")
            off("bpf_iter__tcp", "uid", "tcp.uid")
            if {"skc_to_tcp_sock", "skc_to_tcp_timewait_sock"} <= helpers.keys():
                off("tcp_sock", "inet_conn.icsk_bind_hash", "tcp_sock.tb")
                off("tcp_timewait_sock", "tw_sk.tw_tb", "tw.tb")
                for name in ("l3mdev", "port", "fastreuse", "fastreuseport", "fastuid", "fast_rcv_saddr",
                             "fast_v6_rcv_saddr", "fast_sk_family", "fast_ipv6_only"):
                    off("inet_bind_bucket", name, "tb." + name)
                try:
                    off("tcp_sock", "inet_conn.icsk_bind2_hash", "tcp_sock.tb2")
                    off("tcp_timewait_sock", "tw_sk.tw_tb2", "tw.tb2")
                    off("inet_bind2_bucket", "fastreuse", "tb2.fastreuse")
                    off("inet_bind2_bucket", "fastreuseport", "tb2.fastreuseport")
                except BtfError:
                    pass  # before 6.1 (no bhash2) or before per-bind2 fast-path fields
        except BtfError as exc:
            missing["tcp"] = str(exc)
            tcp_id = None
        try:
            udp_id = btf.find("bpf_iter_udp", btf_mod.FUNC)
            off("bpf_iter__udp", "meta", "udp.meta")
            off("bpf_iter__udp", "udp_sk", "udp.udp_sk")
            off("bpf_iter__udp", "uid", "udp.uid")
            off("bpf_iter__udp", "bucket", "udp.bucket")
            off("udp_sock", "inet.sk.__sk_common", "udp.common")
        except BtfError as exc:
            missing["udp"] = str(exc)
            udp_id = None
        return cls(cmds, prog_types["BPF_PROG_TYPE_TRACING"], attach["BPF_TRACE_ITER"], helpers,
                   tcp_id, udp_id, offsets, bits, missing)


_INFO_CACHE: dict[int, tuple[Btf, KernelInfo]] = {}

REC_TEMP = 8  # one spill slot below the record, for the bind2 bucket pointer


def _copy_common(a: Asm, k: KernelInfo, layout: Layout, base: int, src: int, extra: int = 0,
                 prefix: str = "") -> None:
    """Copy sock_common's state/family/port/device and flag bytes from `src` (+extra)."""
    o, rec = k.offsets, layout.offsets
    for key, name, size in (("skc_bound_dev_if", "bound_dev_if", 4),):
        a.ldx(size, R1, src, extra + o[key]).stx(size, FP, base + rec[prefix + name], R1)
    if not prefix:
        for key, name, size in (("skc_state", "state", 1), ("skc_family", "family", 2), ("skc_num", "num", 2)):
            a.ldx(size, R1, src, extra + o[key]).stx(size, FP, base + rec[name], R1)
    for key, name in (("skc_reuse", "reuse"), ("skc_reuseport", "reuseport"), ("skc_ipv6only", "ipv6only")):
        a.ldx(1, R1, src, extra + k.bits[key].byte).stx(1, FP, base + rec[prefix + name], R1)


def _prologue(a: Asm, layout: Layout, base: int, ctx_meta: int, ctx_sk: int) -> None:
    a.mov(R6, R1)
    a.ldx(8, R9, R6, ctx_meta)
    a.ldx(8, R8, R6, ctx_sk)
    a.jeq_imm(R8, 0, "out")
    for i in range(0, layout.size + REC_TEMP, 8):
        a.st_imm(8, FP, base - REC_TEMP + i, 0)


def emit_record(a: Asm, k: KernelInfo, size: int, base: int) -> None:
    """The common end of an iterator program: label "emit" writes the `size`-byte record at
    FP+base with bpf_seq_write (R9 holds ctx->meta); label "out" returns 0."""
    a.label("emit")
    a.ldx(8, R1, R9, k.offsets["meta.seq"])
    a.mov(R2, FP).add_imm(R2, base)
    a.mov_imm(R3, size)
    a.call(k.helpers["seq_write"])
    a.label("out")
    a.mov_imm(R0, 0)
    a.exit()


def tcp_program(k: KernelInfo) -> bytes:
    layout, rec, o, h = TCP_LAYOUT, TCP_LAYOUT.offsets, k.offsets, k.helpers
    base = -layout.size
    tmp = base - REC_TEMP
    a = Asm()
    _prologue(a, layout, base, o["tcp.meta"], o["tcp.sk_common"])
    a.mov(R1, R8).call(h["get_socket_cookie"]).stx(8, FP, base + rec["cookie"], R0)
    a.ldx(4, R1, R6, o["tcp.uid"]).stx(4, FP, base + rec["uid"], R1)
    _copy_common(a, k, layout, base, R8)
    if "tcp_sock.tb" in o:
        a.mov(R1, R8).call(h["skc_to_tcp_sock"])
        a.jeq_imm(R0, 0, "not_full")
        a.ldx(8, R7, R0, o["tcp_sock.tb"])
        if "tcp_sock.tb2" in o:
            a.ldx(8, R1, R0, o["tcp_sock.tb2"]).stx(8, FP, tmp, R1)
        a.ja("have_tb")
        a.label("not_full")
        a.mov(R1, R8).call(h["skc_to_tcp_timewait_sock"])
        a.jeq_imm(R0, 0, "not_tw")
        a.ldx(8, R7, R0, o["tw.tb"])
        if "tw.tb2" in o:
            a.ldx(8, R1, R0, o["tw.tb2"]).stx(8, FP, tmp, R1)
        a.ja("have_tb")
        a.label("not_tw")
        # A request socket (NEW_SYN_RECV) has no flags of its own, and its listener
        # (rsk_listener) sits in a union whose first member is a scalar to the verifier:
        # the collector takes the flags of the listener it belongs to instead.
        a.ja("emit")
        a.label("have_tb")
        a.jeq_imm(R7, 0, "tb2")
        a.st_imm(1, FP, base + rec["has_tb"], 1)
        for name, size in (("l3mdev", 4), ("fastreuse", 1), ("fastreuseport", 1)):
            a.ldx(size, R1, R7, o["tb." + name]).stx(size, FP, base + rec[name], R1)
        a.ldx(2, R1, R7, o["tb.port"]).stx(2, FP, base + rec["tb_port"], R1)
        # The fast_* fields hold stale bytes (kernel pointers seen among them) unless
        # fastreuseport is 1 or 2: copy them only then (R1 = fastreuseport, zero-extended).
        a.ldx(1, R1, R7, o["tb.fastreuseport"])
        a.jeq_imm(R1, 0, "tb2")
        a.jmp_imm(JGT, R1, 2, "tb2")
        for name, size in (("fastuid", 4), ("fast_rcv_saddr", 4), ("fast_sk_family", 2), ("fast_ipv6_only", 1)):
            a.ldx(size, R1, R7, o["tb." + name]).stx(size, FP, base + rec[name], R1)
        for half in (0, 8):
            a.ldx(8, R1, R7, o["tb.fast_v6_rcv_saddr"] + half).stx(8, FP, base + rec["fast_v6_rcv_saddr"] + half, R1)
        a.label("tb2")
        if "tw.tb2" in o:
            a.ldx(8, R7, FP, tmp)
            a.jeq_imm(R7, 0, "emit")
            a.st_imm(1, FP, base + rec["has_tb2"], 1)
            a.ldx(1, R1, R7, o["tb2.fastreuse"]).stx(1, FP, base + rec["tb2_fastreuse"], R1)
            a.ldx(1, R1, R7, o["tb2.fastreuseport"]).stx(1, FP, base + rec["tb2_fastreuseport"], R1)
    emit_record(a, k, layout.size, base)
    return a.assemble()


def udp_program(k: KernelInfo) -> bytes:
    layout, rec, o, h = UDP_LAYOUT, UDP_LAYOUT.offsets, k.offsets, k.helpers
    base = -layout.size
    a = Asm()
    _prologue(a, layout, base, o["udp.meta"], o["udp.udp_sk"])
    a.mov(R1, R8).call(h["get_socket_cookie"]).stx(8, FP, base + rec["cookie"], R0)
    a.ldx(4, R1, R6, o["udp.uid"]).stx(4, FP, base + rec["uid"], R1)
    a.ldx(4, R1, R6, o["udp.bucket"]).stx(4, FP, base + rec["bucket"], R1)
    _copy_common(a, k, layout, base, R8, extra=o["udp.common"])
    emit_record(a, k, layout.size, base)
    return a.assemble()


__all__ = ["LICENSE", "TCP_LAYOUT", "UDP_LAYOUT", "KernelInfo", "Layout", "tcp_program", "udp_program"]
