"""TCP and UDP socket iterators: load the programs once, create an iterator per read.

    its = SocketIterators.open()          # raises BpfUnavailable with one clear sentence
    tcp = its.read("tcp")                  # list of TcpKernelSocket, the caller's netns
    udp = its.read("udp")

An iterator walks the network namespace of the thread that creates it (BPF_ITER_CREATE),
so callers enter the namespace first. Without the rights to load programs, the links a
root user pinned with `sockscope bpf pin` are read instead (open() + read() of a bpffs
file, which also reads the opener's namespace).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import struct
import sys
from dataclasses import dataclass
from operator import itemgetter
from typing import cast

from sockscope.model import BindBucket

from . import btf as btf_mod
from .btf import BtfError
from .programs import (
    BUCKET_FIRST,
    LAYOUT_VERSION,
    LICENSE,
    TCP_LAYOUT,
    UDP_LAYOUT,
    KernelInfo,
    tcp_program,
    udp_program,
)
from .syscall import Bpf, BpfError, read_all

PIN_DIR = "/sys/fs/bpf/sockscope"
PROTOS = ("tcp", "udp")
TCP_NEW_SYN_RECV = 12


def pin_name(proto: str) -> str:
    return f"{proto}_v{LAYOUT_VERSION}"  # bpffs refuses names with a dot


class BpfUnavailable(Exception):
    """The iterators cannot be used here; str() is one sentence for users."""


@dataclass(slots=True)
class KernelFlags:
    """A decoded socket with names (tests and tools; the collector uses `Table`)."""

    cookie: int
    state: int
    family: int
    port: int
    uid: int
    reuseaddr: bool
    reuseport: bool
    v6only: bool
    bound_dev_if: int
    own_flags: bool  # False for a request socket (NEW_SYN_RECV): take its listener's
    bucket: BindBucket | None
    bind2: tuple[int, int] | None
    udp_bucket: int | None
    udp_chain_pos: int | None


def _family(af: int) -> int:
    return 4 if af == 2 else 6 if af == 10 else af


# Positions in a row (the struct.iter_unpack tuple) of both protocols.
COOKIE, UID, DEV, PORT, FAMILY, STATE, RA, RP, V6 = range(9)
# TCP rows: then has_tb2, tb2_fastreuse, tb2_fastreuseport, tail (the bucket's bytes).
HAS_TB2, TB2_FASTREUSE, TB2_FASTREUSEPORT, TAIL = range(9, 13)
# UDP rows: then the iterator's bucket.
UDP_BUCKET = 9

_TCP_FMT, _TCP_NAMES = TCP_LAYOUT.tail_as_bytes(BUCKET_FIRST)
_TAIL = struct.Struct(TCP_LAYOUT.tail_format(BUCKET_FIRST))
_UDP_NAMES = ["cookie", "uid", "bound_dev_if", "num", "family", "state", "reuse", "reuseport", "ipv6only", "bucket"]
assert _TCP_NAMES[:TAIL] == ["cookie", "uid", "bound_dev_if", "num", "family", "state", "reuse", "reuseport",
                             "ipv6only", "has_tb2", "tb2_fastreuse", "tb2_fastreuseport"]
assert UDP_LAYOUT.names() == _UDP_NAMES


_serial = 0  # reads made in this process (Table.serial)
_first = itemgetter(0)
_tail_of = itemgetter(TAIL)
_CHUNKS: dict[int, struct.Struct] = {}


def _chunk_struct(size: int) -> struct.Struct:
    st = _CHUNKS.get(size)
    if st is None:
        st = _CHUNKS[size] = struct.Struct(f"{size}s")
    return st


class Table:
    """One iterator read: rows by cookie, decoded lazily (100,000 rows per refresh: the
    collector touches each once, through the methods below)."""

    proto: str
    serial: int
    base_serial: int | None
    chain_pos: dict[int, int]
    _buckets: dict[bytes, BindBucket | None]

    def __init__(self, proto: str, data: bytes, k: KernelInfo, previous: Table | None = None) -> None:
        """`previous`: the last read of the same iterator in the same namespace. Rows whose
        bytes are unchanged are taken from it (not decoded again), and `changed` holds the
        cookies whose row is new or different (None without `previous`)."""
        layout = TCP_LAYOUT if proto == "tcp" else UDP_LAYOUT
        if len(data) % layout.size:
            raise BpfUnavailable(f"the {proto} iterator returned a truncated record")
        if previous is not None and previous.proto != proto:
            previous = None
        global _serial
        _serial += 1
        self.serial = _serial  # identifies this read
        self.base_serial = previous.serial if previous is not None else None  # `changed` is relative to it
        self.proto = proto
        ra, rp, v6 = k.bits["skc_reuse"], k.bits["skc_reuseport"], k.bits["skc_ipv6only"]
        # byte value -> flag, for each of the three flag bytes
        self.ra = tuple((b >> ra.shift) & ra.mask != 0 for b in range(256))
        self.rp = tuple((b >> rp.shift) & rp.mask != 0 for b in range(256))
        self.v6 = tuple((b >> v6.shift) & v6.mask != 0 for b in range(256))
        self._buckets: dict[bytes, BindBucket | None] = {}
        self._all: list[BindBucket] | None = None
        self.by_port: dict[int, list[BindBucket]] | None = None  # kernel_options' cache
        self.chain_pos: dict[int, int] = {}
        fmt = struct.Struct(_TCP_FMT if proto == "tcp" else UDP_LAYOUT.fmt)
        # Each record's bytes, split in C; a row already decoded from the same bytes is
        # reused (the same tuple), so a refresh where a few sockets changed decodes a few.
        fresh: list[tuple] = []
        if previous is None:
            rows = list(fmt.iter_unpack(data))  # a first read: every row decoded, in C
        else:
            chunks: list[bytes] = list(map(_first, _chunk_struct(layout.size).iter_unpack(data)))
            found: list[tuple | None] = list(map(previous._by_bytes().get, chunks))
            if None in found:
                unpack = fmt.unpack
                for i, row in enumerate(found):
                    if row is None:
                        found[i] = row = unpack(chunks[i])
                        fresh.append(row)
            rows = cast("list[tuple]", found)
        # Kept to split again when the next read asks (_by_bytes): one bytes object rather
        # than 100,000 small ones while this read is the current one.
        self._data = data
        self._row_list = rows
        self._size = layout.size
        self.rows = dict(zip(map(_first, rows), rows))
        self.changed: set[int] | None = set(map(_first, fresh)) if previous is not None else None
        self._tails: set[bytes] | None = None  # the distinct bucket states, when computed
        if proto == "tcp":
            if previous is not None:
                # Bucket objects of states still present are kept (records compare them
                # by identity); those of states gone are dropped.
                self._tails = set(map(_tail_of, rows))
                self._buckets = {t: b for t, b in previous._buckets.items() if t in self._tails}
        else:
            prev = None
            pos = 0
            for t in rows:
                bucket = t[UDP_BUCKET]
                pos = pos + 1 if bucket == prev else 0
                prev = bucket
                self.chain_pos[t[0]] = pos
            if previous is not None and self.changed is not None:
                # A socket's place in its chain moves when another binds to its slot, with
                # its own row unchanged: that is a change too.
                before = previous.chain_pos
                self.changed.update(c for c, p in self.chain_pos.items() if before.get(c) != p)

    def __len__(self) -> int:
        return len(self.rows)

    def _by_bytes(self) -> dict[bytes, tuple]:
        """Each row by the bytes it was decoded from."""
        chunks = map(_first, _chunk_struct(self._size).iter_unpack(self._data))
        return dict(zip(chunks, self._row_list))

    def bucket(self, row: tuple) -> BindBucket | None:
        """The TCP row's bind bucket; one object per distinct bucket state."""
        tail = row[TAIL]
        try:
            return self._buckets[tail]
        except KeyError:
            return self._bucket_of_tail(tail)

    def _bucket_of_tail(self, tail: bytes) -> BindBucket | None:
        has_tb, fastreuse, fastreuseport, v6only, fam, port, l3mdev, fastuid, saddr, v6saddr = _TAIL.unpack(tail)
        if not has_tb:
            b = None
        elif fastreuseport > 0:
            b = BindBucket(port, l3mdev, fastreuse, fastreuseport, fastuid,
                           str(ipaddress.IPv4Address(struct.pack("<I", saddr))),
                           str(ipaddress.IPv6Address(v6saddr)), _family(fam), bool(v6only))
        else:
            b = BindBucket(port, l3mdev, fastreuse, fastreuseport)
        self._buckets[tail] = b
        return b

    def buckets(self) -> list[BindBucket]:
        """Every distinct bucket the iterated sockets hang on."""
        if self.proto != "tcp":
            return []
        if self._all is None:  # a reused read is asked again: decode once
            # One call per distinct bucket state (~25,000), not per socket (100,000). The
            # cache holds states of this read only: made from its rows, or kept from the
            # previous read's for states still present.
            if self._tails is None:
                self._tails = set(map(_tail_of, self.rows.values()))
            known = self._buckets
            for tail in self._tails:
                if tail not in known:
                    self._bucket_of_tail(tail)
            self._all = [b for b in known.values() if b is not None]
        return self._all

    def buckets_of_port(self, port: int) -> list[BindBucket]:
        """The distinct buckets of one port (as buckets() would list them for it), from
        the rows of that port only."""
        if self.proto != "tcp":
            return []
        out: dict[bytes, BindBucket] = {}
        for row in self.rows.values():
            if row[PORT] == port and row[TAIL] not in out:
                b = self.bucket(row)
                if b is not None and b.port == port:
                    out[row[TAIL]] = b
        return list(out.values())

    def flags(self, cookie: int) -> KernelFlags | None:
        t = self.rows.get(cookie)
        if t is None:
            return None
        tcp = self.proto == "tcp"
        return KernelFlags(
            cookie, t[STATE], _family(t[FAMILY]), t[PORT], t[UID], self.ra[t[RA]], self.rp[t[RP]], self.v6[t[V6]],
            t[DEV], not (tcp and t[STATE] == TCP_NEW_SYN_RECV),
            self.bucket(t) if tcp else None,
            (t[TB2_FASTREUSE], t[TB2_FASTREUSEPORT]) if tcp and t[HAS_TB2] else None,
            None if tcp else t[UDP_BUCKET], None if tcp else self.chain_pos[cookie])


