"""The socket model shared by the collectors, the predictor, the CLI and the TUI.

One `SocketRecord` per kernel socket, held in a `Snapshot` together with the
host facts the conflict predictor needs. Records are plain slotted dataclasses:
a host may have 100,000 of them and they are rebuilt every refresh.

Three-valued options: `reuseaddr`, `reuseport` and `v6only` are `True`,
`False` or `None`; `None` means "could not be read" and must never be
replaced by a guess (see shared/kernel-bind-rules.md §8).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal

Proto = Literal["tcp", "udp"]

# TCP states as the kernel numbers them (include/net/tcp_states.h), named as ss names them.
TCP_STATES: dict[int, str] = {
    1: "ESTAB",
    2: "SYN-SENT",
    3: "SYN-RECV",
    4: "FIN-WAIT-1",
    5: "FIN-WAIT-2",
    6: "TIME-WAIT",
    7: "UNCONN",  # TCP_CLOSE: a bound-only socket (BOUND_INACTIVE dump) or a closed one
    8: "CLOSE-WAIT",
    9: "LAST-ACK",
    10: "LISTEN",
    11: "CLOSING",
    12: "SYN-RECV",  # TCP_NEW_SYN_RECV: a request socket, shown as ss shows it
    13: "UNCONN",  # TCP_BOUND_INACTIVE
}
STATE_NAMES: tuple[str, ...] = (
    "LISTEN",
    "ESTAB",
    "SYN-SENT",
    "SYN-RECV",
    "FIN-WAIT-1",
    "FIN-WAIT-2",
    "TIME-WAIT",
    "CLOSE-WAIT",
    "LAST-ACK",
    "CLOSING",
    "UNCONN",
)
# Timer kinds as sock_diag's idiag_timer numbers them, named as ss names them.
TIMER_KINDS: dict[int, str] = {1: "on", 2: "keepalive", 3: "timewait", 4: "persist"}


@dataclass(slots=True)
class Owner:
    """One (process, fd) that holds a socket."""

    pid: int
    fd: int
    process: str
    user: str | None = None
    cmdline: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "fd": self.fd, "process": self.process, "user": self.user}


def owner_order(o: Owner) -> tuple[int, int]:
    """The order of a socket's owners: by pid, then fd."""
    return (o.pid, o.fd)


def first_owner(owners: list[Owner]) -> Owner | None:
    """The owner a socket is shown by: the lowest (pid, fd). (The collectors keep owner
    lists in that order; a single owner, nearly every socket, costs no min().)"""
    if not owners:
        return None
    return owners[0] if len(owners) == 1 else min(owners, key=owner_order)


@dataclass(slots=True, frozen=True)
class NetnsRef:
    """A network namespace: its identity is the inode of /proc/PID/ns/net (a name can be
    deleted and re-created for another namespace). `kind`: "host", "netns" (an `ip netns`
    name), "container", "process" (named after its main process), "mount" (bind-mounted)."""

    inode: int
    name: str
    kind: str

    def to_json(self) -> dict[str, Any]:
        return {"inode": self.inode, "name": self.name, "kind": self.kind}


@dataclass(slots=True, frozen=True)
class BindBucket:
    """One TCP port's bind bucket (struct inet_bind_bucket), read by a BPF iterator.

    It decides the kernel's bind() fast path (kernel-bind-rules.md §6). `fastreuse` and
    `fastreuseport` are the kernel's own numbers (-1, 0, 1; fastreuseport 1 = ANY,
    2 = STRICT). The `fast_*` fields are meaningful only while fastreuseport > 0 and are
    None otherwise. `l3mdev` is the bucket's L3 master device index (VRF), 0 for none."""

    port: int
    l3mdev: int
    fastreuse: int
    fastreuseport: int
    fastuid: int | None = None
    fast_rcv_saddr: str | None = None  # IPv4, as ipaddress prints it
    fast_v6_rcv_saddr: str | None = None
    fast_sk_family: int | None = None  # 4 or 6
    fast_ipv6_only: bool | None = None


@dataclass(slots=True)
class Timer:
    kind: str  # "on" (retransmit), "keepalive", "timewait", "persist"
    expires_ms: int

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "expires_ms": self.expires_ms}


