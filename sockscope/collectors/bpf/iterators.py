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

from sockscope.model import BindBucket

from . import btf as btf_mod
from .btf import BtfError
from .programs import LAYOUT_VERSION, LICENSE, TCP_LAYOUT, UDP_LAYOUT, KernelInfo, tcp_program, udp_program
from .syscall import Bpf, BpfError, read_all

PIN_DIR = "/sys/fs/bpf/sockscope"
PROTOS = ("tcp", "udp")
TCP_NEW_SYN_RECV = 12


def pin_name(proto: str) -> str:
    return f"{proto}.v{LAYOUT_VERSION}"


class BpfUnavailable(Exception):
    """The iterators cannot be used here; str() is one sentence for users."""


# One socket as the iterator saw it, as a plain tuple (100,000 of them per refresh):
# (state, family, port, uid, reuseaddr, reuseport, v6only, bound_dev_if, own_flags,
#  bucket, bind2, udp_bucket, udp_chain_pos)
# own_flags is False for a request socket (NEW_SYN_RECV), which has none: take its
# listener's. bucket: a model.BindBucket (shared by every socket on it) or None; bind2:
# (fastreuse, fastreuseport) of the socket's inet_bind2_bucket or None. udp_*: UDP only.
KernelSocket = tuple
STATE, FAMILY, PORT, UID, REUSEADDR, REUSEPORT, V6ONLY, DEV, OWN_FLAGS, BUCKET, BIND2, UDP_BUCKET, UDP_POS = range(13)


@dataclass(slots=True)
class KernelFlags:
    """A decoded socket with names (tests and tools; the collector uses the tuples)."""

    cookie: int
    state: int
    family: int
    port: int
    uid: int
    reuseaddr: bool
    reuseport: bool
    v6only: bool
    bound_dev_if: int
    own_flags: bool
    bucket: BindBucket | None
    bind2: tuple[int, int] | None
    udp_bucket: int | None
    udp_chain_pos: int | None


def _family(af: int) -> int:
    return 4 if af == 2 else 6 if af == 10 else af


def _bind_bucket(raw: tuple) -> BindBucket:
    port, l3mdev, fastreuse, fastreuseport, fastuid, saddr, v6saddr, fam, v6only = raw
    if fastreuseport > 0:
        return BindBucket(port, l3mdev, fastreuse, fastreuseport, fastuid,
                          str(ipaddress.IPv4Address(struct.pack("<I", saddr))),
                          str(ipaddress.IPv6Address(v6saddr)), _family(fam), bool(v6only))
    return BindBucket(port, l3mdev, fastreuse, fastreuseport)


