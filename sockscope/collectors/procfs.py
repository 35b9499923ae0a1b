"""The fallback collector for hosts without sock_diag (module missing, sandboxed netlink):
/proc/net/{tcp,tcp6,udp,udp6}, parsed explicitly as psutil's _pslinux does.

Reads /proc/thread-self/net, not /proc/net: the latter is /proc/self/net, the
namespace of the process's main thread, while a namespace is entered per thread.
psutil.net_connections() cannot serve here for the same reason, and it drops the
uid, queues and timers. What /proc/net lacks stays unknown: cookies (0), bound
devices, V6ONLY, reuse options, and TCP sockets that are bound but not listening.
"""

from __future__ import annotations

import os

from sockscope.model import TCP_STATES, TIMER_KINDS, HostFacts, SocketRecord, Timer

from .inet_diag import format_ipv6

NET = "/proc/thread-self/net"
FILES = (("tcp", 4, "tcp"), ("tcp", 6, "tcp6"), ("udp", 4, "udp"), ("udp", 6, "udp6"))
USER_HZ_MS = 1000 // (os.sysconf("SC_CLK_TCK") or 100)


def decode_address(text: str, family: int, cache: dict[str, tuple[str, int]]) -> tuple[str, int]:
    """ "0100007F:1F90" -> ("127.0.0.1", 8080). Words are in host byte order (little endian here)."""
    hit = cache.get(text)
    if hit is not None:
        return hit
    addr_hex, _, port_hex = text.partition(":")
    raw = bytes.fromhex(addr_hex)
    if family == 4:
        if len(raw) != 4:
            raise ValueError(f"bad IPv4 address {text!r}")
        addr = ".".join(str(b) for b in raw[::-1])
    else:
        if len(raw) != 16:
            raise ValueError(f"bad IPv6 address {text!r}")
        addr = format_ipv6(b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4)))
    result = (addr, int(port_hex, 16))
    cache[text] = result
    return result


def parse_table(lines: list[str], proto: str, family: int, ifnames: HostFacts | None = None) -> list[SocketRecord]:
    out: list[SocketRecord] = []
    cache: dict[str, tuple[str, int]] = {}
    for lineno, line in enumerate(lines[1:], start=2):
        fields = line.split()
        if len(fields) < 10:
            if fields:
                raise ValueError(f"/proc/net/{proto}{'6' if family == 6 else ''} line {lineno}: too few fields: {line!r}")
            continue
        local, lport = decode_address(fields[1], family, cache)
        peer, pport = decode_address(fields[2], family, cache)
        kstate = int(fields[3], 16)
        tx, _, rx = fields[4].partition(":")
        tr, _, when = fields[5].partition(":")
        state = TCP_STATES.get(kstate, f"UNKNOWN-{kstate}")
        if proto == "udp" and kstate == 1:
            state = "ESTAB"
        timer_kind = int(tr, 16)
        timer = Timer(TIMER_KINDS.get(timer_kind, str(timer_kind)), int(when, 16) * USER_HZ_MS) if timer_kind else None
        out.append(
            SocketRecord(
                proto=proto,  # type: ignore[arg-type]
                family=family,
                state=state,
                local_addr=local,
                local_port=lport,
                peer_addr=peer,
                peer_port=pport,
                uid=int(fields[7]),
                inode=int(fields[9]),
                cookie=0,
                recv_q=int(rx, 16),
                send_q=int(tx, 16),
                timer=timer,
                order=len(out),
            )
        )
    return out


def collect_procfs(facts: HostFacts | None = None, net: str = NET) -> list[SocketRecord]:
    """Every socket listed in the calling thread's namespace's /proc/net tables."""
    records: list[SocketRecord] = []
    for proto, family, name in FILES:
        path = f"{net}/{name}"
        try:
            with open(path) as f:
                lines = f.readlines()
        except FileNotFoundError:
            continue  # e.g. no IPv6 in this kernel
        except OSError as exc:
            raise OSError(exc.errno, f"cannot read {path}: {exc.strerror}") from None
        records.extend(parse_table(lines, proto, family))
    return records