@dataclass(slots=True, eq=False)
class SocketRecord:
    """One TCP or UDP socket, with the fields of the `sockscope list --json` contract.

    `ifindex` is the bound device index as the kernel reports it (0 = none);
    `device` is its name, or None when unbound. `order` is the position in the
    kernel dump, which for UDP follows the port's hash-chain order.
    """

    proto: Proto
    family: int  # 4 or 6
    state: str
    local_addr: str
    local_port: int
    peer_addr: str
    peer_port: int
    uid: int
    inode: int
    cookie: int
    ifindex: int = 0
    device: str | None = None
    v6only: bool | None = None
    reuseaddr: bool | None = None
    reuseport: bool | None = None
    owners: list[Owner] = field(default_factory=list)
    recv_q: int = 0
    send_q: int = 0
    timer: Timer | None = None
    order: int = 0
    # Where each option came from: "kernel" (read from the kernel's own socket by a BPF
    # iterator), "read" (getsockopt on a pidfd_getfd duplicate), "remembered" (seen by cookie
    # earlier), "diag" (sock_diag attribute), "inferred". Absent key = unknown. Made by
    # with_sources(): one shared mapping per distinct content, never changed in place.
    option_source: Mapping[str, str] | None = None
    # The network namespace the socket lives in; None when only one namespace is read.
    netns: NetnsRef | None = None
    # Read by the BPF socket iterators (collectors/bpf/); None = not read (no BPF, or a socket
    # the iterator does not walk: TCP bound-only sockets, request sockets for the buckets).
    # bind_bucket: the TCP port's struct inet_bind_bucket this socket hangs on (icsk_bind_hash,
    #   or tw_tb for TIME-WAIT); the same object as in Snapshot.tcp_buckets[local_port].
    # bind2_fastreuse / bind2_fastreuseport: the fast-path fields of its struct
    #   inet_bind2_bucket (one per port + address + l3mdev: icsk_bind2_hash / tw_tb2), the
    #   kernel's own numbers (-1, 0, 1 / 0, 1 = ANY, 2 = STRICT).
    # udp_bucket: the slot bpf_iter_udp walked this UDP socket in (on Linux 6.18 the hash2
    #   port+address slot: sockets of one port and one local address); udp_chain_pos: its
    #   0-based position in that slot's chain (last bound first; IPv6 SO_REUSEPORT sockets
    #   appended at the tail). udp_lib_get_port inserts into the port chain with the same
    #   rule, so within one slot this is also the order udp_lib_lport_inuse meets them;
    #   between different addresses (different slots) the iterator gives no order.
    bind_bucket: BindBucket | None = None
    bind2_fastreuse: int | None = None
    bind2_fastreuseport: int | None = None
    udp_bucket: int | None = None
    udp_chain_pos: int | None = None

    @property
    def pid(self) -> int | None:
        return min((o.pid for o in self.owners), default=None)

    @property
    def process(self) -> str | None:
        pid = self.pid
        if pid is None:
            return None
        for o in self.owners:
            if o.pid == pid:
                return o.process
        return None

    @property
    def timewait(self) -> bool:
        """A timewait mini-socket: TIME-WAIT, or the FIN-WAIT-2 of a closed (orphaned) socket,
        which the kernel also turns into one (sock_diag then reports the substate, with the
        timewait timer). Such sockets have no owner, report uid 0, and keep the reuse options
        of the socket they came from."""
        return self.state == "TIME-WAIT" or (self.timer is not None and self.timer.kind == "timewait")

    @property
    def key(self) -> tuple[str, int, str, int, str, int]:
        """Identity across refreshes: the kernel's 4-tuple plus protocol and family."""
        return (self.proto, self.family, self.local_addr, self.local_port, self.peer_addr, self.peer_port)

    @property
    def identity(self) -> tuple[str, int]:
        """A stable id across refreshes: the cookie, which the kernel never reuses while alive."""
        return (self.proto, self.cookie)

    def to_json(self) -> dict[str, Any]:
        return {
            "proto": self.proto,
            "family": self.family,
            "state": self.state,
            "local_addr": self.local_addr,
            "local_port": self.local_port,
            "peer_addr": self.peer_addr,
            "peer_port": self.peer_port,
            "uid": self.uid,
            "inode": self.inode,
            "cookie": self.cookie,
            "device": self.device,
            "v6only": self.v6only if self.family == 6 else None,
            "reuseaddr": self.reuseaddr,
            "reuseport": self.reuseport,
            "pid": self.pid,
            "process": self.process,
            "owners": [o.to_json() for o in self.owners],
            "recv_q": self.recv_q,
            "send_q": self.send_q,
            "timer": self.timer.to_json() if self.timer else None,
            # added after the fields above (which stay byte-identical): where each known
            # option came from, e.g. {"reuseaddr": "kernel", "reuseport": "kernel"}
            "option_source": dict(self.option_source) if self.option_source else {},
            **({"netns": self.netns.to_json()} if self.netns is not None else {}),
        }


