"""Port mappings: a host listener that forwards to a listener inside another namespace.

Docker publishes `-p 8080:80` with a `docker-proxy` process on the host whose argv says
where it forwards: `docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port 8080
-container-ip 172.17.0.2 -container-port 80`. The container's namespace is the one that
has that address on an interface, and the target is its listener on that port. Pure:
works on a multi-namespace Snapshot; nothing is shown when it cannot be seen (NAT-only
mappings without a proxy process leave no trace in the socket tables).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sockscope.model import NetnsRef, Snapshot, SocketRecord

PROXIES = frozenset({"docker-proxy"})  # process names whose argv names the target


@dataclass(slots=True, frozen=True)
class PortMapping:
    host: SocketRecord  # the host-side listener of the proxy
    proto: str
    container_ip: str
    container_port: int
    netns: NetnsRef | None  # the namespace that owns container_ip, when seen
    target: SocketRecord | None  # its listener on container_port, when there is one


def proxy_target(argv: list[str]) -> tuple[str, str, int] | None:
    """(proto, container ip, container port) from a docker-proxy command line, or None."""
    if not argv or os.path.basename(argv[0]) not in PROXIES:
        return None
    opts: dict[str, str] = {}
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("-"):
            name = arg.lstrip("-")
            if "=" in name:
                name, value = name.split("=", 1)
                opts[name] = value
            elif i + 1 < len(argv):
                opts[name] = argv[i + 1]
                i += 1
        i += 1
    ip, port = opts.get("container-ip"), opts.get("container-port")
    if not ip or not port or not (port.isascii() and port.isdigit()) or not 0 < int(port) <= 65535:
        return None
    return opts.get("proto", "tcp"), ip, int(port)


def port_mappings(snapshot: Snapshot) -> list[PortMapping]:
    if snapshot.namespaces is None:
        return []
    owner_of_ip: dict[str, NetnsRef] = {}
    for view in snapshot.namespaces.values():
        for addrs in view.facts.addresses.values():
            for a in addrs:
                owner_of_ip.setdefault(a, view.ref)
    listeners: dict[tuple[int, str, int], list[SocketRecord]] = {}
    for r in snapshot.sockets:
        if r.state in ("LISTEN", "UNCONN") and r.netns is not None:
            listeners.setdefault((r.netns.inode, r.proto, r.local_port), []).append(r)
    out: list[PortMapping] = []
    for r in snapshot.sockets:
        if r.state not in ("LISTEN", "UNCONN") or not r.owners:
            continue
        for o in r.owners:
            got = proxy_target(o.cmdline or []) if o.process in PROXIES or o.cmdline else None
            if got is None:
                continue
            proto, ip, port = got
            ns = owner_of_ip.get(ip)
            target = None
            if ns is not None and (r.netns is None or ns.inode != r.netns.inode):
                for cand in listeners.get((ns.inode, proto, port), []):
                    if cand.local_addr in (ip, "0.0.0.0", "::", "::ffff:" + ip):
                        target = cand
                        break
            out.append(PortMapping(r, proto, ip, port, ns, target))
            break
    return out
