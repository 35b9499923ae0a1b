"""The kernel's bind() fast path and the UDP chain order, from hand-built snapshots.

The kernel is the judge of these rules in tests/test_predict_diff.py and
tests/test_real_servers.py; here each branch of inet_csk_get_port()'s fast path and of the
UDP chain walk is pinned down without root, on snapshots built by hand the way the BPF
collector fills them."""

from __future__ import annotations

from sockscope.model import BindBucket, HostFacts, Snapshot, SocketRecord
from sockscope.predict import Candidate, check
from sockscope.predict.addresses import bind_addr
from sockscope.predict.fastpath import fast_addr, reuseport_match, tcp_fast_path
from sockscope.predict.rules import Me


def _me(addr: str = "0.0.0.0", family: int = 4, *, ra: bool = False, rp: bool = True, v6only: bool = False, uid: int = 0, ifindex: int = 0, port: int = 8080) -> Me:
    a = bind_addr(family, addr)
    if family == 6 and a.kind == "specific":
        v6only = True
    return Me("tcp", a, port, ra, rp, v6only, ifindex, uid)


def _strict(addr: str, family: int = 4, uid: int = 0, v6only: bool = False) -> BindBucket:
    if family == 4:
        return BindBucket(8080, 0, 0, 2, uid, addr, None, 4, v6only)
    v4 = "0.0.0.0" if addr == "::" else (addr.removeprefix("::ffff:") if addr.startswith("::ffff:") else "127.0.0.6")
    return BindBucket(8080, 0, 0, 2, uid, v4, addr, 6, v6only)


def _sock(state: str, addr: str, *, family: int = 4, proto: str = "tcp", uid: int = 0, ra: bool = False, rp: bool = False,
          v6only: bool | None = None, peer: tuple[str, int] = ("0.0.0.0", 0), port: int = 8080, order: int = 0,
          udp_slot: int | None = None, udp_pos: int | None = None) -> SocketRecord:
    if family == 6 and peer[0] == "0.0.0.0":
        peer = ("::", peer[1])
    return SocketRecord(
        proto, family, state, addr, port, peer[0], peer[1], uid, inode=1000 + order, cookie=order + 1,  # type: ignore[arg-type]
        v6only=v6only if family == 6 else None, reuseaddr=ra, reuseport=rp, order=order,
        udp_bucket=udp_slot, udp_chain_pos=udp_pos,
    )


def _snap(sockets: list[SocketRecord], buckets: dict[int, list[BindBucket]] | None) -> Snapshot:
    return Snapshot(sockets, facts=HostFacts(), tcp_buckets=buckets)


# -- sk_reuseport_match ---------------------------------------------------------------


def test_not_read_means_no_answer_from_the_bucket() -> None:
    assert tcp_fast_path(None, _me(), True) is None


def test_any_admits_same_uid_only() -> None:
    any_bucket = BindBucket(8080, 0, 0, 1, 1001, "10.0.0.1", None, 4, False)
    assert reuseport_match(any_bucket, _me(uid=1001)) is True
    assert reuseport_match(any_bucket, _me(uid=1002)) is False
    assert reuseport_match(any_bucket, _me(uid=1001, rp=False)) is False


def test_strict_wildcard_covers_specific_but_not_the_reverse() -> None:
    assert reuseport_match(_strict("0.0.0.0"), _me("127.0.0.1")) is True
    assert reuseport_match(_strict("127.0.0.1"), _me("0.0.0.0")) is False
    assert reuseport_match(_strict("127.0.0.1"), _me("127.0.0.1")) is True


def test_strict_ipv4_wildcard_covers_dual_stack_ipv6_wildcard() -> None:
    # ipv4_rcv_saddr_equal(fast 0.0.0.0, sk_rcv_saddr of [::] = 0, sk ipv6only, ...)
    assert reuseport_match(_strict("0.0.0.0"), _me("::", 6)) is True
    assert reuseport_match(_strict("0.0.0.0"), _me("::", 6, v6only=True)) is False
    # [::1] is V6ONLY once bound: never covered by an IPv4 address.
    assert reuseport_match(_strict("0.0.0.0"), _me("::1", 6)) is False


