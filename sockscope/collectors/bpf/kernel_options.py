"""Socket options read by the BPF iterators, joined to a sock_diag snapshot by cookie.

One `KernelOptions` per Collector: the programs are loaded once (a refusal is recorded once
and not retried), an iterator is created per refresh inside the Collector's namespace.
Sockets the iterators do not walk (TCP bound-only sockets; UDP without a UDP iterator) are
handed back so that pidfd_getfd reads them as before.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from operator import attrgetter, is_

from sockscope.model import BindBucket, HostFacts, SocketRecord, with_sources

from ..options import set_options
from .iterators import (
    DEV,
    HAS_TB2,
    PIN_DIR,
    RA,
    RP,
    STATE,
    TB2_FASTREUSE,
    TB2_FASTREUSEPORT,
    TCP_NEW_SYN_RECV,
    UDP_BUCKET,
    V6,
    BpfUnavailable,
    SocketIterators,
    Table,
)

KERNEL = "kernel"
# Re-read at least this often even when the dump shows no change (setsockopt on a live
# socket changes its flags without changing its cookie or state).
REREAD_AFTER = 5.0


class IteratorLoader:
    """The socket iterators (programs loaded, or pinned links found), opened on first use
    and shared: an iterator walks the namespace of the thread that creates it, so one set
    of links serves every namespace (MultiCollector gives one loader to all its
    namespaces' KernelOptions). A refusal is remembered and not retried until close(),
    which releases the links: a later get() opens them again (a Collector closes its own
    loader when its namespace was re-created, then reads on)."""

    def __init__(self, pin_dir: str = PIN_DIR, allow_load: bool = True) -> None:
        self.pin_dir = pin_dir
        self.allow_load = allow_load
        self._its: SocketIterators | None = None
        self._tried = False
        self.unavailable: str | None = None  # why they cannot be used at all (one sentence)

    def get(self) -> SocketIterators | None:
        if not self._tried:
            self._tried = True
            try:
                self._its = SocketIterators.open(pin_dir=self.pin_dir, allow_load=self.allow_load)
            except BpfUnavailable as exc:
                self.unavailable = str(exc)
        return self._its

    @property
    def iterators(self) -> SocketIterators | None:
        return self._its

    def close(self) -> None:
        if self._its is not None:
            self._its.close()
            self._its = None
        self._tried = False
        self.unavailable = None


class KernelOptions:
    def __init__(self, pin_dir: str = PIN_DIR, allow_load: bool = True, loader: IteratorLoader | None = None) -> None:
        """One namespace's reads. `loader`: iterators shared with other namespaces (not
        closed by close()); None: this instance loads and closes its own."""
        self._own_loader = loader is None
        self._loader = loader if loader is not None else IteratorLoader(pin_dir, allow_load)
        self.last_error: str | None = None  # a read that failed this refresh
        self._last: dict[str, Table] | None = None
        self._last_at = 0.0
        self._states: dict[int, str] = {}  # cookie -> state; bounded: the last dump's sockets
        self.reused = 0  # refreshes that reused the last read (for tests and benchmarks)
        self.same_read = False  # the last read() returned the previous read again
        self.same_records = False  # ... for the very same record objects
        self._records: Sequence[SocketRecord] | None = None  # the records of the last read
        # The decoder's record lists found consistent with _states (id -> the list, held so
        # that no id is reused while it is here).
        self._consistent: dict[int, list[SocketRecord]] = {}
        # The last read of each iterator (any refresh): the next read reuses its unchanged
        # rows. Bounded: one table per protocol.
        self._tables: dict[str, Table] = {}
        self.apply_memo = ApplyMemo()
        self._udp_count: int | None = None  # UDP sockets in the last complete read's dump
        self.pending: list[SocketRecord] = []  # what apply() left for pidfd_getfd last time
        self.applied_complete = False  # ... and whether it was given every socket

    @property
    def iterators(self) -> SocketIterators | None:
        return self._loader.iterators

    @property
    def unavailable(self) -> str | None:
        """Why the iterators cannot be used at all (one sentence), known after a read."""
        return self._loader.unavailable

    def read(self, protos: Iterable[str], records: Sequence[SocketRecord] | None = None,
             now: float | None = None, complete: bool = True,
             segments: Sequence[list[SocketRecord]] | None = None) -> dict[str, Table]:
        """Every socket of `protos` the iterators see, by cookie. Call with the thread in
        the Collector's network namespace: the iterator reads the caller's.

        With `records` (the dump just taken), the last read is reused when it already
        holds every one of them in the same state and is younger than REREAD_AFTER:
        flags and bucket states change when sockets bind, listen, connect or close,
        each of which shows in the dump as a new cookie or a new state. `complete` is False
        when `records` holds only some states (the TUI's listening-only refresh): they are
        then checked against what the last full dump saw."""
        its = self._loader.get()
        self.last_error = None
        out: dict[str, Table] = {}
        if its is None:
            return out
        now = time.monotonic() if now is None else now
        protos = tuple(protos)
        last = self._last
        self.same_records = False
        # A UDP socket that closed moves the sockets after it in its chain up by one (the
        # order the kernel's lookup meets them): fewer UDP sockets than at the last read
        # means reading again. (A closed TCP socket changes no other socket's row.)
        udp_now = (sum(len(seg) for seg in segments if seg and seg[0].proto == "udp")
                   if segments is not None and complete else None)
        if udp_now is not None and self._udp_count is not None and udp_now < self._udp_count:
            last = None
        if (records is not None and last is not None and now - self._last_at < REREAD_AFTER
                and all(p in last for p in protos if its.covers(p))):
            # The very same record objects (the decoder reuses byte-identical ones), or
            # the same cookies in the same states.
            if self._same_objects(records):
                self.same_records = True
            elif not self._unchanged(records, segments):
                last = None
            if last is not None:
                self.reused += 1
                self.same_read = True
                self._records = records
                return {p: last[p] for p in protos if p in last}
        self.same_read = False
        for proto in protos:
            if its.covers(proto):
                try:
                    out[proto] = self._tables[proto] = its.read(proto, self._tables.get(proto))
                except (OSError, BpfUnavailable) as exc:
                    self.last_error = f"the BPF {proto} iterator failed ({getattr(exc, 'strerror', None) or exc}); its options come from pidfd_getfd"
        if records is not None and not self.last_error:
            self._last = out
            self._last_at = now
            if complete:
                self._states = dict(zip(map(_cookie_of, records), map(_state_of, records)))
                self._consistent = {id(seg): seg for seg in segments or ()}
                self._udp_count = udp_now
            else:
                self._states.update((r.cookie, r.state) for r in records)
                self._consistent = {}
            self._records = records
        else:
            self._last = None
            self._records = None
        return out

    def _same_objects(self, records: Sequence[SocketRecord]) -> bool:
        """`records` holds the very objects of the last read's list, in order. Held, not
        copied: a list changed later by its owner can only make this False (a re-read)."""
        last = self._records
        return last is not None and len(last) == len(records) and all(map(is_, last, records))

    def _unchanged(self, records: Sequence[SocketRecord], segments: Sequence[list[SocketRecord]] | None) -> bool:
        """Every record's cookie is in `_states` with its state. Given the decoder's lists
        (`segments`), those already found consistent (the same list objects) are not
        visited again: their records are the same objects with the same states."""
        # Socket cookies are unique across protocols (one counter for every socket).
        get = self._states.get
        if segments is None:
            for r in records:
                if get(r.cookie) != r.state:
                    return False
            return True
        known = self._consistent
        for seg in segments:
            if known.get(id(seg)) is seg:
                continue
            for r in seg:
                if get(r.cookie) != r.state:
                    return False
        self._consistent = {id(seg): seg for seg in segments}
        return True

    def note(self) -> str | None:
        if self.unavailable:
            return self.unavailable
        if self.last_error:
            return self.last_error
        its = self._loader.iterators
        return its.note if its is not None else None

    def close(self) -> None:
        self._last = None
        self._states = {}
        self._consistent = {}
        self._tables = {}
        self.apply_memo.reset()
        self._udp_count = None
        self._records = None
        if self._own_loader:
            self._loader.close()


_cookie_of = attrgetter("cookie")
_state_of = attrgetter("state")


class ApplyMemo:
    """What apply() did at its last call with the decoder's record lists: per list (by
    identity) its records left for pidfd_getfd and its cookies, valid against the tables
    whose serials are kept. A list given again, none of whose cookies has a row that
    changed since (Table.changed), already carries the right values."""

    def __init__(self) -> None:
        self.entries: dict[int, tuple[list[SocketRecord], list[SocketRecord], frozenset[int]]] = {}
        self.serials: dict[str, int] = {}

    def reset(self) -> None:
        self.entries = {}
        self.serials = {}

    def changed_since(self, kernel: dict[str, Table]) -> set[int] | None:
        """Cookies whose rows changed since the tables of the last call; None when the
        entries cannot be trusted (another protocol set, a read not made from those)."""
        if not self.serials or set(self.serials) != set(kernel):
            return None
        changed: set[int] = set()
        for proto, table in kernel.items():
            serial = self.serials[proto]
            if table.serial == serial:
                continue
            if table.base_serial != serial or table.changed is None:
                return None
            changed |= table.changed
        return changed


def apply(records: Sequence[SocketRecord], kernel: dict[str, Table], facts: HostFacts,
          same_read: bool = False, segments: Sequence[list[SocketRecord]] | None = None,
          memo: ApplyMemo | None = None) -> list[SocketRecord]:
    """Set the options of `records` found by the iterators (source "kernel"); return the
    records left for pidfd_getfd (see _apply_all). With the decoder's lists that make up
    `records` (`segments`) and a `memo` kept by the caller, a list applied at the last call
    whose sockets' rows did not change is not visited again: on a busy host a new read
    finds a few hundred changed rows among 100,000."""
    if segments is None or memo is None:
        if memo is not None:
            memo.reset()
        return _apply_all(records, kernel, facts, same_read)
    changed = memo.changed_since(kernel)
    entries = memo.entries if changed is not None else {}
    now: dict[int, tuple[list[SocketRecord], list[SocketRecord], frozenset[int]]] = {}
    pending: list[SocketRecord] = []
    requests: list[SocketRecord] = []
    for seg in segments:
        entry = entries.get(id(seg))
        if entry is None or entry[0] is not seg or not (changed is not None and changed.isdisjoint(entry[2])):
            entry = (seg, _apply_rows(seg, kernel, facts, requests), frozenset(map(_cookie_of, seg)))
        now[id(seg)] = entry
        pending.extend(entry[1])
    if requests:
        _from_listeners(records, requests)
    memo.entries = now
    memo.serials = {proto: table.serial for proto, table in kernel.items()}
    return pending


def _apply_rows(records: Sequence[SocketRecord], kernel: dict[str, Table], facts: HostFacts,
                requests: list[SocketRecord]) -> list[SocketRecord]:
    """_apply_all's loop for some records, every one applied; request sockets are added to
    `requests` for the caller to resolve against every listener."""
    pending: list[SocketRecord] = []
    _apply_loop(records, kernel, facts, False, pending, requests)
    return pending


def _apply_all(records: Sequence[SocketRecord], kernel: dict[str, Table], facts: HostFacts,
               same_read: bool = False) -> list[SocketRecord]:
    """Set the options of `records` found by the iterators (source "kernel"); return the
    records left for pidfd_getfd: those of a protocol no iterator covers, and TCP bound-only
    sockets (not in the established/listening hashes the iterator walks). A socket that
    vanished between the dump and the iterator is left as it is (no descriptor needed).

    `same_read`: `kernel` is the read the previous call applied; records the sock_diag
    decoder reused from then (byte-identical in the dump) already carry its values."""
    pending: list[SocketRecord] = []
    requests: list[SocketRecord] = []
    _apply_loop(records, kernel, facts, same_read, pending, requests)
    if requests:
        _from_listeners(records, requests)
    return pending


def _apply_loop(records: Sequence[SocketRecord], kernel: dict[str, Table], facts: HostFacts, same_read: bool,
                pending: list[SocketRecord], requests: list[SocketRecord]) -> None:
    tcp, udp = kernel.get("tcp"), kernel.get("udp")
    tcp_rows = tcp.rows if tcp is not None else None
    udp_rows = udp.rows if udp is not None else None
    any_table = tcp if tcp is not None else udp  # an empty table is falsy: compare with None
    assert any_table is not None
    # The flag tables depend only on the kernel's bit layout: the same for both protocols.
    ra_of, rp_of, v6_of = any_table.ra, any_table.rp, any_table.v6
    bucket_of = tcp.bucket if tcp is not None else None
    chain_pos = udp.chain_pos if udp is not None else {}
    ifname = facts.ifname
    for rec in records:
        if same_read:
            src = rec.option_source
            if src is not None and src.get("reuseaddr") == KERNEL:
                continue
        if rec.proto == "tcp":
            if tcp_rows is None:
                pending.append(rec)
                continue
            t = tcp_rows.get(rec.cookie)
            if t is None:
                if rec.state == "UNCONN":
                    pending.append(rec)
                continue
            rec.bind_bucket = bucket_of(t)  # type: ignore[misc]
            if t[HAS_TB2]:
                rec.bind2_fastreuse = t[TB2_FASTREUSE]
                rec.bind2_fastreuseport = t[TB2_FASTREUSEPORT]
            if t[STATE] == TCP_NEW_SYN_RECV:
                requests.append(rec)
                continue
        else:
            if udp_rows is None:
                pending.append(rec)
                continue
            t = udp_rows.get(rec.cookie)
            if t is None:
                continue
            rec.udp_bucket = t[UDP_BUCKET]
            rec.udp_chain_pos = chain_pos[rec.cookie]
        rec.reuseaddr = ra_of[t[RA]]
        rec.reuseport = rp_of[t[RP]]
        src = rec.option_source
        if rec.family == 6 and (src is None or src.get("v6only") != "diag"):  # sock_diag's is the kernel's too
            rec.v6only = v6_of[t[V6]]
            rec.option_source = with_sources(src, KERNEL, KERNEL)
        else:
            rec.option_source = with_sources(src, KERNEL)
        dev = t[DEV]
        if dev and rec.device is None:
            rec.ifindex = rec.ifindex or dev
            rec.device = ifname(dev)


def _covers(listener: SocketRecord, rec: SocketRecord) -> bool:
    if listener.local_addr == rec.local_addr:
        return True
    if listener.family == 4:
        return listener.local_addr == "0.0.0.0" and (rec.family == 4 or rec.local_addr.startswith("::ffff:"))
    if listener.local_addr != "::":
        return False
    return not (listener.v6only and (rec.family == 4 or rec.local_addr.startswith("::ffff:")))


def _from_listeners(records: Sequence[SocketRecord], requests: list[SocketRecord]) -> None:
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
            set_options(rec, (bool(ra), bool(rp), bool(v6), None), KERNEL)


def buckets_by_port(kernel: dict[str, Table], port: int | None = None) -> dict[int, list[BindBucket]] | None:
    """Snapshot.tcp_buckets: each TCP port's distinct bind buckets (one per l3mdev). Only
    buckets that a socket the iterator walks hangs on: a port held only by bound-only
    sockets has its bucket, but this does not list it."""
    tcp = kernel.get("tcp")
    if tcp is None:
        return None
    if port is not None and tcp.by_port is None:
        # One port (check, why): its sockets' buckets alone, not every port's (~25,000).
        found = {id(b): b for b in tcp.buckets_of_port(port)}
        return {port: list(found.values())} if found else {}
    by_port = tcp.by_port
    if by_port is None:  # once per iterator read (a reused read is asked again)
        by_port = {}
        for b in tcp.buckets():
            by_port.setdefault(b.port, []).append(b)
        tcp.by_port = by_port
    if port is not None:
        return {port: list(by_port[port])} if port in by_port else {}
    # The cached dict itself (snapshots are read-only): copying 25,000 lists per refresh
    # cost more than the rest of a warm refresh's bookkeeping together.
    return by_port


__all__ = ["KernelOptions", "apply", "buckets_by_port"]
