"""The namespace pane's rows: per namespace, what it holds. Pure (no Textual), so tests
and the view code can use it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sockscope.collectors.portmap import port_mappings
from sockscope.formatting import endpoint
from sockscope.model import NetnsRef, Snapshot, SocketRecord
from sockscope.sanitize import host_text

TOP_OWNERS = 3


@dataclass(slots=True)
class NetnsRow:
    ref: NetnsRef
    listeners: int = 0  # TCP LISTEN and UDP/TCP UNCONN
    established: int = 0
    timewait: int = 0
    total: int = 0
    owners: list[tuple[str, int]] = field(default_factory=list)  # (process, sockets), most first
    published: list[str] = field(default_factory=list)  # "tcp :8080 -> :80" port mappings into it

    @property
    def filter_text(self) -> str:
        """The filter term that shows exactly this namespace's sockets."""
        name = self.ref.name
        simple = name and all(c.isalnum() or c in "-_.:/@" for c in name) and name.isascii()
        return f"netns {name}" if simple else f"netns {self.ref.inode}"


def summarize(snapshot: Snapshot) -> list[NetnsRow]:
    """One row per namespace of a multi-namespace snapshot, in the snapshot's order."""
    if snapshot.namespaces is None:
        return []
    rows = {ino: NetnsRow(view.ref) for ino, view in snapshot.namespaces.items()}
    owners: dict[int, Counter[str]] = {ino: Counter() for ino in rows}
    for r in snapshot.sockets:
        if r.netns is None:
            continue
        row = rows.get(r.netns.inode)
        if row is None:
            continue
        row.total += 1
        if r.state in ("LISTEN", "UNCONN"):
            row.listeners += 1
        elif r.state == "ESTAB":
            row.established += 1
        elif r.timewait:
            row.timewait += 1
        if r.owners:
            owners[r.netns.inode][r.owners[0].process] += 1
    for ino, row in rows.items():
        row.owners = owners[ino].most_common(TOP_OWNERS)
    for m in port_mappings(snapshot):
        if m.netns is not None and m.netns.inode in rows:
            rows[m.netns.inode].published.append(
                f"{m.proto} :{m.host.local_port}->:{m.container_port}" + ("" if m.target else " (no listener)")
            )
    return list(rows.values())


def link_lines(snapshot: Snapshot, rec: SocketRecord) -> list[str]:
    """Port mappings through `rec`, for its details: a proxy's host listener says where it
    forwards, the listener it reaches says where it is published."""
    out = []
    for m in port_mappings(snapshot):
        if m.host is rec:
            where = host_text(m.netns.name) if m.netns is not None else f"no namespace has {m.container_ip}"
            reach = (endpoint(m.target.local_addr, m.target.local_port, m.target.family) if m.target
                     else f"{m.container_ip}:{m.container_port}, where nothing listens")
            out.append(f"forwards to {where}: {m.proto} {reach}")
        elif m.target is rec:
            host = endpoint(m.host.local_addr, m.host.local_port, m.host.family)
            out.append(f"published on the host as {m.proto} {host} by {host_text(m.host.process or '?')}")
    return out