class SocketIterators:
    """Loaded iterator programs and links (or pinned links), reused for every read."""

    def __init__(self, kernel: KernelInfo, links: dict[str, int], pinned: dict[str, str], note: str | None) -> None:
        self.kernel = kernel
        self._links = links  # proto -> link fd (own programs)
        self._pinned = pinned  # proto -> bpffs path (someone else's pinned link)
        self.note = note  # what is missing although the iterators work (e.g. no UDP iterator)
        self.bpf = Bpf(kernel.cmds)

    @property
    def source(self) -> str:
        return "pinned" if self._pinned and not self._links else "loaded"

    def covers(self, proto: str) -> bool:
        return proto in self._links or proto in self._pinned

    @classmethod
    def open(cls, btf_path: str = btf_mod.VMLINUX, pin_dir: str = PIN_DIR, allow_load: bool = True) -> SocketIterators:
        if allow_load and not may_load_bpf():
            allow_load = False
            if not any(os.access(os.path.join(pin_dir, pin_name(p)), os.R_OK) for p in PROTOS):
                # Nothing to try: do not even parse the BTF (a non-root `sockscope list`).
                raise BpfUnavailable(_explain(BpfError(errno.EPERM, "bpf"), pin_dir))
        if sys.byteorder != "little":
            raise BpfUnavailable("BPF flags: big-endian hosts are not supported; reuse options come from pidfd_getfd")
        try:
            btf = btf_mod.load(btf_path)
        except FileNotFoundError:
            raise BpfUnavailable("no kernel BTF (/sys/kernel/btf/vmlinux; CONFIG_DEBUG_INFO_BTF): "
                                 "cannot read flags with BPF iterators") from None
        except (OSError, BtfError) as exc:
            raise BpfUnavailable(f"cannot read the kernel's BTF: {exc}") from None
        try:
            kernel = KernelInfo.from_btf(btf)
        except BtfError as exc:
            raise BpfUnavailable(f"kernel too old for BPF socket iterators: {exc}") from None
        if kernel.tcp_btf_id is None and kernel.udp_btf_id is None:
            raise BpfUnavailable("kernel too old for BPF socket iterators (no bpf_iter_tcp/bpf_iter_udp, Linux 5.9+)")
        links: dict[str, int] = {}
        load_error: BpfError | None = None
        if allow_load:
            try:
                links = cls._load(kernel)
            except BpfError as exc:
                load_error = exc
        pinned: dict[str, str] = {}
        if not links:
            for proto in PROTOS:
                path = os.path.join(pin_dir, pin_name(proto))
                if os.access(path, os.R_OK):
                    pinned[proto] = path
            if not pinned:
                raise BpfUnavailable(_explain(load_error, pin_dir))
        note = None
        missing = [p for p in PROTOS if p not in links and p not in pinned]
        if missing:
            why = kernel.missing.get(missing[0]) or "not pinned"
            note = f"no BPF {missing[0].upper()} iterator ({why}): its reuse options come from pidfd_getfd"
        return cls(kernel, links, pinned, note)

    @staticmethod
    def _load(kernel: KernelInfo) -> dict[str, int]:
        bpf = Bpf(kernel.cmds)
        links: dict[str, int] = {}
        try:
            for proto, btf_id, gen in (("tcp", kernel.tcp_btf_id, tcp_program), ("udp", kernel.udp_btf_id, udp_program)):
                if btf_id is None:
                    continue
                prog = bpf.prog_load(kernel.prog_type_tracing, gen(kernel), LICENSE,
                                     expected_attach_type=kernel.attach_trace_iter, attach_btf_id=btf_id,
                                     name=f"sockscope_{proto}")
                try:
                    links[proto] = bpf.link_create_iter(prog, kernel.attach_trace_iter)
                finally:
                    os.close(prog)  # the link keeps the program
        except BaseException:
            for fd in links.values():
                os.close(fd)
            raise
        return links

    def read_raw(self, proto: str) -> bytes:
        """The iterator's bytes for the caller's current network namespace."""
        if proto in self._links:
            fd = self.bpf.iter_create(self._links[proto])
        elif proto in self._pinned:
            fd = os.open(self._pinned[proto], os.O_RDONLY | os.O_CLOEXEC)
        else:
            raise BpfUnavailable(f"no {proto} iterator")
        try:
            return read_all(fd)
        finally:
            os.close(fd)

    def read(self, proto: str, previous: Table | None = None) -> Table:
        """Every socket of `proto` in the caller's namespace, by cookie; `previous` (the
        last read of the same namespace) lets unchanged rows be reused, see Table."""
        return Table(proto, self.read_raw(proto), self.kernel, previous)

    def read_flags(self, proto: str) -> list[KernelFlags]:
        table = self.read(proto)
        return [f for f in map(table.flags, table.rows) if f is not None]

    def link_fd(self, proto: str) -> int | None:
        return self._links.get(proto)

    def close(self) -> None:
        for fd in self._links.values():
            os.close(fd)
        self._links = {}
        self._pinned = {}

    def __enter__(self) -> SocketIterators:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39


