"""Socket options read by the BPF iterators, joined to a sock_diag snapshot by cookie.

One `KernelOptions` per Collector: the programs are loaded once (a refusal is recorded once
and not retried), an iterator is created per refresh inside the Collector's namespace.
Sockets the iterators do not walk (TCP bound-only sockets; UDP without a UDP iterator) are
handed back so that pidfd_getfd reads them as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sockscope.model import BindBucket, HostFacts, SocketRecord

from .iterators import (
    BIND2, BUCKET, DEV, OWN_FLAGS, PIN_DIR, REUSEADDR, REUSEPORT, UDP_BUCKET, UDP_POS, V6ONLY,
    BpfUnavailable, KernelSocket, SocketIterators,
)

KERNEL = "kernel"


class KernelOptions:
    def __init__(self, pin_dir: str = PIN_DIR, allow_load: bool = True) -> None:
        self.pin_dir = pin_dir
        self.allow_load = allow_load
        self._its: SocketIterators | None = None
        self._tried = False
        # Why the iterators cannot be used at all (one sentence), set on the first read.
        self.unavailable: str | None = None
        self.last_error: str | None = None  # a read that failed this refresh

    @property
    def iterators(self) -> SocketIterators | None:
        return self._its

    def read(self, protos: Iterable[str]) -> dict[str, dict[int, KernelSocket]]:
        """Every socket of `protos` the iterators see, by cookie. Call with the thread in
        the Collector's network namespace: the iterator reads the caller's."""
        if not self._tried:
            self._tried = True
            try:
                self._its = SocketIterators.open(pin_dir=self.pin_dir, allow_load=self.allow_load)
            except BpfUnavailable as exc:
                self.unavailable = str(exc)
        its = self._its
        self.last_error = None
        out: dict[str, dict[int, KernelSocket]] = {}
        if its is None:
            return out
        for proto in protos:
            if its.covers(proto):
                try:
                    out[proto] = its.read(proto)
                except (OSError, BpfUnavailable) as exc:
                    self.last_error = f"the BPF {proto} iterator failed ({getattr(exc, 'strerror', None) or exc}); its options come from pidfd_getfd"
        return out

    def note(self) -> str | None:
        if self.unavailable:
            return self.unavailable
        if self.last_error:
            return self.last_error
        return self._its.note if self._its is not None else None

    def close(self) -> None:
        if self._its is not None:
            self._its.close()
            self._its = None


def apply(records: Sequence[SocketRecord], kernel: dict[str, dict[int, KernelSocket]],
          facts: HostFacts) -> list[SocketRecord]:
    """Set the options of `records` found by the iterators (source "kernel"); return the
    records left for pidfd_getfd: those of a protocol no iterator covers, and TCP bound-only
    sockets (not in the established/listening hashes the iterator walks). A socket that
    vanished between the dump and the iterator is left as it is (no descriptor needed)."""
    tcp = kernel.get("tcp")
    udp = kernel.get("udp")
    pending: list[SocketRecord] = []
    requests: list[SocketRecord] = []
    for rec in records:
        table = tcp if rec.proto == "tcp" else udp
        if table is None:
            pending.append(rec)
            continue
        k = table.get(rec.cookie)
        if k is None:
            if rec.proto == "tcp" and rec.state == "UNCONN":
                pending.append(rec)
            continue
        if k[BUCKET] is not None:
            rec.bind_bucket = k[BUCKET]
        if k[BIND2] is not None:
            rec.bind2_fastreuse, rec.bind2_fastreuseport = k[BIND2]
        if k[UDP_BUCKET] is not None:
            rec.udp_bucket = k[UDP_BUCKET]
            rec.udp_chain_pos = k[UDP_POS]
        if not k[OWN_FLAGS]:
            requests.append(rec)
            continue
        _set(rec, k[REUSEADDR], k[REUSEPORT], k[V6ONLY], k[DEV], facts)
    if requests:
        _from_listeners(records, requests, facts)
    return pending


def _set(rec: SocketRecord, ra: bool, rp: bool, v6: bool, dev: int, facts: HostFacts) -> None:
    rec.reuseaddr = ra
    rec.reuseport = rp
    src = rec.option_source
    if src is None:
        src = rec.option_source = {}
    src["reuseaddr"] = KERNEL
    src["reuseport"] = KERNEL
    if rec.family == 6:
        rec.v6only = v6
        src["v6only"] = KERNEL
    if dev and rec.device is None:
        rec.ifindex = rec.ifindex or dev
        rec.device = facts.ifname(dev)


def _covers(listener: SocketRecord, rec: SocketRecord) -> bool:
    if listener.local_addr == rec.local_addr:
        return True
    if listener.family == 4:
        return listener.local_addr == "0.0.0.0" and (rec.family == 4 or rec.local_addr.startswith("::ffff:"))
    if listener.local_addr != "::":
        return False
    return not (listener.v6only and (rec.family == 4 or rec.local_addr.startswith("::ffff:")))


def _from_listeners(records: Sequence[SocketRecord], requests: list[SocketRecord], facts: HostFacts) -> None:
    """A request socket has no flags of its own; the child it becomes is cloned from its
    listener. Take the listener's kernel-read flags when every listener that could own the
    request (same port, covering address, compatible device) agrees; else leave unknown."""
    listeners: dict[int, list[SocketRecord]] = {}
    for r in records:
        if r.proto == "tcp" and r.state == "LISTEN" and (r.option_source or {}).get("reuseaddr") == KERNEL:
            listeners.setdefault(r.local_port, []).append(r)
    for rec in requests:
        cands = [
            lst for lst in listeners.get(rec.local_port, ())
            if _covers(lst, rec) and (not lst.ifindex or not rec.ifindex or lst.ifindex == rec.ifindex)
        ]
        values = {(c.reuseaddr, c.reuseport, c.v6only, c.ifindex) for c in cands}
        if len(values) == 1:
            ra, rp, v6, dev = values.pop()
            _set(rec, bool(ra), bool(rp), bool(v6), 0, facts)


def buckets_by_port(kernel: dict[str, dict[int, KernelSocket]], port: int | None = None) -> dict[int, list[BindBucket]] | None:
    """Snapshot.tcp_buckets: each TCP port's distinct bind buckets (one per l3mdev)."""
    tcp = kernel.get("tcp")
    if tcp is None:
        return None
    seen: dict[int, BindBucket] = {}
    out: dict[int, list[BindBucket]] = {}
    for k in tcp.values():
        b = k[BUCKET]
        if b is not None and id(b) not in seen and (port is None or b.port == port):
            seen[id(b)] = b
            out.setdefault(b.port, []).append(b)
    return out


__all__ = ["KernelOptions", "apply", "buckets_by_port"]