def test_strict_ipv6_wildcard() -> None:
    assert reuseport_match(_strict("::", 6), _me("127.0.0.1")) is True
    assert reuseport_match(_strict("::", 6, v6only=True), _me("127.0.0.1")) is False
    assert reuseport_match(_strict("::", 6, v6only=True), _me("::1", 6)) is True
    assert reuseport_match(_strict("::ffff:127.0.0.1", 6), _me("127.0.0.1")) is True


def test_fast_address_from_the_kernel_fields() -> None:
    a = fast_addr(_strict("::ffff:10.1.2.3", 6))
    assert a is not None and a.kind == "mapped" and a.text == "::ffff:10.1.2.3"
    assert fast_addr(BindBucket(8080, 0, 0, 0, 0)) is None


def test_missing_fields_are_unknown_not_guessed() -> None:
    bucket = BindBucket(8080, 0, 0, 2, 0, None, None, None, None)
    assert reuseport_match(bucket, _me()) is None
    path = tcp_fast_path({8080: [bucket]}, _me(), True)
    assert path is not None and path.status == "unknown"


def test_vrf_bucket_with_a_device_is_unknown() -> None:
    buckets = {8080: [BindBucket(8080, 0, 0, 1, 0, "0.0.0.0", None, 4, False), BindBucket(8080, 7, 0, 0, 0)]}
    path = tcp_fast_path(buckets, _me(ifindex=3), True)
    assert path is not None and path.status == "unknown" and "VRF" in path.reason
    path = tcp_fast_path(buckets, _me(), True)
    assert path is not None and path.status == "admits"


def test_fastreuse_admits_reuseaddr() -> None:
    buckets = {8080: [BindBucket(8080, 0, 1, 0)]}
    path = tcp_fast_path(buckets, _me(ra=True, rp=False), True)
    assert path is not None and path.status == "admits" and not path.listen_skips_check
    path = tcp_fast_path(buckets, _me(ra=False, rp=False), True)
    assert path is not None and path.status == "checks"


def test_port_in_use_without_a_read_bucket_is_not_answered() -> None:
    # Bound-only sockets are not walked by the iterator: their bucket was not read.
    assert tcp_fast_path({}, _me(), True) is None
    path = tcp_fast_path({}, _me(), False)
    assert path is not None and path.status == "checks"


def test_bucket_read_twice_with_different_states_is_unknown() -> None:
    buckets = {8080: [BindBucket(8080, 0, 0, 1, 0, "0.0.0.0", None, 4, False), BindBucket(8080, 0, 0, 0)]}
    path = tcp_fast_path(buckets, _me(), True)
    assert path is not None and path.status == "unknown" and "changed" in path.reason


def test_bucket_read_twice_deciding_alike_is_answered() -> None:
    buckets = {8080: [_strict("0.0.0.0"), BindBucket(8080, 0, 0, 1, 0, "0.0.0.0", None, 4, False)]}
    path = tcp_fast_path(buckets, _me("127.0.0.1"), True)
    assert path is not None and path.status == "admits"


def test_connect_bucket_takes_the_full_check() -> None:
    # Ports chosen by connect() have -1/-1: no fast path for anyone.
    path = tcp_fast_path({8080: [BindBucket(8080, 0, -1, -1)]}, _me(ra=True), True)
    assert path is not None and path.status == "checks"


# -- the verdict ----------------------------------------------------------------------


def _reuseport_group_with_foreign_child() -> list[SocketRecord]:
    """A uid-0 reuseport listener and a connection it accepted into a uid-1001 process."""
    return [
        _sock("LISTEN", "0.0.0.0", rp=True, order=0),
        _sock("ESTAB", "127.0.0.1", rp=True, uid=1001, peer=("127.0.0.1", 40000), order=1),
    ]


def test_fast_path_admits_what_the_socket_rule_refuses() -> None:
    cand = Candidate("tcp", 4, "0.0.0.0", 8080, reuseport=True, uid=0)
    bucket = {8080: [_strict("0.0.0.0", uid=0)]}
    v = check(_snap(_reuseport_group_with_foreign_child(), bucket), cand)
    assert v.verdict == "ok", v.explanation
    assert any("fast" in n and "fastreuseport=2" in n for n in v.notes)
    # Without the bucket the same question hangs on the cache nobody read.
    v = check(_snap(_reuseport_group_with_foreign_child(), None), cand)
    assert v.verdict == "unknown"


