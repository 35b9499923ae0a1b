"""`MultiCollector`: every network namespace of the host in one Snapshot.

One `Collector` per namespace (its own sock_diag socket, made inside the namespace and
entered by descriptor, and its own host facts), created when discovery first sees the
namespace and closed when it is gone. Owners and options are resolved once for all of
them: socket inodes and cookies are unique host-wide, so one OwnerIndex scan of /proc and
one OptionReader serve every namespace, and 50 namespaces with a few sockets each cost
one /proc scan, not 50.

The result is one merged Snapshot, the shape the CLI and the TUI already use: each record
carries `netns` (a NetnsRef), `Snapshot.namespaces` holds each namespace's own facts, and
`Snapshot.for_netns(inode)` is the single-namespace snapshot the predictor needs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

from sockscope.model import HostFacts, NetnsView, Snapshot, SocketRecord
from sockscope.sanitize import host_text

from .bpf import kernel_options
from .bpf.task_files import TaskFileOwners
from .containers import RuntimeRoots
from .gcpause import gc_paused
from .namespaces import Discovery, Namespace
from .options import OptionReader
from .owners import OwnerIndex
from .snapshotter import NOTICE_SECONDS, Collector, CollectorError, Method, enrich

MAX_EVENTS = 50  # namespace events (appeared, gone, re-created) kept for the TUI header


class MultiCollector:
    def __init__(
        self,
        method: Method = "auto",
        read_options: bool = True,
        resolve_owners: bool = True,
        discovery: Discovery | None = None,
        roots: RuntimeRoots | None = None,
        only: set[tuple[int, int]] | None = None,
        one_shot: bool = False,
        use_bpf: bool = True,
    ) -> None:
        """`only`: watch just these (dev, inode) namespaces (None: every one). `one_shot`:
        one snapshot (a one-shot command): the namespaces' decoders keep nothing for a
        warm refresh (Collector). `use_bpf`: flags, buckets and owners from the BPF
        iterators, loaded once for every namespace (pidfd_getfd and the /proc scan for
        what they do not cover, or without BPF)."""
        if method not in ("auto", "sockdiag", "procfs"):
            raise ValueError(f"unknown collector {method!r}: choose auto, sockdiag or procfs")
        self.method = method
        self.one_shot = one_shot
        self.discovery = discovery or Discovery(roots=roots)
        self.only = only
        self._owners = OwnerIndex() if resolve_owners else None
        self._options = OptionReader() if read_options else None
        # One set of socket iterators for every namespace (each read walks the namespace
        # the reading thread is in), and owners from one task-file iterator read.
        self._iterators = kernel_options.IteratorLoader() if read_options and use_bpf else None
        self._task_files: TaskFileOwners | None = None
        if self._owners is not None and use_bpf:
            self._task_files = TaskFileOwners()
            self._owners.fd_source = self._task_files
        self._children: dict[tuple[int, int], tuple[Namespace, Collector]] = {}
        # (kind, name) -> the namespace it named, for `ip netns` names and containers: the
        # same name on a new namespace means it was deleted and re-created (or restarted)
        self._names: dict[tuple[str, str], tuple[int, int]] = {}
        self.events: list[str] = []  # newest last, bounded; names already made safe to print
        self._recent: list[tuple[float, str]] = []  # (monotonic time, event): shown for a while
        self.discover_seconds = 0.0
        self._host = os.stat("/proc/self/ns/net")

    def __enter__(self) -> "MultiCollector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for _ns, child in self._children.values():
            child.close()
        self._children.clear()
        if self._iterators is not None:
            self._iterators.close()
        if self._task_files is not None:
            self._task_files.close()

    def discover_keys(self) -> frozenset[tuple[int, int]]:
        """The namespaces a snapshot would read now: one discovery pass, nothing opened."""
        keys = frozenset(n.key for n in self.discovery.discover())
        return keys if self.only is None else keys & frozenset(self.only)

    def children(self) -> dict[tuple[int, int], tuple[str, int | None]]:
        """The namespaces the last snapshot read: key -> (its name, safe to show, the descriptor
        its Collector enters it by, None for this process's own)."""
        return {key: (host_text(ns.ref.name), child._ns_fd) for key, (ns, child) in self._children.items()}

    @property
    def kind(self) -> str:
        kinds = {c.kind for _n, c in self._children.values()}
        return "procfs" if kinds == {"procfs"} else "sockdiag"

    def _event(self, text: str) -> None:
        self.events.append(text)
        del self.events[:-MAX_EVENTS]
        self._recent.append((time.monotonic(), text))

    def _notices(self) -> str | None:
        """Recent re-creations (announced in `limitation` for NOTICE_SECONDS); namespaces
        that merely come and go are not news on a container host."""
        now = time.monotonic()
        self._recent = [(t, e) for t, e in self._recent[-MAX_EVENTS:] if now - t < NOTICE_SECONDS]
        texts = [e for _t, e in self._recent if "re-created" in e]
        return "; ".join(texts) if texts else None

    def _sync(self) -> list[tuple[Namespace, Collector]]:
        """Open collectors for new namespaces, close those of vanished ones."""
        started = time.monotonic()
        spaces = self.discovery.discover()
        if self.only is not None:
            spaces = [n for n in spaces if n.key in self.only]
        seen = {n.key for n in spaces}
        for key in [k for k in self._children if k not in seen]:
            ns, child = self._children.pop(key)
            child.close()  # our sock_diag socket must not keep a dead namespace alive
            self._event(f"namespace {host_text(ns.ref.name)} is gone")
        live: list[tuple[Namespace, Collector]] = []
        for ns in spaces:
            entry = self._children.get(ns.key)
            if entry is None:
                opened = self._open(ns)
                if opened is None:
                    continue
                for kind, name in self._named_as(ns):
                    before = self._names.get((kind, name))
                    if before is not None and before != ns.key:
                        what = "namespace" if kind == "netns" else "container"
                        self._event(
                            f"{what} {host_text(name)}: its network namespace was deleted and re-created "
                            f"(inode {before[1]} -> {ns.ino}): reading the new one"
                        )
                entry = self._children[ns.key] = (ns, opened)
            else:
                entry = self._children[ns.key] = (ns, entry[1])  # names may have changed
            for kind_name in self._named_as(ns):
                self._names[kind_name] = ns.key
            live.append(entry)
        if len(self._names) > 4 * len(self._children) + 64:
            self._names = {k: v for k, v in self._names.items() if v in self._children}
        self.discover_seconds = time.monotonic() - started
        return live

    @staticmethod
    def _named_as(ns: Namespace) -> list[tuple[str, str]]:
        names = [("netns", n) for n in ns.names]
        if ns.container is not None:
            names.append(("container", ns.container.name))
        return names

    def _open(self, ns: Namespace) -> Collector | None:
        own = (ns.dev, ns.ino) == (self._host.st_dev, self._host.st_ino)
        try:
            child = Collector(
                netns=None if own else ns.path,
                method=self.method,
                read_options=False,
                resolve_owners=False,
                follow_name=False,
                one_shot=self.one_shot,
                iterators=self._iterators,
            )
        except CollectorError:
            return None  # gone between discovery and opening
        if child.netns_inode is not None and child.netns_inode != ns.ino:
            child.close()  # the path now leads elsewhere (pid reused): next discovery sorts it out
            return None
        return child

    def namespaces(self) -> list[Namespace]:
        """The namespaces watched after the last snapshot, in display order."""
        return [ns for ns, _c in self._children.values()]

    def snapshot(
        self,
        states: set[str] | frozenset[str] | None = None,
        protos: Iterable[str] = ("tcp", "udp"),
        port: int | None = None,
    ) -> Snapshot:
        with gc_paused():  # a refresh allocates 100,000s of acyclic objects: gcpause.py
            return self._snapshot(tuple(protos), states, port)

    def _snapshot(self, protos: tuple[str, ...], states: set[str] | frozenset[str] | None,
                  port: int | None) -> Snapshot:
        now = time.time()
        records: list[SocketRecord] = []
        views: dict[int, NetnsView] = {}
        host_facts: HostFacts | None = None
        option_records: list[SocketRecord] = []
        all_covered = True
        kernel_notes: list[str] = []
        for ns, child in self._sync():
            try:
                got, facts = child.collect_raw(protos, states, port=port)
            except (CollectorError, OSError):
                # Vanished between discovery and the dump: dropped without an error.
                self._children.pop(ns.key, None)
                child.close()
                self._event(f"namespace {host_text(ns.ref.name)} is gone")
                continue
            ref = ns.ref
            busy = child.ports_seen
            for r in got:
                r.netns = ref
            records.extend(got)
            # BPF flags are read inside each namespace; pidfd_getfd (shared) for the rest.
            pending, covered, note = child.apply_kernel(got, facts, states is None and port is None)
            option_records.extend(pending)
            all_covered = all_covered and covered
            if note and note not in kernel_notes:
                kernel_notes.append(note)
            views[ns.ino] = NetnsView(ref, facts, child.kind, busy, child.buckets(port))
            if ref.kind == "host":
                host_facts = facts
        complete = states is None and port is None and set(protos) >= {"tcp", "udp"}
        limitation = enrich(records, self._owners, self._options, self.kind, complete,
                            option_records=option_records, kernel_covered=all_covered and bool(views),
                            kernel_note="; ".join(kernel_notes) or None, only_owners=port is not None)
        notices = self._notices()
        if notices:
            limitation = notices + (f"; {limitation}" if limitation else "")
        return Snapshot(
            sockets=records,
            taken_at=now,
            netns=None,
            facts=host_facts or HostFacts(),
            collector=self.kind,
            limitation=limitation,
            namespaces=views,
        )
