"""Pure tests of endpoint parsing and the address-overlap table of kernel-bind-rules §5
(the kernel-checked versions are in test_predict_rules.py)."""

from __future__ import annotations

import random

import pytest

from sockscope.predict.addresses import EndpointError, bind_addr, parse_endpoint, tcp_overlap, udp_overlap


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0.0.0.0:8080", (4, "0.0.0.0", 8080, None)),
        (":80", (4, "0.0.0.0", 80, None)),
        ("*:80", (4, "0.0.0.0", 80, None)),
        ("53", (4, "0.0.0.0", 53, None)),
        ("[::]:8080", (6, "::", 8080, None)),
        ("[::ffff:127.0.0.1]:53", (6, "::ffff:127.0.0.1", 53, None)),
        ("[::FFFF:7f00:1]:53", (6, "::ffff:127.0.0.1", 53, None)),
        ("[fe80::1%eth0]:22", (6, "fe80::1", 22, "eth0")),
        ("127.0.0.1:0", (4, "127.0.0.1", 0, None)),
    ],
)
def test_parse_endpoint(text: str, expected: tuple) -> None:
    assert parse_endpoint(text) == expected


def test_parse_endpoint_only_raises_endpoint_error() -> None:
    rng = random.Random(3)
    alphabet = "0123456789abcdef:.[]%*- "
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        try:
            parse_endpoint(text)
        except EndpointError:
            pass


def ov(a: tuple, b: tuple, proto: str = "tcp") -> bool:
    (fa, aa, va), (fb, ab, vb) = a, b
    f = tcp_overlap if proto == "tcp" else udp_overlap
    return f(bind_addr(fa, aa), bind_addr(fb, ab), va, vb)


ANY4 = (4, "0.0.0.0", False)
LO4 = (4, "127.0.0.1", False)
ANY6 = (6, "::", False)
ANY6_ONLY = (6, "::", True)
MAPPED_ANY = (6, "::ffff:0.0.0.0", False)
MAPPED_LO = (6, "::ffff:127.0.0.1", False)
LO6 = (6, "::1", True)
LO6_DUAL = (6, "::1", False)  # a dual-stack child or client: V6ONLY off


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_overlap_table(proto: str) -> None:
    # IPv4 wildcard: every IPv4, v4-mapped and non-V6ONLY IPv6 socket.
    assert ov(ANY4, LO4, proto) and ov(ANY4, MAPPED_LO, proto) and ov(ANY4, ANY6, proto)
    assert not ov(ANY4, ANY6_ONLY, proto) and not ov(ANY4, LO6, proto)
    # [::] without V6ONLY overlaps everything; with V6ONLY only non-mapped IPv6.
    for other in (ANY4, LO4, MAPPED_LO, LO6, ANY6_ONLY):
        assert ov(ANY6, other, proto)
    assert ov(ANY6_ONLY, LO6, proto) and ov(ANY6_ONLY, ANY6, proto)
    assert not ov(ANY6_ONLY, LO4, proto) and not ov(ANY6_ONLY, MAPPED_LO, proto)
    # [::ffff:0.0.0.0] is an IPv4 wildcard, and overlaps a non-V6ONLY [::].
    assert ov(MAPPED_ANY, LO4, proto) and ov(MAPPED_ANY, ANY6, proto) and not ov(MAPPED_ANY, LO6, proto)
    # Specific addresses: IPv4 a.b.c.d == ::ffff:a.b.c.d.
    assert ov(LO4, MAPPED_LO, proto) and ov(MAPPED_LO, LO4, proto)
    assert not ov(LO4, (4, "127.0.0.2", False), proto)
    # The quirk: a dual-stack specific IPv6 socket blocks 0.0.0.0, not 127.0.0.1 nor ::ffff:0.0.0.0.
    assert ov(ANY4, LO6_DUAL, proto)
    assert not ov(LO4, LO6_DUAL, proto) and not ov(MAPPED_ANY, LO6_DUAL, proto)
