"""A namespace full of sockets of every kind, built with real kernel calls, and what
each one should look like. Shared by the collector, CLI and TUI tests."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from kit import Holder, Netns


@dataclass
class Made:
    """What the test set on one socket, to compare with what sockscope reports."""

    name: str
    holder: Holder
    sid: int
    expect: dict[str, Any]
    inode: int = 0
    cookie: int = 0
    extra_owner_pids: list[int] = field(default_factory=list)


def build(ns: Netns, root: Holder, other: Holder) -> dict[str, Made]:
    """Sockets in every state we can make, both families, flags on and off, a device,
    uid 1001, and one socket shared by two processes. `other` runs as uid 1001."""
    ns.add_dummy("d0", "10.200.0.1/24", "fd00:200::1/64")
    made: dict[str, Made] = {}

    def add(name: str, h: Holder, sid: int, **expect: Any) -> Made:
        m = Made(name, h, sid, expect)
        made[name] = m
        return m

    # Listeners: reuse flags on and off, V6ONLY on and off, another uid, v4-mapped.
    s = root.socket("tcp", 4, reuseaddr=True)
    root.bind(s, "127.0.0.1", 8080)
    root.listen(s)
    add("listen4_ra", root, s, proto="tcp", family=4, state="LISTEN", local_addr="127.0.0.1", local_port=8080,
        reuseaddr=True, reuseport=False, uid=0)
    s = other.socket("tcp", 6, reuseport=True, v6only=True)
    other.bind(s, "::", 8081)
    other.listen(s)
    add("listen6_rp_v6only", other, s, proto="tcp", family=6, state="LISTEN", local_addr="::", local_port=8081,
        reuseaddr=False, reuseport=True, v6only=True, uid=1001)
    s = root.socket("tcp", 6, v6only=False, reuseaddr=True, reuseport=True)
    root.bind(s, "::", 8082)
    root.listen(s)
    add("listen6_dual", root, s, proto="tcp", family=6, state="LISTEN", local_addr="::", local_port=8082,
        reuseaddr=True, reuseport=True, v6only=False, uid=0)
    s = root.socket("tcp", 4, device="d0")
    root.bind(s, "0.0.0.0", 8083)
    root.listen(s)
    add("listen4_dev", root, s, proto="tcp", family=4, state="LISTEN", local_addr="0.0.0.0", local_port=8083,
        device="d0", reuseaddr=False, reuseport=False)
    # Bound-only TCP (kernel >= 6.8 dumps it as UNCONN), v4-mapped on an IPv6 socket.
    s = root.socket("tcp", 6, v6only=False)
    root.bind(s, "::ffff:127.0.0.1", 8084)
    add("bound_mapped", root, s, proto="tcp", family=6, state="UNCONN", local_addr="::ffff:127.0.0.1",
        local_port=8084, v6only=False, reuseaddr=False, reuseport=False)
    # UDP: unconnected with a device, connected IPv6, shared by two processes.
    s = root.socket("udp", 4, device="d0", reuseaddr=True)
    root.bind(s, "0.0.0.0", 5353)
    add("udp_dev", root, s, proto="udp", family=4, state="UNCONN", local_addr="0.0.0.0", local_port=5353,
        device="d0", reuseaddr=True, reuseport=False)
    s = other.socket("udp", 6)
    other.bind(s, "::1", 5354)
    other.connect(s, "::1", 9)
    add("udp6_conn", other, s, proto="udp", family=6, state="ESTAB", local_addr="::1", local_port=5354,
        peer_addr="::1", peer_port=9, uid=1001, reuseaddr=False, reuseport=False)
    # A connection: ESTAB both ends; then TIME-WAIT, CLOSE-WAIT and FIN-WAIT-2 pairs.
    c = root.socket("tcp", 4)
    cport = root.connect(c, "127.0.0.1", 8080)[1]
    a = root.accept(made["listen4_ra"].sid)
    add("estab_client", root, c, proto="tcp", family=4, state="ESTAB", local_addr="127.0.0.1", local_port=cport,
        peer_addr="127.0.0.1", peer_port=8080, reuseaddr=False)
    add("estab_server", root, a, proto="tcp", family=4, state="ESTAB", local_addr="127.0.0.1", local_port=8080,
        peer_addr="127.0.0.1", peer_port=cport, reuseaddr=True)
    # FIN-WAIT-2 (server closed, client has not): the client sits in CLOSE-WAIT.
    c2 = root.socket("tcp", 4)
    c2port = root.connect(c2, "127.0.0.1", 8080)[1]
    a2 = root.accept(made["listen4_ra"].sid)
    root.shutdown(a2)
    add("close_wait", root, c2, proto="tcp", family=4, state="CLOSE-WAIT", local_port=c2port, peer_port=8080)
    add("fin_wait2", root, a2, proto="tcp", family=4, state="FIN-WAIT-2", local_port=8080, peer_port=c2port)
    # TIME-WAIT: the side that closes first ends there once the peer closes too.
    c3 = other.socket("tcp", 4)
    c3port = other.connect(c3, "127.0.0.1", 8080)[1]
    a3 = root.accept(made["listen4_ra"].sid)
    root.close(a3)
    time.sleep(0.05)
    other.close(c3)
    made["time_wait"] = Made("time_wait", root, -1, dict(proto="tcp", family=4, state="TIME-WAIT",
                                                         local_port=8080, peer_port=c3port))
    # SYN-SENT: nobody answers on the far side of d0, so the SYN is never acknowledged.
    s = other.socket("tcp", 4, nonblock=True)
    other.connect(s, "10.200.0.2", 8090)
    add("syn_sent", other, s, proto="tcp", family=4, state="SYN-SENT", peer_addr="10.200.0.2", peer_port=8090,
        uid=1001)
    # Sockets shared by two processes: a forked sibling keeps copies of every root socket.
    sibling = root.call("fork_share")
    for m in made.values():
        if m.holder is root and m.sid >= 0:
            m.extra_owner_pids.append(sibling)
    time.sleep(0.1)
    for m in made.values():
        if m.sid >= 0:
            m.inode = m.holder.inode(m.sid)
            m.cookie = m.holder.cookie(m.sid)
    return made
