"""`Collector`: one namespace's sockets, owners, options and host facts as a Snapshot.

Keeps what makes a warm refresh cheap: the sock_diag socket (bound to its namespace
for life), the decoder's address cache, the owner cache, the option memory, and the
host facts (re-read every FACTS_TTL seconds: interfaces and sysctls change rarely).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Literal

from sockscope.model import HostFacts, Snapshot, SocketRecord

from . import netns as netns_mod
from .bpf import kernel_options
from .bpf.task_files import TaskFileOwners
from .hostfacts import read_host_facts
from .owners import OwnerIndex
from .options import OptionReader
from .procfs import collect_procfs
from .sockdiag import SockDiag

Method = Literal["auto", "sockdiag", "procfs"]
FACTS_TTL = 5.0


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
    ) -> None:
        if method not in ("auto", "sockdiag", "procfs"):
            raise ValueError(f"unknown collector {method!r}: choose auto, sockdiag or procfs")
        self.netns = netns
        self.method = method
        self.read_options = read_options
        self.resolve_owners = resolve_owners
        self._sockdiag: SockDiag | None = None
        self._owners = OwnerIndex() if resolve_owners else None
        self._options = OptionReader() if read_options else None
        # BPF iterators: options of every socket (TIME-WAIT included) and the TCP bind
        # buckets, without a descriptor. Loaded once, on the first snapshot.
        self._kernel = kernel_options.KernelOptions() if read_options and use_bpf else None
        self._task_files: TaskFileOwners | None = None
        if self._owners is not None and use_bpf:
            # Owners from the BPF task-file iterator; the /proc/*/fd scan when unavailable.
            self._task_files = TaskFileOwners()
            self._owners.fd_source = self._task_files
        self._facts: HostFacts | None = None
        self._facts_at = 0.0
        self.fallback_reason: str | None = None
        try:
            with netns_mod.entered(netns):
                if method in ("auto", "sockdiag"):
                    try:
                        self._sockdiag = SockDiag()
                    except OSError as exc:
                        if method == "sockdiag":
                            raise CollectorError(f"sock_diag is not available: {exc.strerror or exc}") from None
                        self.fallback_reason = f"sock_diag unavailable ({exc.strerror or exc}); reading /proc/net"
        except (OSError, ValueError) as exc:
            if isinstance(exc, CollectorError):
                raise
            raise CollectorError(str(exc.args[-1]) if isinstance(exc, OSError) and exc.args else str(exc)) from None

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
        protos = tuple(protos)
        now = time.time()
        try:
            with netns_mod.entered(self.netns):
                facts = self._host_facts(time.monotonic())
                records = self._collect(protos, states, facts)
                # After the dump: every socket it holds that is still alive is in the
                # iterator, which reads the namespace this thread is in.
                kernel = (self._kernel.read(protos, None if fresh else records, complete=states is None)
                          if self._kernel is not None and self.kind == "sockdiag" else None)
        except FileNotFoundError as exc:
            raise CollectorError(exc.strerror or str(exc)) from None
        busy: frozenset[tuple[str, int]] | None = None
        if port is not None:
            busy = frozenset((r.proto, r.local_port) for r in records)
            records = [r for r in records if r.local_port == port]
        complete = states is None and port is None and set(protos) >= {"tcp", "udp"}
        limitation = self._enrich(records, facts, complete=complete, kernel=kernel, fresh=fresh)
        if self.fallback_reason:
            limitation = self.fallback_reason + (f"; {limitation}" if limitation else "")
        return Snapshot(
            sockets=records,
            taken_at=now,
            netns=self.netns,
            facts=facts,
            collector=self.kind,
            limitation=limitation,
            busy_ports=busy,
            tcp_buckets=kernel_options.buckets_by_port(kernel, port) if kernel else None,
        )

    def _collect(self, protos: tuple[str, ...], states, facts: HostFacts) -> list[SocketRecord]:
        if self._sockdiag is not None:
            self._sockdiag.decoder.ifnames = facts.interfaces
            try:
                return self._sockdiag.collect(protos, states)
            except PermissionError as exc:
                if self.method == "sockdiag":
                    raise CollectorError(f"sock_diag dump refused: {exc.strerror or exc}") from None
                self.fallback_reason = f"sock_diag refused ({exc.strerror or exc}); reading /proc/net"
                self.close()
        records = collect_procfs(facts)
        wanted_protos = set(protos)
        return [
            r for r in records if r.proto in wanted_protos and (states is None or r.state in states)
        ]

    def _enrich(self, records: list[SocketRecord], facts: HostFacts, complete: bool = True,
                kernel: dict | None = None, fresh: bool = False) -> str | None:
        notes: list[str] = []
        if self._owners is not None:
            owners = self._owners.lookup({r.inode for r in records if r.inode}, incremental=True)
            unowned = 0
            for r in records:
                if r.inode:
                    found = owners.get(r.inode)
                    if found is not None:
                        r.owners = found
                    else:
                        unowned += 1
                        if r.owners:
                            r.owners = []
            if os.geteuid() != 0 and self._owners.limitation:
                notes.append(self._owners.limitation)
            if unowned and os.geteuid() == 0:
                what = "owners are" if kernel and len(kernel) >= 2 else "owners and reuse options are"
                notes.append(
                    f"{unowned} socket(s) have no visible owner (held by a process in another PID "
                    f"namespace, or closed meanwhile): their {what} unknown"
                )
        pending: list[SocketRecord] = records
        if self._kernel is not None and self.kind == "sockdiag":
            if kernel:
                # pidfd_getfd only for what the iterators cannot see.
                ko = self._kernel
                if ko.same_records and complete and ko.applied_complete:
                    pending = ko.pending  # nothing changed: every record carries its values
                else:
                    pending = ko.pending = kernel_options.apply(records, kernel, facts, same_read=ko.same_read)
                    ko.applied_complete = complete
            note = self._kernel.note()
            if note:
                notes.append(note)
        if self._options is not None and self.kind == "sockdiag":
            note = self._options.apply(pending, complete=complete, defer_new=not fresh)
            if note:
                notes.append(note)
        elif self.kind == "procfs":
            notes.append("reading /proc/net: socket cookies, devices and reuse options are unknown")
        return "; ".join(notes) if notes else None
