"""Comparable views of snapshots, shared by the tests that compare two collectors."""

from __future__ import annotations


def socket_view(snap) -> dict:
    """Everything a snapshot says about each socket, by (protocol, cookie): for comparing
    two readers of the same kernel state."""
    out = {}
    for r in snap.sockets:
        b = r.bind_bucket
        out[(r.proto, r.cookie)] = (
            r.state, r.local_addr, r.local_port, r.peer_addr, r.peer_port, r.recv_q, r.reuseaddr, r.reuseport,
            r.v6only, r.device, dict(r.option_source or {}), tuple(sorted((o.pid, o.fd, o.process) for o in r.owners)),
            None if b is None else (b.port, b.l3mdev, b.fastreuse, b.fastreuseport, b.fastuid),
            r.bind2_fastreuse, r.bind2_fastreuseport, r.udp_bucket, r.udp_chain_pos,
        )
    return out
