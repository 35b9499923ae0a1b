"""What a port looks like after processes exit or timewait sockets expire: pure
transformations of a Snapshot, so that the engine can be asked about that future.

When every process holding a socket exits, the kernel closes it: a listener or a
bound-only socket leaves the bind tables at once (connections still in its accept queue
are reset); a connection sends its FIN and lives on as an orphan that turns into a
timewait socket (FIN-WAIT-2 or TIME-WAIT, about 60 s) keeping the options it had; a
connection whose peer had already closed (CLOSE-WAIT) goes to LAST-ACK until the peer's
final ACK. A socket that another process also holds stays exactly as it is.
"""

from __future__ import annotations

from dataclasses import replace

from sockscope.model import Snapshot, SocketRecord, Timer

# TCP_TIMEWAIT_LEN (and the default net.ipv4.tcp_fin_timeout): how long a closed
# connection's timewait socket stays.
TIMEWAIT_LEN_MS = 60_000
_TO_TIMEWAIT = frozenset({"ESTAB", "SYN-RECV", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSING"})
_TO_LAST_ACK = frozenset({"CLOSE-WAIT", "LAST-ACK"})


def derived(snapshot: Snapshot, sockets: list[SocketRecord]) -> Snapshot:
    """The snapshot with other sockets. The kernel's per-port bind buckets cannot be
    derived from a change of sockets, so they count as not read."""
    return replace(snapshot, sockets=sockets, tcp_buckets=None, _by_port=None)


def without(snapshot: Snapshot, gone: list[SocketRecord]) -> Snapshot:
    """The snapshot once the sockets in `gone` have left (timewait sockets expired)."""
    ids = {id(r) for r in gone}
    return derived(snapshot, [r for r in snapshot.sockets if id(r) not in ids])


def closes_with(rec: SocketRecord, pids: set[int]) -> bool:
    """Is every holder of `rec` one of `pids` (so it closes when they exit)?"""
    return bool(rec.owners) and all(o.pid in pids for o in rec.owners)


def after_exit(snapshot: Snapshot, pids: set[int]) -> Snapshot:
    """The snapshot right after every process in `pids` exited."""
    leaving_listeners = {
        (r.family, r.local_addr, r.local_port)
        for r in snapshot.sockets
        if r.proto == "tcp" and r.state == "LISTEN" and closes_with(r, pids)
    }
    kept: list[SocketRecord] = []
    for r in snapshot.sockets:
        if not closes_with(r, pids):
            if (
                r.proto == "tcp"
                and not r.inode
                and r.state in ("ESTAB", "SYN-RECV")
                and any(r.local_port == port for _fam, _addr, port in leaving_listeners)
                and any(_in_queue_of(r, fam, addr, port) for fam, addr, port in leaving_listeners)
            ):
                continue  # not yet accepted: reset when its listener closes
            kept.append(r)
            continue
        if r.proto == "udp" or r.state in ("LISTEN", "UNCONN", "SYN-SENT"):
            continue
        if r.state in _TO_TIMEWAIT:
            kept.append(
                replace(r, state="TIME-WAIT", inode=0, uid=0, owners=[], timer=Timer("timewait", TIMEWAIT_LEN_MS),
                        recv_q=0, send_q=0)
            )
        elif r.state in _TO_LAST_ACK:
            kept.append(replace(r, state="LAST-ACK", inode=0, owners=[]))
    return derived(snapshot, kept)


def _in_queue_of(r: SocketRecord, family: int, addr: str, port: int) -> bool:
    if r.local_port != port:
        return False
    if addr in ("0.0.0.0", "::"):
        return True
    return r.family == family and r.local_addr == addr


def with_reuseaddr(snapshot: Snapshot, changed: list[SocketRecord]) -> Snapshot:
    """The snapshot where the sockets in `changed` had been opened with SO_REUSEADDR."""
    ids = {id(r) for r in changed}
    return derived(snapshot, [replace(r, reuseaddr=True) if id(r) in ids else r for r in snapshot.sockets])


def with_added(snapshot: Snapshot, added: list[SocketRecord]) -> Snapshot:
    return derived(snapshot, [*snapshot.sockets, *added])
