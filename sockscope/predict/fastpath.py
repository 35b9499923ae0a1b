"""The TCP bind() fast path, evaluated from the port's own bind bucket (kernel-bind-rules §6).

inet_csk_get_port() skips the whole conflict check when the port's bucket
(struct inet_bind_bucket) says it may:

- `tb->fastreuse > 0` and the new socket has SO_REUSEADDR and is not listening; or
- sk_reuseport_match(): `tb->fastreuseport > 0`, the new socket has SO_REUSEPORT and is in no
  reuseport group yet, its uid is `tb->fastuid`, and either the bucket is FASTREUSEPORT_ANY
  (1) or it is FASTREUSEPORT_STRICT (2) and the bucket's remembered address covers the new
  one (`ipv6_rcv_saddr_equal(fast, new, ..., match_sk1_wildcard=true,
  match_sk2_wildcard=false)`).

inet_csk_update_fastreuse() then rewrites the bucket for the new socket. The bucket is not
derived from the sockets on the port: accepted children join it without touching it, and
options can change after bind(), so the fast path can admit a bind that the per-socket
rule (rules.py) forbids. When a BPF iterator read the bucket (Snapshot.tcp_buckets), this
module follows the kernel exactly; when it did not, the engine falls back to the
conservative guess in rules.fast_reuseport_may_admit().

Written against Linux 6.18 (net/ipv4/inet_connection_sock.c) and checked there by the
differential test; the bucket fields themselves are only readable by the iterator (5.9+).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from sockscope.model import BindBucket

from .addresses import LOOPBACK4_IPV6, BindAddr, rcv_saddr_equal
from .rules import Me

FASTREUSEPORT_ANY = 1
FASTREUSEPORT_STRICT = 2

Status = Literal["admits", "checks", "unknown"]


@dataclass(slots=True, frozen=True)
class FastPath:
    """What the port's bucket does to one candidate bind().

    `status`: "admits" (the kernel skips the conflict check: bind() succeeds whatever the
    sockets on the port are), "checks" (no fast path: the per-socket rule decides), or
    "unknown" (the bucket was read but cannot be matched to the candidate). `reason` is one
    sentence for people; `bucket` is the bucket used, if any."""

    status: Status
    reason: str
    bucket: BindBucket | None = None
    # After a fast-path bind, does listen() take the fast path too? (True for SO_REUSEPORT:
    # the bucket then matches the socket itself.) Meaningful when status == "admits".
    listen_skips_check: bool = False


def fast_addr(bucket: BindBucket) -> BindAddr | None:
    """The bucket's remembered address (fast_sk_family, fast_rcv_saddr, fast_v6_rcv_saddr) as
    the kernel compares it, or None when the iterator did not give it."""
    if bucket.fast_sk_family == 4 and bucket.fast_rcv_saddr is not None:
        v4 = int(ipaddress.IPv4Address(bucket.fast_rcv_saddr))
        return BindAddr(4, bucket.fast_rcv_saddr, v4, None, "any" if v4 == 0 else "specific")
    if bucket.fast_sk_family == 6 and bucket.fast_v6_rcv_saddr is not None:
        ip6 = ipaddress.IPv6Address(bucket.fast_v6_rcv_saddr)
        mapped = ip6.ipv4_mapped
        if mapped is not None:
            kind: Literal["any", "mapped", "specific"] = "mapped"
            default_v4 = int(mapped)
        elif int(ip6) == 0:
            kind, default_v4 = "any", 0
        else:
            kind, default_v4 = "specific", LOOPBACK4_IPV6
        # The kernel compares its own fast_rcv_saddr (the IPv6 socket's sk_rcv_saddr).
        v4 = int(ipaddress.IPv4Address(bucket.fast_rcv_saddr)) if bucket.fast_rcv_saddr is not None else default_v4
        text = f"::ffff:{mapped}" if mapped is not None else str(ip6)
        return BindAddr(6, text, v4, int(ip6), kind)
    return None


def reuseport_match(bucket: BindBucket, me: Me) -> bool | None:
    """sk_reuseport_match(tb, sk) for a new socket (which has no reuseport group yet).
    None when the bucket lacks the fields the STRICT comparison needs."""
    if bucket.fastreuseport <= 0 or not me.reuseport:
        return False
    if bucket.fastuid is None:
        return None
    if bucket.fastuid != me.uid:
        return False
    if bucket.fastreuseport == FASTREUSEPORT_ANY:
        return True
    addr = fast_addr(bucket)
    if addr is None or bucket.fast_ipv6_only is None:
        return None
    return rcv_saddr_equal(addr, me.addr, bucket.fast_ipv6_only, me.v6only, match_sk2_wildcard=False)


def _describe(bucket: BindBucket) -> str:
    mode = {FASTREUSEPORT_ANY: " (ANY)", FASTREUSEPORT_STRICT: " (STRICT)"}.get(bucket.fastreuseport, "")
    parts = [f"fastreuse={bucket.fastreuse}", f"fastreuseport={bucket.fastreuseport}{mode}"]
    if bucket.fastreuseport > 0:
        addr = fast_addr(bucket)
        if addr is not None:
            shown = f"[{addr.text}]" if addr.family == 6 else addr.text
            parts.append(f"fast address {shown}{' V6ONLY' if bucket.fast_ipv6_only else ''}")
        if bucket.fastuid is not None:
            parts.append(f"fast uid {bucket.fastuid}")
    return "bind bucket for this port (" + ", ".join(parts) + ")"


def bucket_unread_reason(buckets: dict[int, list[BindBucket]] | None) -> str:
    """Why the port's bucket is not known, as a clause to append to a sentence."""
    if buckets is None:
        return " (the bucket itself is readable only by the BPF iterator, which did not run)"
    return (
        " (the BPF iterator reads a port's bucket through its listening, connected and "
        "TIME_WAIT sockets, and every socket on this port is only bound)"
    )