def test_bucket_without_fast_path_makes_the_rule_definite() -> None:
    cand = Candidate("tcp", 4, "0.0.0.0", 8080, reuseport=True, uid=1002)
    v = check(_snap(_reuseport_group_with_foreign_child(), {8080: [_strict("0.0.0.0", uid=0)]}), cand)
    assert v.verdict == "conflict" and v.stage == "bind" and v.errno == "EADDRINUSE"
    assert {b.rule for b in v.blockers} == {"reuseport-uid"}


def test_reuseaddr_fast_path_then_listen_checks() -> None:
    # A bucket that still says fastreuse=1 beside a socket whose SO_REUSEADDR was cleared
    # after its bind: bind() skips the check, listen() does not.
    socks = [_sock("ESTAB", "127.0.0.1", ra=False, peer=("127.0.0.1", 40000))]
    buckets = {8080: [BindBucket(8080, 0, 1, 0)]}
    v = check(_snap(socks, buckets), Candidate("tcp", 4, "0.0.0.0", 8080, reuseaddr=True, listen=True))
    assert (v.verdict, v.errno, v.stage) == ("conflict", "EADDRINUSE", "listen"), v.explanation
    assert "listen() would fail" in v.explanation
    v = check(_snap(socks, buckets), Candidate("tcp", 4, "0.0.0.0", 8080, reuseaddr=True, listen=False))
    assert v.verdict == "ok"


def test_unknown_bucket_says_why() -> None:
    socks = [_sock("LISTEN", "0.0.0.0", rp=True, uid=1001)]
    buckets = {8080: [BindBucket(8080, 0, 0, 2, 0, None, None, None, None)]}
    v = check(_snap(socks, buckets), Candidate("tcp", 4, "0.0.0.0", 8080, reuseport=True, uid=0))
    assert v.verdict == "unknown"
    assert any("without its fast uid or address" in n for n in v.notes)


# -- UDP chain order --------------------------------------------------------------------


def _udp_pair(v4_pos: int | None, v6_pos: int | None, slot6: int = 5) -> list[SocketRecord]:
    """IPv4 0.0.0.0 with SO_REUSEPORT (lets a same-uid SO_REUSEPORT bind in) and a
    dual-stack IPv6 [::] without options (refuses it): the first in the chain decides."""
    return [
        _sock("UNCONN", "0.0.0.0", proto="udp", rp=True, port=5353, order=0, udp_slot=None if v4_pos is None else 5, udp_pos=v4_pos),
        _sock("UNCONN", "::", family=6, proto="udp", v6only=False, port=5353, order=1,
              udp_slot=None if v6_pos is None else slot6, udp_pos=v6_pos),
    ]


UDP_CAND = Candidate("udp", 4, "0.0.0.0", 5353, reuseport=True, uid=0)


def test_udp_without_iterator_order_is_unknown_and_says_why() -> None:
    v = check(_snap(_udp_pair(None, None), None), UDP_CAND)
    assert v.verdict == "unknown"
    assert any("did not read them" in n for n in v.notes)


def test_udp_iterator_order_decides() -> None:
    v = check(_snap(_udp_pair(0, 1), None), UDP_CAND)
    assert v.verdict == "ok", v.explanation
    v = check(_snap(_udp_pair(1, 0), None), UDP_CAND)
    assert v.verdict == "conflict" and v.blockers[0].socket.family == 6


def test_udp_different_slots_stay_unknown() -> None:
    v = check(_snap(_udp_pair(0, 0, slot6=9), None), UDP_CAND)
    assert v.verdict == "unknown"
    assert any("different hash slots" in n for n in v.notes)


def test_udp_connected_socket_position_not_trusted() -> None:
    socks = _udp_pair(1, 0)
    socks[1].peer_addr, socks[1].peer_port, socks[1].state = "::1", 53, "ESTAB"
    v = check(_snap(socks, None), UDP_CAND)
    assert v.verdict == "unknown"
    assert any("connect() may have moved" in n for n in v.notes)


def test_udp_same_family_order_from_the_dump() -> None:
    socks = [
        _sock("UNCONN", "0.0.0.0", proto="udp", rp=True, port=5353, order=0),
        _sock("UNCONN", "0.0.0.0", proto="udp", port=5353, order=1),
    ]
    assert check(_snap(socks, None), UDP_CAND).verdict == "ok"
    socks[0].order, socks[1].order = 1, 0
    assert check(_snap(socks, None), UDP_CAND).verdict == "conflict"