def decode(proto: str, data: bytes, k: KernelInfo) -> dict[int, KernelSocket]:
    """cookie -> KernelSocket, in iteration order."""
    layout = TCP_LAYOUT if proto == "tcp" else UDP_LAYOUT
    if len(data) % layout.size:
        raise BpfUnavailable(f"the {proto} iterator returned a truncated record")
    idx = {n: i for i, n in enumerate(layout.names())}
    g = idx.__getitem__
    b_ra, b_rp, b_v6 = k.bits["skc_reuse"], k.bits["skc_reuseport"], k.bits["skc_ipv6only"]
    ra_s, ra_m, rp_s, rp_m, v6_s, v6_m = b_ra.shift, b_ra.mask, b_rp.shift, b_rp.mask, b_v6.shift, b_v6.mask
    out: dict[int, KernelSocket] = {}
    i_cookie, i_uid, i_dev, i_num, i_fam, i_state, i_ra, i_rp, i_v6 = map(
        g, ("cookie", "uid", "bound_dev_if", "num", "family", "state", "reuse", "reuseport", "ipv6only"))
    if proto == "udp":
        i_bucket = g("bucket")
        prev_bucket = None
        pos = 0
        for t in struct.iter_unpack(layout.fmt, data):
            bucket = t[i_bucket]
            pos = pos + 1 if bucket == prev_bucket else 0
            prev_bucket = bucket
            out[t[i_cookie]] = (t[i_state], 4 if t[i_fam] == 2 else 6, t[i_num], t[i_uid],
                                (t[i_ra] >> ra_s) & ra_m != 0, (t[i_rp] >> rp_s) & rp_m != 0,
                                (t[i_v6] >> v6_s) & v6_m != 0, t[i_dev], True, None, None, bucket, pos)
        return out
    i_has_tb, i_has_tb2 = g("has_tb"), g("has_tb2")
    i_tbport, i_l3, i_fr, i_frp, i_uid2, i_sa, i_sa6, i_fam2 = map(
        g, ("tb_port", "l3mdev", "fastreuse", "fastreuseport", "fastuid", "fast_rcv_saddr",
            "fast_v6_rcv_saddr", "fast_sk_family"))
    i_fv6, i_tb2a, i_tb2b = g("fast_ipv6_only"), g("tb2_fastreuse"), g("tb2_fastreuseport")
    buckets: dict[tuple, BindBucket] = {}
    bind2s: dict[tuple[int, int], tuple[int, int]] = {}
    for t in struct.iter_unpack(layout.fmt, data):
        if t[i_has_tb]:
            raw = (t[i_tbport], t[i_l3], t[i_fr], t[i_frp], t[i_uid2], t[i_sa], t[i_sa6], t[i_fam2], t[i_fv6])
            bucket = buckets.get(raw)
            if bucket is None:
                bucket = buckets[raw] = _bind_bucket(raw)
        else:
            bucket = None
        if t[i_has_tb2]:
            pair = (t[i_tb2a], t[i_tb2b])
            bind2 = bind2s.get(pair)
            if bind2 is None:
                bind2 = bind2s[pair] = pair
        else:
            bind2 = None
        state = t[i_state]
        out[t[i_cookie]] = (state, 4 if t[i_fam] == 2 else 6, t[i_num], t[i_uid],
                            (t[i_ra] >> ra_s) & ra_m != 0, (t[i_rp] >> rp_s) & rp_m != 0,
                            (t[i_v6] >> v6_s) & v6_m != 0, t[i_dev], state != TCP_NEW_SYN_RECV,
                            bucket, bind2, None, None)
    return out


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
    def open(cls, btf_path: str = btf_mod.VMLINUX, pin_dir: str = PIN_DIR, allow_load: bool = True) -> "SocketIterators":
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

    def read(self, proto: str) -> dict[int, KernelSocket]:
        """cookie -> KernelSocket for every socket of `proto` in the caller's namespace."""
        return decode(proto, self.read_raw(proto), self.kernel)

    def read_flags(self, proto: str) -> list[KernelFlags]:
        return [KernelFlags(cookie, *t) for cookie, t in self.read(proto).items()]

    def link_fd(self, proto: str) -> int | None:
        return self._links.get(proto)

    def close(self) -> None:
        for fd in self._links.values():
            os.close(fd)
        self._links = {}
        self._pinned = {}

    def __enter__(self) -> "SocketIterators":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _explain(exc: BpfError | None, pin_dir: str) -> str:
    if exc is None:
        return f"BPF iterators not loaded and none pinned in {pin_dir}"
    pins = f" and no pinned iterators in {pin_dir} (`sockscope bpf pin` as root)"
    if exc.errno == errno.EPERM:
        if os.geteuid() != 0:
            return f"not root and no CAP_BPF+CAP_PERFMON: cannot load BPF iterators{pins}"
        return f"bpf() refused (EPERM: seccomp filter, lockdown or missing CAP_BPF){pins}"
    if exc.errno == errno.ENOSYS:
        return f"bpf() is not available (ENOSYS: no CONFIG_BPF_SYSCALL or filtered){pins}"
    if exc.errno in (errno.EINVAL, errno.EACCES) and exc.log:
        lines = [line for line in exc.log.strip().splitlines() if line.strip() and not line.startswith("processed ")]
        last = lines[-1:] or [""]
        return f"the kernel refused sockscope's BPF iterator ({last[0][:120]}){pins}"
    return f"cannot load BPF iterators: {exc.strerror or exc}{pins}"
