"""Freeing a port: exactly what destroying sockets or signalling their processes would
do, as sentences for the preview that `sockscope kill` and the TUI's `K` show before
asking for confirmation. Pure: the acting itself is in sockscope.collectors.destroy."""

from __future__ import annotations

from typing import Any

from sockscope.formatting import endpoint
from sockscope.model import Snapshot, SocketRecord
from sockscope.sanitize import host_lines, host_text

from .departure import closes_with
from .explain import describe

# How long a process gets to exit after SIGTERM before SIGKILL is offered.
SIGTERM_WAIT_S = 3.0


def reset_peers(rec: SocketRecord, snapshot: Snapshot) -> list[str]:
    """Connections that a destroy of `rec` resets: its own peer, or for a listener the
    connections still in its accept queue (accepted ones are sockets of their own)."""
    if rec.proto != "tcp":
        return []
    if rec.state == "LISTEN":
        queued = [
            r for r in snapshot.on_port("tcp", rec.local_port)
            if r.state in ("ESTAB", "SYN-RECV") and not r.inode
            and (rec.local_addr in ("0.0.0.0", "::") or r.local_addr == rec.local_addr)
        ]
        return [endpoint(r.peer_addr, r.peer_port, r.family) + " (not yet accepted)" for r in queued]
    if rec.peer_port and rec.state not in ("TIME-WAIT", "UNCONN", "LISTEN"):
        return [endpoint(rec.peer_addr, rec.peer_port, rec.family)]
    return []


def destroy_preview(recs: list[SocketRecord], snapshot: Snapshot) -> list[str]:
    """What destroying `recs` does, line by line: the sockets, the connections reset, who
    notices."""
    lines = [f"Will destroy {len(recs)} socket(s) (SOCK_DESTROY, like `ss -K`):"]
    for r in recs:
        lines.append(f"  - {describe(r)}, cookie {r.cookie}")
        peers = reset_peers(r, snapshot)
        if peers:
            lines.append("    these connections will be reset (the peer sees ECONNRESET): " + ", ".join(peers[:10])
                         + (f" and {len(peers) - 10} more" if len(peers) > 10 else ""))
        if r.state == "LISTEN":
            lines.append("    connections it already accepted are sockets of their own and stay")
        if r.owners:
            names = ", ".join(sorted({f"{host_text(o.process)} (pid {o.pid})" for o in r.owners}))
            lines.append(f"    its holders keep running; their next call on it fails with ECONNABORTED: {names}")
        if r.proto == "udp":
            lines.append("    UDP: the kernel aborts it, but a socket bound to an explicit port keeps the port; "
                         "use --process to free the port")
        if r.timewait:
            lines.append("    a TIME_WAIT socket: the kernel removes it, freeing its port early")
    return lines


def process_preview(pids: dict[int, Any], snapshot: Snapshot, cmdlines: dict[int, list[str] | None],
                    wait_s: float = SIGTERM_WAIT_S) -> list[str]:
    """What signalling the processes `pids` (pid -> Owner) does, line by line."""
    lines = [f"Will send SIGTERM to {len(pids)} process(es), then offer SIGKILL if one is still running "
             f"after {wait_s:.0f} s:"]
    for pid, owner in sorted(pids.items()):
        lines.append(f"  - pid {pid} {host_text(owner.process)}, user {host_text(owner.user) or '?'}")
        cmd = host_lines(cmdlines.get(pid) or [])
        if cmd:
            lines.append(f"    {cmd}")
        held = [r for r in snapshot.sockets if any(o.pid == pid for o in r.owners)]
        closing = [r for r in held if closes_with(r, {pid})]
        lines.append(f"    it holds {len(held)} socket(s); {len(closing)} close when it exits:")
        for r in closing[:10]:
            lines.append(f"      {describe(r)}")
        if len(closing) > 10:
            lines.append(f"      ... and {len(closing) - 10} more")
        conns = [r for r in closing if r.proto == "tcp" and r.state in ("ESTAB", "CLOSE-WAIT")]
        if conns:
            lines.append(f"    its {len(conns)} TCP connection(s) are closed (a FIN, or a reset where data is "
                         "unread); their ports stay busy as TIME_WAIT for up to 60 s")
    return lines