# SocketRecord.option_source values, shared: 100,000 sockets have a handful of distinct
# ones, and a dict each cost 17 MB and ~60 ms of a cold `list --json` (with the JSON
# writer's per-record key). Bounded: sources are a few words, so combinations are few;
# beyond MAX_SHARED_SOURCES a mapping is made per call, as before.
MAX_SHARED_SOURCES = 64
_SHARED_SOURCES: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
_SHARED_IDS: set[int] = set()  # ids of those dicts: alive for good, so never reused
_SOURCE_STEPS: dict[tuple[int, str | None, str | None], dict[str, str]] = {}


def with_sources(prior: Mapping[str, str] | None, reuse: str | None, v6only: str | None = None) -> Mapping[str, str]:
    """`prior` with "reuseaddr" and "reuseport" set to `reuse` and "v6only" to `v6only`
    (None: left as they are); keys keep their places, as dict.update would (the JSON
    contract prints them in that order). The result is shared: never change it."""
    shared = prior is None or id(prior) in _SHARED_IDS
    if shared:
        step = (0 if prior is None else id(prior), reuse, v6only)
        got = _SOURCE_STEPS.get(step)
        if got is not None:
            return got
    merged = dict(prior) if prior else {}
    if reuse is not None:
        merged["reuseaddr"] = reuse
        merged["reuseport"] = reuse
    if v6only is not None:
        merged["v6only"] = v6only
    items = tuple(merged.items())
    found = _SHARED_SOURCES.get(items)
    if found is None:
        if len(_SHARED_SOURCES) >= MAX_SHARED_SOURCES:
            return merged
        # setdefault: two threads making the same content share the first one's (a dict
        # that lost the race must not leave its id among the shared ones)
        found = _SHARED_SOURCES.setdefault(items, merged)
        _SHARED_IDS.add(id(found))
    if shared and len(_SOURCE_STEPS) < 4 * MAX_SHARED_SOURCES:
        _SOURCE_STEPS[step] = found
    return found


@dataclass(slots=True)
class HostFacts:
    """The per-namespace settings that decide bind() outcomes besides other sockets."""

    ip_local_port_range: tuple[int, int] = (32768, 60999)
    ip_local_reserved_ports: frozenset[int] = frozenset()
    ip_unprivileged_port_start: int = 1024
    ip_nonlocal_bind: bool = False
    ipv6_nonlocal_bind: bool = False
    bindv6only: bool = False
    tcp_tw_reuse: int = 2
    ip_autobind_reuse: bool = False
    interfaces: dict[int, str] = field(default_factory=dict)  # ifindex -> name
    # interface name -> local addresses on it (as ipaddress prints them, no prefix length)
    addresses: dict[str, list[str]] = field(default_factory=dict)
    # IPv4 prefixes of the local routing table (types local and broadcast): what bind() accepts
    local_v4: list[str] = field(default_factory=list)
    # IPv6 addresses usable by bind(): (address, interface, host/link scoped, tentative)
    v6_addrs: list[tuple[str, str, bool, bool]] = field(default_factory=list)
    complete: bool = False  # True once read from the kernel (False: defaults, e.g. in unit tests)

    def ifindex(self, name: str) -> int | None:
        for index, ifname in self.interfaces.items():
            if ifname == name:
                return index
        return None

    def ifname(self, ifindex: int) -> str | None:
        if not ifindex:
            return None
        return self.interfaces.get(ifindex, f"if{ifindex}")

    def to_json(self) -> dict[str, Any]:
        return {
            "ip_local_port_range": list(self.ip_local_port_range),
            "ip_local_reserved_ports": sorted(self.ip_local_reserved_ports),
            "ip_unprivileged_port_start": self.ip_unprivileged_port_start,
            "ip_nonlocal_bind": self.ip_nonlocal_bind,
            "ipv6_nonlocal_bind": self.ipv6_nonlocal_bind,
            "bindv6only": self.bindv6only,
            "tcp_tw_reuse": self.tcp_tw_reuse,
            "ip_autobind_reuse": self.ip_autobind_reuse,
            "interfaces": {str(k): v for k, v in self.interfaces.items()},
            "addresses": self.addresses,
            "local_v4": list(self.local_v4),
            "v6_addrs": [list(a) for a in self.v6_addrs],
        }


