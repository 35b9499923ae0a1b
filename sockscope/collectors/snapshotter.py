"""`Collector`: one namespace's sockets, owners, options and host facts as a Snapshot.

Keeps what makes a warm refresh cheap: the sock_diag socket (bound to its namespace
for life), the decoder's address cache, the owner cache, the option memory, and the
host facts (re-read every FACTS_TTL seconds: interfaces and sysctls change rarely).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from operator import attrgetter
from typing import Literal

from sockscope.model import BindBucket, HostFacts, Owner, Snapshot, SocketRecord

from . import netns as netns_mod
from .bpf import kernel_options
from .bpf.task_files import TaskFileOwners
from .gcpause import gc_paused
from .hostfacts import read_host_facts
from .owners import OwnerIndex
from .options import OptionReader
from .procfs import collect_procfs
from .sockdiag import SockDiag

Method = Literal["auto", "sockdiag", "procfs"]
FACTS_TTL = 5.0
NOTICE_SECONDS = 60.0  # how long a "namespace re-created" notice stays in `limitation`


class CollectorError(Exception):
    """The namespace or the socket tables cannot be read at all (one clear sentence)."""


class Collector:
    def __init__(
        self,
        netns: str | None = None,
        method: Method = "auto",
        read_options: bool = True,
        resolve_owners: bool = True,
        use_bpf: bool = True,
        follow_name: bool = True,
        one_shot: bool = False,
        iterators: kernel_options.IteratorLoader | None = None,
        task_files: TaskFileOwners | None = None,
    ) -> None:
        """`netns`: an `ip netns` name or a path to a namespace file (None: our own).
        The namespace is opened once and always entered by that descriptor, so its
        identity is its inode. With `follow_name`, each snapshot checks that the name
        still leads to it: a deleted name is an error, a re-created one is re-entered and
        announced in `limitation` (and `notice`). MultiCollector passes False: it follows
        namespaces by discovery instead. `one_shot`: the collector takes one snapshot (a
        one-shot command), so the decoder keeps nothing for a warm refresh. `iterators`:
        BPF iterators shared with other namespaces (MultiCollector, whose namespaces read
        no options themselves: read_options=False); their flags and buckets are read in
        this namespace all the same. `task_files`: the task-file iterator shared with other
        collectors (the exporter's namespaces); neither shared object is closed here."""
        if method not in ("auto", "sockdiag", "procfs"):
            raise ValueError(f"unknown collector {method!r}: choose auto, sockdiag or procfs")
        self.netns = netns
        self.method = method
        self.one_shot = one_shot
        self.read_options = read_options
        self.resolve_owners = resolve_owners
        self._sockdiag: SockDiag | None = None
        self._owners = OwnerIndex() if resolve_owners else None
        self._owner_memo = OwnerMemo()
        self._options = OptionReader() if read_options else None
        # BPF iterators: options of every socket (TIME-WAIT included) and the TCP bind
        # buckets, without a descriptor. Loaded once, on the first snapshot.
        self._kernel = (
            kernel_options.KernelOptions(loader=iterators)
            if use_bpf and (read_options or iterators is not None) else None
        )
        self._task_files: TaskFileOwners | None = None  # this collector's own, closed with it
        if self._owners is not None and use_bpf:
            # Owners from the BPF task-file iterator; the /proc/*/fd scan when unavailable.
            if task_files is None:
                self._task_files = task_files = TaskFileOwners()
            self._owners.fd_source = task_files
        self.last_kernel: dict | None = None  # what the BPF iterators read in the last collect_raw()
        self.ports_seen: frozenset[tuple[str, int]] | None = None  # collect_raw(port=...): ports in use
        self._facts: HostFacts | None = None
        self._facts_at = 0.0
        self.fallback_reason: str | None = None
        self.follow_name = follow_name
        self._ns_fd: int | None = None
        self.netns_inode: int | None = None  # the inode of the namespace read (None: our own)
        self.notice: str | None = None
        self._notice_until = 0.0
        self._open_namespace()

    def _open_namespace(self) -> None:
        try:
            if self.netns is not None:
                fd = netns_mod.open_netns(self.netns)
                self._ns_fd = fd
                self.netns_inode = os.fstat(fd).st_ino
            with netns_mod.entered_fd(self._ns_fd, repr(self.netns)):
                if self.method in ("auto", "sockdiag"):
                    try:
                        self._sockdiag = SockDiag(keep=not self.one_shot)
                    except OSError as exc:
                        if self.method == "sockdiag":
                            raise CollectorError(f"sock_diag is not available: {exc.strerror or exc}") from None
                        self.fallback_reason = f"sock_diag unavailable ({exc.strerror or exc}); reading /proc/net"
        except (OSError, ValueError) as exc:
            self.close()
            if isinstance(exc, CollectorError):
                raise
            raise CollectorError(str(exc.args[-1]) if isinstance(exc, OSError) and exc.args else str(exc)) from None
        except CollectorError:
            self.close()
            raise

    def _check_identity(self) -> None:
        """The name must still lead to the namespace we hold: a namespace deleted and
        re-created under the same name is a new one, with new sockets, interfaces and
        sysctls, and reading the old one's sockets with the new one's facts would be wrong."""
        if self.netns is None or not self.follow_name:
            return
        try:
            path = netns_mod.netns_path(self.netns)
            now_ino = os.stat(path).st_ino
        except FileNotFoundError:
            # Let it go: our descriptor and sock_diag socket would keep the dead namespace
            # (and its interfaces) alive. If the name comes back, the next call re-enters.
            self.close()
            raise CollectorError(f"network namespace {self.netns!r} no longer exists") from None
        except (OSError, ValueError) as exc:
            raise CollectorError(f"cannot open network namespace {self.netns!r}: {exc}") from None
        if now_ino == self.netns_inode and self._ns_fd is not None:
            return  # (while we hold it, its inode number cannot go to another namespace)
        old = self.netns_inode
        self.close()
        self._facts = None
        self._open_namespace()
        self.notice = (
            f"network namespace {self.netns!r} was deleted and re-created (inode {old} -> "
            f"{self.netns_inode}): now reading the new one"
        )
        self._notice_until = time.monotonic() + NOTICE_SECONDS

    def __enter__(self) -> "Collector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._kernel is not None:
            self._kernel.close()
        if self._task_files is not None:
            self._task_files.close()
        if self._sockdiag is not None:
            self._sockdiag.close()
            self._sockdiag = None
        if self._ns_fd is not None:
            os.close(self._ns_fd)
            self._ns_fd = None

    @property
    def kind(self) -> str:
        return "sockdiag" if self._sockdiag is not None else "procfs"

    def _host_facts(self, now: float) -> HostFacts:
        if self._facts is None or now - self._facts_at > FACTS_TTL:
            self._facts = read_host_facts()
            self._facts_at = now
        return self._facts

    def snapshot(
        self,
        states: set[str] | frozenset[str] | None = None,
        protos: Iterable[str] = ("tcp", "udp"),
        port: int | None = None,
        fresh: bool = False,
    ) -> Snapshot:
        """The namespace's sockets now. `states`/`protos` ask the kernel for less; `port`
        keeps only sockets with that local port, before owners and options are looked up
        (what `sockscope check` needs on a host with 100,000 sockets). `fresh` answers a
        question about now, as a one-shot command does: the BPF iterators are read again
        even when the dump looks unchanged (a socket that bound and closed between two
        snapshots rewrote its port's bind bucket without a trace in the dump, and the
        predictor's fast path depends on that bucket), and sockets first seen now have
        their options read at once rather than at the next refresh."""
        with gc_paused():
            return self._snapshot(tuple(protos), states, port, fresh)  # why: gcpause.py

    def _snapshot(self, protos: tuple[str, ...], states: set[str] | frozenset[str] | None,
                  port: int | None, fresh: bool) -> Snapshot:
        now = time.time()
        records, facts = self.collect_raw(protos, states, fresh=fresh, port=port)
        busy = self.ports_seen
        complete = states is None and port is None and set(protos) >= {"tcp", "udp"}
        # The decoder's lists make up `records` exactly unless a port filter picked some.
        segments = self._sockdiag.decoder.segments if self._sockdiag is not None and port is None else None
        limitation = self._enrich(records, facts, complete=complete, fresh=fresh, segments=segments,
                                  only_owners=port is not None)
        if self.fallback_reason:
            limitation = self.fallback_reason + (f"; {limitation}" if limitation else "")
        if self.notice and time.monotonic() < self._notice_until:
            limitation = self.notice + (f"; {limitation}" if limitation else "")
        return Snapshot(
            sockets=records,
            taken_at=now,
            netns=self.netns,
            facts=facts,
            collector=self.kind,
            limitation=limitation,
            busy_ports=busy,
            tcp_buckets=self.buckets(port),
        )

    def collect_raw(
        self, protos: Iterable[str] = ("tcp", "udp"), states: set[str] | frozenset[str] | None = None,
        fresh: bool = False, port: int | None = None,
    ) -> tuple[list[SocketRecord], HostFacts]:
        """The namespace's sockets and facts, without owners and options (MultiCollector
        resolves those once for every namespace together). The BPF iterators are read here,
        inside the namespace (they walk the caller's): `last_kernel`, for apply_kernel()
        and buckets(). With `port`, only the sockets with that local port, and
        `ports_seen` holds every (protocol, local port) in use."""
        self._check_identity()
        if self._ns_fd is None and self.netns is not None:
            raise CollectorError(f"network namespace {self.netns!r} is closed")
        protos = tuple(protos)
        try:
            with netns_mod.entered_fd(self._ns_fd, repr(self.netns)):
                facts = self._host_facts(time.monotonic())
                records = self._collect(protos, states, facts, port)
                # After the dump: every socket it holds that is still alive is in the
                # iterator, which reads the namespace this thread is in.
                self.last_kernel = (
                    self._kernel.read(protos, None if fresh else records, complete=states is None and port is None,
                                      segments=self._sockdiag.decoder.segments if self._sockdiag is not None else None)
                    if self._kernel is not None and self.kind == "sockdiag" else None
                )
        except FileNotFoundError as exc:
            raise CollectorError(exc.strerror or str(exc)) from None
        return records, facts

    def _collect(self, protos: tuple[str, ...], states, facts: HostFacts, port: int | None = None) -> list[SocketRecord]:
        if self._sockdiag is not None:
            self._sockdiag.decoder.ifnames = facts.interfaces
            try:
                got = self._sockdiag.collect(protos, states, port)
                self.ports_seen = self._sockdiag.ports_seen
                return got
            except PermissionError as exc:
                if self.method == "sockdiag":
                    raise CollectorError(f"sock_diag dump refused: {exc.strerror or exc}") from None
                self.fallback_reason = f"sock_diag refused ({exc.strerror or exc}); reading /proc/net"
                self.close()
        records = collect_procfs(facts)
        wanted_protos = set(protos)
        records = [r for r in records if r.proto in wanted_protos and (states is None or r.state in states)]
        if port is None:
            self.ports_seen = None
            return records
        self.ports_seen = frozenset((r.proto, r.local_port) for r in records)
        return [r for r in records if r.local_port == port]

    def _enrich(self, records: list[SocketRecord], facts: HostFacts, complete: bool = True,
                fresh: bool = False, segments: list[list[SocketRecord]] | None = None,
                only_owners: bool = False) -> str | None:
        pending, covered, note = self.apply_kernel(records, facts, complete, segments)
        return enrich(records, self._owners, self._options, self.kind, complete,
                      option_records=pending, kernel_covered=covered, kernel_note=note, fresh=fresh,
                      segments=segments, memo=self._owner_memo, only_owners=only_owners)

    def apply_kernel(self, records: list[SocketRecord], facts: HostFacts, complete: bool = False,
                     segments: list[list[SocketRecord]] | None = None) -> tuple[list[SocketRecord], bool, str | None]:
        """Options the BPF iterators of the last collect_raw() read, set on `records` (source
        "kernel"): (the records left for pidfd_getfd, whether both protocols were covered,
        one line on what BPF could not do). `complete`: `records` is the whole dump.
        `segments`: the decoder's lists `records` is made of (see kernel_options.apply)."""
        ko = self._kernel
        if ko is None or self.kind != "sockdiag":
            return records, False, None
        kernel = self.last_kernel
        pending: list[SocketRecord] = records
        if kernel:
            if ko.same_records and complete and ko.applied_complete:
                pending = ko.pending  # nothing changed: every record carries its values
            else:
                pending = ko.pending = kernel_options.apply(records, kernel, facts, same_read=ko.same_read,
                                                            segments=segments, memo=ko.apply_memo)
                ko.applied_complete = complete
        return pending, bool(kernel) and len(kernel or {}) >= 2, ko.note()

    def buckets(self, port: int | None = None) -> dict[int, list[BindBucket]] | None:
        """Snapshot.tcp_buckets from the last collect_raw(): None when BPF did not read them."""
        return kernel_options.buckets_by_port(self.last_kernel, port) if self.last_kernel else None


_inode_of = attrgetter("inode")


class OwnerMemo:
    """What the last enrich() of one Collector resolved: the record lists (the decoder's
    segments) it gave owners to, at which OwnerIndex version, and how many of each had
    none. A list given again (the same object: the decoder reused a whole buffer) at the
    same version holds records whose owners are already right, so 100,000 of them are
    not visited again (a visit costs a cache miss or two each: ~25 ms per refresh)."""

    def __init__(self) -> None:
        self.version = -1
        self.unowned: dict[int, tuple[list[SocketRecord], int]] = {}  # id(list) -> (list, sockets without owner)

    def reset(self) -> None:
        self.version = -1
        self.unowned = {}


def _resolve_owners(records: list[SocketRecord], owners: Mapping[int, list[Owner]]) -> int:
    """Set each record's owners; the number of sockets with an inode and no owner."""
    unowned = 0
    # Looked up all at once; a record that holds its owners already (the same list
    # object) is not written again.
    for r, found in zip(records, map(owners.get, map(_inode_of, records))):
        if found is not None:
            if r.owners is not found:
                r.owners = found
        elif r.inode:
            unowned += 1
            if r.owners:
                r.owners = []
    return unowned


def enrich(
    records: list[SocketRecord],
    owner_index: OwnerIndex | None,
    option_reader: OptionReader | None,
    kind: str,
    complete: bool = True,
    *,
    option_records: list[SocketRecord] | None = None,
    kernel_covered: bool = False,
    kernel_note: str | None = None,
    fresh: bool = False,
    segments: list[list[SocketRecord]] | None = None,
    memo: OwnerMemo | None = None,
    only_owners: bool = False,
) -> str | None:
    """Owners and options of `records`, in place; one line on what could not be known.
    Socket inodes and cookies are unique host-wide, so one OwnerIndex and one OptionReader
    serve every namespace. `option_records`: the records whose options the BPF iterators
    did not give (pidfd_getfd reads those); None = all of them. `segments` (the lists
    `records` is made of, as the decoder delivered them) with a `memo` kept by the caller
    skip the lists resolved at the last call. `only_owners`: `records` are one port's
    (a one-shot question): the owners of those sockets alone are looked up (see
    OwnerIndex.lookup)."""
    notes: list[str] = []
    if owner_index is not None:
        owners = owner_index.lookup(set(filter(None, map(_inode_of, records))), incremental=True, only=only_owners)
        if segments is None or memo is None:
            if memo is not None:
                memo.reset()
            unowned = _resolve_owners(records, owners)
        else:
            done = memo.unowned if memo.version == owner_index.version else {}
            now: dict[int, tuple[list[SocketRecord], int]] = {}
            unowned = 0
            for seg in segments:
                seen = done.get(id(seg))
                n = seen[1] if seen is not None and seen[0] is seg else _resolve_owners(seg, owners)
                now[id(seg)] = (seg, n)
                unowned += n
            memo.unowned, memo.version = now, owner_index.version
        if os.geteuid() != 0 and owner_index.limitation:
            notes.append(owner_index.limitation)
        if unowned and os.geteuid() == 0:
            what = "owners are" if kernel_covered else "owners and reuse options are"
            notes.append(
                f"{unowned} socket(s) have no visible owner (held by a process in another PID "
                f"namespace, or closed meanwhile): their {what} unknown"
            )
    if kernel_note:
        notes.append(kernel_note)
    if option_reader is not None and kind == "sockdiag":
        note = option_reader.apply(records if option_records is None else option_records,
                                   complete=complete, defer_new=not fresh)
        if note:
            notes.append(note)
    elif kind == "procfs":
        notes.append("reading /proc/net: socket cookies, devices and reuse options are unknown")
    return "; ".join(notes) if notes else None
