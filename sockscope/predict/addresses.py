"""Addresses as the kernel compares them at bind(): parsing, kinds, and overlap.

The overlap rules are ports of the kernel's own predicates, because the obvious rule
("wildcard overlaps everything of its family") is wrong in several corners that users do
hit (shared/kernel-bind-rules.md §5):

- every IPv6 socket also carries an IPv4 "rcv_saddr": the mapped address for
  ::ffff:a.b.c.d, 0.0.0.0 for ::, and 127.0.0.6 (LOOPBACK4_IPV6) for any other address;
  ipv4_rcv_saddr_equal() compares those, which is why a dual-stack IPv6 client blocks an
  IPv4 0.0.0.0 bind;
- a TCP bind of a specific address goes through the bhash2 table (per address buckets plus
  the wildcard buckets) rather than comparing with every socket of the port.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

from sockscope.formatting import endpoint
from sockscope.userinput import InputError, parse_ifname

Kind = Literal["any", "mapped", "specific"]
LOOPBACK4_IPV6 = int(ipaddress.IPv4Address("127.0.0.6"))


class EndpointError(ValueError):
    """An ADDR:PORT the user typed that cannot be a socket address."""


@dataclass(slots=True, frozen=True)
class BindAddr:
    """A socket's local address as the bind tables see it."""

    family: int  # 4 or 6: the socket's family
    text: str  # as ipaddress prints it
    v4: int  # sk_rcv_saddr
    v6: int | None  # sk_v6_rcv_saddr (IPv6 sockets only)
    kind: Kind

    @property
    def wildcard(self) -> bool:
        """True for 0.0.0.0, :: and ::ffff:0.0.0.0: the kernel's rcv_saddr is "any"."""
        return self.v4 == 0 and self.kind != "specific"

    @property
    def uses_bhash2(self) -> bool:
        """inet_use_bhash2_on_bind(): TCP binds of specific addresses check address buckets."""
        if self.family == 6 and self.kind == "any":
            return False
        if self.family == 6 and self.kind == "specific":
            return True
        return self.v4 != 0


@functools.lru_cache(maxsize=4096)
def bind_addr(family: int, text: str) -> BindAddr:
    """The address `text` of a `family` socket as the bind tables see it. Cached (bounded):
    a port with 16,000 connections holds a handful of distinct addresses, and each
    evaluation of a candidate parses every one of its sockets' (ipaddress is slow)."""
    ip = ipaddress.ip_address(text)
    if family == 4:
        if ip.version != 4:
            raise EndpointError(f"{text} is not an IPv4 address")
        return BindAddr(4, str(ip), int(ip), None, "any" if int(ip) == 0 else "specific")
    if ip.version == 4:
        raise EndpointError(f"{text} is not an IPv6 address")
    assert isinstance(ip, ipaddress.IPv6Address)
    mapped = ip.ipv4_mapped
    if mapped is not None:
        # Printed as the collectors print it (and as users type it): ::ffff:a.b.c.d
        return BindAddr(6, f"::ffff:{mapped}", int(mapped), int(ip), "mapped")
    if int(ip) == 0:
        return BindAddr(6, str(ip), 0, 0, "any")
    return BindAddr(6, str(ip), LOOPBACK4_IPV6, int(ip), "specific")


@dataclass(slots=True, frozen=True)
class Endpoint:
    """ADDR:PORT as the user typed it. `scope` is an IPv6 zone inside the brackets
    (`[fe80::1%eth0]:22`, `[fe80::1%2]:22`), as sin6_scope_id; `device` is ss's notation
    outside them (`[::1]%lo:22`, `127.0.0.1%lo:80`), i.e. SO_BINDTODEVICE, so that an
    address copied from `sockscope list` means what it showed."""

    family: int
    addr: str  # as ipaddress prints it, no brackets, no zone
    port: int
    scope: str | None = None
    device: str | None = None


_PORT = re.compile(r"[0-9]{1,5}")  # ASCII only: "²".isdigit() is True, int("²") raises
def _check_name(text: str, name: str, what: str) -> str:
    if not name:
        raise EndpointError(f"{text!r}: empty {what} after %")
    try:
        return parse_ifname(name)  # a numeric zone (an interface index) passes too
    except InputError:
        raise EndpointError(f"{text!r}: {name!r} is not an interface name or index") from None