@dataclass(slots=True)
class NetnsView:
    """One namespace of a multi-namespace snapshot: who it is and its own host facts
    (the predictor must check a bind against the facts of the namespace it happens in)."""

    ref: NetnsRef
    facts: HostFacts
    collector: str = "sockdiag"
    busy_ports: frozenset[tuple[str, int]] | None = None  # as Snapshot.busy_ports, for this one
    tcp_buckets: dict[int, list[BindBucket]] | None = None  # as Snapshot.tcp_buckets, for this one


@dataclass(slots=True)
class Snapshot:
    """Every TCP/UDP socket of one network namespace at one moment, with its host facts."""

    sockets: list[SocketRecord]
    taken_at: float = field(default_factory=time.time)
    netns: str | None = None  # the namespace's name, or None for the caller's own
    facts: HostFacts = field(default_factory=HostFacts)
    collector: str = "sockdiag"  # "sockdiag" or "procfs"
    # Why some options are unknown (e.g. "not root: cannot read SO_REUSEADDR ..."); None if all readable.
    limitation: str | None = None
    # Set when the snapshot keeps only one port's sockets: every (proto, port) that had a
    # socket, so that nothing claims another port is free without having looked.
    busy_ports: frozenset[tuple[str, int]] | None = None
    # TCP bind buckets by local port, when a BPF iterator could read them; None = not read.
    tcp_buckets: dict[int, list[BindBucket]] | None = None
    # Several namespaces at once (`--all-netns`): inode -> that namespace, in display order;
    # each record's `netns` says where it lives. None: one namespace (`facts` is its own).
    namespaces: dict[int, NetnsView] | None = None
    _by_port: dict[tuple[str, int], list[SocketRecord]] | None = field(default=None, repr=False)

    def on_port(self, proto: str, port: int) -> list[SocketRecord]:
        """Sockets of `proto` whose local port is `port`, in dump order."""
        if self._by_port is None:
            index: dict[tuple[str, int], list[SocketRecord]] = {}
            for rec in self.sockets:
                index.setdefault((rec.proto, rec.local_port), []).append(rec)
            self._by_port = index
        return self._by_port.get((proto, port), [])

    def for_netns(self, inode: int) -> "Snapshot":
        """One namespace of a multi-namespace snapshot, with its own facts (for the
        predictor). A single-namespace snapshot returns itself."""
        if self.namespaces is None:
            return self
        view = self.namespaces.get(inode)
        if view is None:
            raise KeyError(inode)
        return Snapshot(
            sockets=[r for r in self.sockets if r.netns is not None and r.netns.inode == inode],
            taken_at=self.taken_at,
            netns=view.ref.name,
            facts=view.facts,
            collector=view.collector,
            limitation=self.limitation,
            busy_ports=view.busy_ports,
            tcp_buckets=view.tcp_buckets,
        )

    def select(self, proto: str | None = None, states: Iterable[str] | None = None) -> list[SocketRecord]:
        wanted = set(states) if states is not None else None
        return [
            r
            for r in self.sockets
            if (proto is None or r.proto == proto) and (wanted is None or r.state in wanted)
        ]