def tcp_fast_path(buckets: dict[int, list[BindBucket]] | None, me: Me, port_in_use: bool) -> FastPath | None:
    """inet_csk_get_port()'s fast-path decision for the candidate `me` (a TCP bind of an
    explicit port, socket not yet listening). None when the bucket was not read: no
    iterator, or `port_in_use` (the snapshot has TCP sockets on the port) but none of them
    was walked by the iterator (bound-only sockets are only in the bind hash)."""
    if buckets is None or me.proto != "tcp" or me.port == 0:
        return None
    on_port = buckets.get(me.port, [])
    # The bucket is chosen by (port, l3mdev). A socket without a device has l3mdev 0; with
    # a device it has the device's VRF master, which the snapshot does not record.
    if me.ifindex and any(b.l3mdev for b in on_port):
        return FastPath(
            "unknown",
            "the port has bind buckets of a VRF (l3mdev), and which one a socket bound to this "
            "device joins is not in the snapshot",
        )
    mine = [b for b in on_port if b.l3mdev == 0]
    if not mine:
        if port_in_use:
            return None
        return FastPath("checks", "no socket is in the port's bind bucket: nothing to skip")
    # One bucket per (port, l3mdev); two values mean it changed while the iterator walked
    # the port's sockets. Only a disagreement in what they decide matters.
    answers = [_decide(b, me) for b in mine]
    if len({(a.status, a.listen_skips_check) for a in answers}) > 1:
        return FastPath("unknown", "the port's bind bucket changed while the iterator read it (two sockets showed different fast-path states)", mine[0])
    return answers[0]


def _decide(bucket: BindBucket, me: Me) -> FastPath:
    if bucket.fastreuse > 0 and me.reuseaddr:
        return FastPath(
            "admits",
            f"the kernel's {_describe(bucket)}: every socket bound there since the bucket was made "
            "had SO_REUSEADDR and none listened, so an SO_REUSEADDR bind() skips the conflict check",
            bucket,
            # inet_csk_update_fastreuse() then leaves the bucket matching an SO_REUSEPORT
            # socket itself (unchanged, or reset to STRICT with its own uid and address).
            listen_skips_check=me.reuseport,
        )
    match = reuseport_match(bucket, me)
    if match is None:
        return FastPath("unknown", f"the kernel's {_describe(bucket)} was read without its fast uid or address", bucket)
    if match:
        why = (
            "every socket bound there since it was made had SO_REUSEPORT and this uid"
            if bucket.fastreuseport == FASTREUSEPORT_ANY
            else "the last SO_REUSEPORT socket that reset it had this uid and an address covering this one"
        )
        return FastPath(
            "admits",
            f"the kernel's {_describe(bucket)}: {why}, so this SO_REUSEPORT bind() skips the conflict check",
            bucket,
            listen_skips_check=True,
        )
    return FastPath("checks", f"the kernel's {_describe(bucket)} gives this socket no fast path", bucket)