def split_endpoint(text: str) -> Endpoint:
    """"127.0.0.1:80", "[::]:8080", "[fe80::1%eth0]:22", "[::1]%lo:22", ":80", "80" -> Endpoint.

    A bare port or ":PORT" means the IPv4 wildcard; IPv6 must be bracketed, as in URLs.
    Raises EndpointError (one sentence) for anything else.
    """
    text = text.strip()
    if not text:
        raise EndpointError("empty address: expected ADDR:PORT, e.g. 0.0.0.0:8080 or [::]:8080")
    scope: str | None = None
    device: str | None = None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise EndpointError(f"{text!r}: expected [IPV6]:PORT, e.g. [::]:8080")
        if rest.startswith("%"):  # ss's [ADDR]%DEV:PORT
            dev, colon, port_text = rest[1:].rpartition(":")
            if not colon:
                raise EndpointError(f"{text!r}: expected [IPV6]%DEV:PORT, e.g. [::1]%lo:8080")
            device = _check_name(text, dev, "device name")
        elif rest.startswith(":"):
            port_text = rest[1:]
        else:
            raise EndpointError(f"{text!r}: expected [IPV6]:PORT, e.g. [::]:8080")
        if "%" in host:
            host, _, zone = host.partition("%")
            scope = _check_name(text, zone, "scope")
        try:
            ip = ipaddress.IPv6Address(host)
        except ValueError:
            raise EndpointError(f"{text!r}: {host!r} is not an IPv6 address") from None
        family, addr = 6, (f"::ffff:{ip.ipv4_mapped}" if ip.ipv4_mapped is not None else str(ip))
    else:
        if text.count(":") > 1:
            raise EndpointError(f"{text!r}: put IPv6 addresses in brackets, e.g. [{text.rsplit(':', 1)[0]}]:{text.rsplit(':', 1)[1]}")
        host, sep, port_text = text.rpartition(":")
        if not sep:
            host, port_text = "", text
        if "%" in host:  # ss's ADDR%DEV:PORT
            host, _, dev = host.partition("%")
            device = _check_name(text, dev, "device name")
        if host in ("", "*"):
            host = "0.0.0.0"
        try:
            ip4 = ipaddress.IPv4Address(host)
        except ValueError:
            raise EndpointError(f"{text!r}: {host!r} is not an IPv4 address (host names are not resolved)") from None
        family, addr = 4, str(ip4)
    if not _PORT.fullmatch(port_text):
        raise EndpointError(f"{text!r}: {port_text!r} is not a port number (0-65535)")
    port = int(port_text)
    if port > 65535:
        raise EndpointError(f"{text!r}: port {port} is above 65535")
    return Endpoint(family, addr, port, scope, device)


def parse_endpoint(text: str) -> tuple[int, str, int, str | None]:
    """(family, addr, port, scope) of split_endpoint(); a `%DEV` outside the brackets is
    ignored here (callers that bind use sockscope.predict.candidate)."""
    ep = split_endpoint(text)
    return ep.family, ep.addr, ep.port, ep.scope


def needs_scope_id(addr: str) -> bool:
    """__ipv6_addr_needs_scope_id(): only link-local unicast (fe80::/10) and interface- or
    link-local multicast (ffX1::, ffX2::) use a scope id at bind(); for every other
    address inet6_bind() ignores sin6_scope_id."""
    ip = ipaddress.ip_address(addr)
    if ip.version != 6:
        return False
    if ip.is_multicast:
        return (int(ip) >> 112) & 0xF in (1, 2)
    return ip.is_link_local


def format_endpoint(family: int, addr: str, port: int, device: str | None = None) -> str:
    """As sockscope.formatting.endpoint (ss's [ADDR]%DEV:PORT): the one way endpoints are written."""
    return endpoint(addr, port, family, device)


def _v4_equal(a1: int, a2: int, sk2_v6only: bool, match1: bool, match2: bool) -> bool:
    # ipv4_rcv_saddr_equal()
    if not sk2_v6only:
        if a1 == a2:
            return True
        return (match1 and a1 == 0) or (match2 and a2 == 0)
    return False


def rcv_saddr_equal(sk: BindAddr, sk2: BindAddr, v6only: bool, v6only2: bool, match_sk2_wildcard: bool = True) -> bool:
    """inet_rcv_saddr_equal(sk, sk2, match_wildcard): do the two local addresses overlap?"""
    match1 = True
    match2 = match_sk2_wildcard
    if sk.family == 6:
        assert sk.v6 is not None
        type1 = sk.kind
        # inet6_rcv_saddr(sk2) is NULL for an IPv4 sk2, which the kernel treats as mapped.
        type2: Kind = sk2.kind if sk2.family == 6 else "mapped"
        if type1 == "mapped" and type2 == "mapped":
            return _v4_equal(sk.v4, sk2.v4, v6only2, match1, match2)
        if type1 == "any" and type2 == "any":
            return True
        if type2 == "any" and match2 and not (v6only2 and type1 == "mapped"):
            return True
        if type1 == "any" and match1 and not (v6only and type2 == "mapped"):
            return True
        return sk2.family == 6 and sk.v6 == sk2.v6
    return _v4_equal(sk.v4, sk2.v4, v6only2, match1, match2)


def _bucket_key(a: BindAddr) -> int:
    # bhash2 buckets key IPv4 sockets by their v4-mapped IPv6 address, so 127.0.0.1 and
    # ::ffff:127.0.0.1 share one bucket.
    if a.family == 4:
        return (0xFFFF << 32) | a.v4
    assert a.v6 is not None
    return a.v6


def bhash2_overlap(sk: BindAddr, sk2: BindAddr, v6only2: bool) -> bool:
    """A TCP bind of a specific address (bhash2 path): sk2 takes part when it is in sk's
    own address bucket or in a wildcard bucket sk can match (inet_bhash2_addr_any_conflict),
    minus V6ONLY sockets when sk is IPv4 or v4-mapped (__inet_bhash2_conflict)."""
    v4ish = sk.family == 4 or sk.kind == "mapped"
    if v6only2 and v4ish:
        return False
    if _bucket_key(sk) == _bucket_key(sk2):
        return True
    if sk2.family == 6 and sk2.kind == "any":
        return True
    # IPv4 0.0.0.0 and ::ffff:0.0.0.0 buckets match only IPv4 and v4-mapped binds.
    return sk2.v4 == 0 and sk2.kind != "specific" and v4ish


def tcp_overlap(sk: BindAddr, sk2: BindAddr, v6only: bool, v6only2: bool) -> bool:
    if sk.uses_bhash2:
        return bhash2_overlap(sk, sk2, v6only2)
    return rcv_saddr_equal(sk, sk2, v6only, v6only2)


def udp_overlap(sk: BindAddr, sk2: BindAddr, v6only: bool, v6only2: bool) -> bool:
    return rcv_saddr_equal(sk, sk2, v6only, v6only2)
