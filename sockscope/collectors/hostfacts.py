"""The namespace's settings that decide bind() outcomes besides other sockets.

Sysctls under /proc/sys/net belong to the network namespace of the thread that opens
them, so call read_host_facts() from inside the namespace. Interfaces and addresses come
from a small RTM_GETLINK/RTM_GETADDR dump: importing pyroute2 costs ~0.2 s, more than a
whole `ss -tan`, and this runs on every cold `sockscope list`.
"""

from __future__ import annotations

import socket
import struct

from sockscope.model import HostFacts

from .netlink import NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSGHDR, iter_messages

SYSCTL = "/proc/sys/net"
NETLINK_ROUTE = 0
RTM_GETLINK = 18
RTM_NEWLINK = 16
RTM_GETADDR = 22
RTM_NEWADDR = 20
IFLA_IFNAME = 3
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_FLAGS = 8
IFA_F_TENTATIVE = 0x40
IFA_F_DADFAILED = 0x08
RT_SCOPE_LINK = 253
RT_SCOPE_HOST = 254
RTM_GETROUTE = 26
RTM_NEWROUTE = 24
RTA_DST = 1
RTA_TABLE = 15
RT_TABLE_LOCAL = 255
RTN_LOCAL = 2
RTN_BROADCAST = 3
RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
RTATTR = struct.Struct("=HH")


def _read(path: str, default: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def parse_port_list(text: str) -> frozenset[int]:
    """Parse ip_local_reserved_ports: "8080,9000-9010" -> {8080, 9000..9010}."""
    ports: set[int] = set()
    for part in text.replace("\n", ",").split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            start = int(lo)
            stop = int(hi) if sep else start
        except ValueError:
            raise ValueError(f"bad port list element {part!r} in {text!r}") from None
        if not (0 <= start <= stop <= 65535):
            raise ValueError(f"bad port range {part!r} in {text!r}")
        ports.update(range(start, stop + 1))
    return frozenset(ports)


def parse_port_range(text: str) -> tuple[int, int]:
    fields = text.split()
    if len(fields) != 2:
        raise ValueError(f"bad ip_local_port_range {text!r}")
    return int(fields[0]), int(fields[1])


def _attrs(buf: bytes, start: int, end: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while start + 4 <= end:
        alen, atype = RTATTR.unpack_from(buf, start)
        if alen < 4 or start + alen > end:
            raise ValueError(f"bad rtnetlink attribute length {alen}")
        out[atype & 0x3FFF] = bytes(buf[start + 4 : start + alen])
        start += (alen + 3) & ~3
    return out


def _rtnl_dump(sock: socket.socket, mtype: int, payload: bytes, seq: int) -> list[tuple[int, bytes, int, int]]:
    sock.send(NLMSGHDR.pack(NLMSGHDR.size + len(payload), mtype, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + payload)
    msgs: list[tuple[int, bytes, int, int]] = []
    while True:
        data = sock.recv(1 << 16)
        done = False
        for t, _flags, start, end in iter_messages(data, seq):
            if t == NLMSG_DONE:
                done = True
                break
            msgs.append((t, data, start, end))
        if done:
            return msgs


def read_interfaces() -> tuple[dict[int, str], dict[str, list[str]], list[tuple[str, str, bool, bool]], list[str]]:
    """The calling thread's namespace: ifindex -> name, name -> addresses, IPv6 address
    details (address, interface, host/link scoped, tentative), and the IPv4 prefixes of the
    local routing table (what inet_bind() treats as local: RTN_LOCAL and RTN_BROADCAST)."""
    names: dict[int, str] = {}
    addrs: dict[str, list[str]] = {}
    v6: list[tuple[str, str, bool, bool]] = []
    local_v4: list[str] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE) as sock:
        sock.bind((0, 0))
        for t, data, start, end in _rtnl_dump(sock, RTM_GETLINK, IFINFOMSG.pack(0, 0, 0, 0, 0), 1):
            if t != RTM_NEWLINK:
                continue
            _fam, _type, index, _flags, _change = IFINFOMSG.unpack_from(data, start)
            name = _attrs(data, start + IFINFOMSG.size, end).get(IFLA_IFNAME, b"").rstrip(b"\0").decode(errors="replace")
            names[index] = name or f"if{index}"
            addrs.setdefault(names[index], [])
        for t, data, start, end in _rtnl_dump(sock, RTM_GETADDR, IFADDRMSG.pack(0, 0, 0, 0, 0), 2):
            if t != RTM_NEWADDR:
                continue
            fam, _plen, flags8, scope, index = IFADDRMSG.unpack_from(data, start)
            attrs = _attrs(data, start + IFADDRMSG.size, end)
            # For IPv4 IFA_LOCAL is the local address (IFA_ADDRESS is the peer on p2p links).
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if raw is None or fam not in (socket.AF_INET, socket.AF_INET6):
                continue
            name = names.get(index, f"if{index}")
            text = socket.inet_ntop(fam, raw)
            addrs.setdefault(name, []).append(text)
            if fam == socket.AF_INET6:
                flags = struct.unpack("=I", attrs[IFA_FLAGS])[0] if len(attrs.get(IFA_FLAGS, b"")) == 4 else flags8
                # ipv6_chk_addr() refuses tentative addresses (DAD not finished) and checks the
                # device only for host- and link-scoped ones.
                tentative = bool(flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED))
                v6.append((text, name, scope in (RT_SCOPE_LINK, RT_SCOPE_HOST), tentative))
        for t, data, start, end in _rtnl_dump(sock, RTM_GETROUTE, RTMSG.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0), 3):
            if t != RTM_NEWROUTE:
                continue
            fam, dst_len, _src, _tos, table, _proto, _scope, rtype, _flags = RTMSG.unpack_from(data, start)
            attrs = _attrs(data, start + RTMSG.size, end)
            if len(attrs.get(RTA_TABLE, b"")) == 4:
                table = struct.unpack("=I", attrs[RTA_TABLE])[0]
            if fam != socket.AF_INET or table != RT_TABLE_LOCAL or rtype not in (RTN_LOCAL, RTN_BROADCAST):
                continue
            dst = attrs.get(RTA_DST, bytes(4))
            local_v4.append(f"{socket.inet_ntop(socket.AF_INET, dst)}/{dst_len}")
    return names, addrs, v6, local_v4


def read_host_facts() -> HostFacts:
    ipv4 = f"{SYSCTL}/ipv4"
    names, addrs, v6, local_v4 = read_interfaces()
    return HostFacts(
        ip_local_port_range=parse_port_range(_read(f"{ipv4}/ip_local_port_range", "32768 60999")),
        ip_local_reserved_ports=parse_port_list(_read(f"{ipv4}/ip_local_reserved_ports", "")),
        ip_unprivileged_port_start=int(_read(f"{ipv4}/ip_unprivileged_port_start", "1024")),
        ip_nonlocal_bind=_read(f"{ipv4}/ip_nonlocal_bind", "0") != "0",
        ipv6_nonlocal_bind=_read(f"{SYSCTL}/ipv6/ip_nonlocal_bind", "0") != "0",
        bindv6only=_read(f"{SYSCTL}/ipv6/bindv6only", "0") != "0",
        tcp_tw_reuse=int(_read(f"{ipv4}/tcp_tw_reuse", "2")),
        ip_autobind_reuse=_read(f"{ipv4}/ip_autobind_reuse", "0") != "0",
        interfaces=names,
        addresses=addrs,
        local_v4=local_v4,
        v6_addrs=v6,
        complete=True,
    )