def may_load_bpf() -> bool:
    """Whether this process has the capabilities to load tracing programs (root, or
    CAP_BPF + CAP_PERFMON, or CAP_SYS_ADMIN); read from /proc/self/status."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    caps = int(line.split()[1], 16)
                    break
            else:
                return os.geteuid() == 0
    except OSError:
        return os.geteuid() == 0
    has = lambda cap: bool(caps >> cap & 1)  # noqa: E731
    return has(CAP_SYS_ADMIN) or (has(CAP_BPF) and has(CAP_PERFMON))


def _explain(exc: BpfError | None, pin_dir: str) -> str:
    if exc is None:
        return f"BPF iterators not loaded and none pinned in {pin_dir}"
    pins = f" and no pinned iterators in {pin_dir} (`sockscope bpf pin` as root)"
    if exc.errno == errno.EPERM:
        if os.geteuid() != 0:
            return f"not root and no CAP_BPF+CAP_PERFMON: cannot load BPF iterators{pins}"
        if not may_load_bpf():
            return f"root without CAP_BPF+CAP_PERFMON (capabilities dropped): cannot load BPF iterators{pins}"
        return f"bpf() refused (EPERM: seccomp filter, lockdown or missing CAP_BPF){pins}"
    if exc.errno == errno.ENOSYS:
        return f"bpf() is not available (ENOSYS: no CONFIG_BPF_SYSCALL or filtered){pins}"
    if exc.errno in (errno.EINVAL, errno.EACCES) and exc.log:
        lines = [line for line in exc.log.strip().splitlines() if line.strip() and not line.startswith("processed ")]
        last = lines[-1:] or [""]
        return f"the kernel refused sockscope's BPF iterator ({last[0][:120]}){pins}"
    return f"cannot load BPF iterators: {exc.strerror or exc}{pins}"
