"""The one candidate parser (check and the TUI form): scope as inet6_bind() treats it,
ss's device notation, ASCII numbers, V6ONLY left to the namespace by default."""

from __future__ import annotations

import pytest

from sockscope.formatting import endpoint
from sockscope.model import SocketRecord
from sockscope.predict.addresses import needs_scope_id
from sockscope.predict.candidate import CandidateInputError, parse_candidate
from sockscope.predict.explain import describe

IFS = {1: "lo", 2: "va"}


def cand(text: str, proto: str = "tcp", **kw):
    kw.setdefault("uid", 0)
    return parse_candidate(proto, text, interfaces=IFS, **kw)


@pytest.mark.parametrize(
    "addr, needs",
    [("fe80::1", True), ("febf::1", True), ("fec0::1", False), ("::1", False), ("::", False), ("2001:db8::1", False),
     ("ff02::1", True), ("ff01::1", True), ("ff12::1", True), ("ff05::1", False), ("ff0e::1", False),
     ("::ffff:169.254.0.1", False), ("127.0.0.1", False)],
)
def test_needs_scope_id_as_the_kernel(addr: str, needs: bool) -> None:
    assert needs_scope_id(addr) is needs


def test_scope_is_ignored_where_the_kernel_ignores_it() -> None:
    c, notes = cand("[::1%lo]:2222")
    assert c.device is None and c.addr == "::1" and c.port == 2222
    assert len(notes) == 1 and "%lo is ignored" in notes[0] and "no device" in notes[0]
    c, notes = cand("[::1%va]:5000", device="lo")
    assert c.device == "lo" and "on lo (SO_BINDTODEVICE)" in notes[0]
    c, notes = cand("[ff05::1%va]:5353", "udp")
    assert c.device is None and notes


def test_scope_binds_the_device_of_a_link_local_address() -> None:
    for text in ("[fe80::1%va]:22", "[fe80::1%2]:22"):
        c, notes = cand(text)
        assert (c.device, notes) == ("va", []), text
    c, _ = cand("[ff02::1%2]:5353", "udp")
    assert c.device == "va"
    # The scope replaces SO_BINDTODEVICE, as inet6_bind() does; a note says so.
    c, notes = cand("[fe80::1%va]:22", device="lo")
    assert c.device == "va" and "replaces" in notes[0]
    # Index 0 is "no scope": the engine then answers EINVAL (link-local without a device).
    c, _ = cand("[fe80::1%0]:22")
    assert c.device is None
    with pytest.raises(CandidateInputError, match="no interface with index 9"):
        cand("[fe80::1%9]:22")


def test_ss_device_notation_means_bindtodevice() -> None:
    c, notes = cand("[::1]%lo:22")
    assert (c.device, c.addr, notes) == ("lo", "::1", [])
    c, _ = cand("127.0.0.1%lo:80")
    assert (c.family, c.device) == (4, "lo")
    with pytest.raises(CandidateInputError, match="names device 'lo'"):
        cand("127.0.0.1%lo:80", device="va")


def test_v6only_uid_proto() -> None:
    assert cand("[::]:80")[0].v6only is None  # default: the namespace's net.ipv6.bindv6only
    assert cand("[::]:80", v6only=False)[0].v6only is False
    with pytest.raises(CandidateInputError, match="IPv6 addresses only"):
        cand("0.0.0.0:80", v6only=True)
    assert cand("0.0.0.0:80", uid="1001")[0].uid == 1001
    assert cand("0.0.0.0:80", uid=4294967294)[0].uid == 4294967294
    for bad in ("4294967295", "²", "-1", "", 4294967295, -1):
        with pytest.raises(CandidateInputError):
            cand("0.0.0.0:80", uid=bad)
    with pytest.raises(CandidateInputError, match="tcp or udp"):
        cand("0.0.0.0:80", "sctp")
    assert cand("0.0.0.0:80", "UDP")[0].listen is False


def test_endpoints_are_written_as_ss_writes_them() -> None:
    assert endpoint("fe80::1", 22, 6, "va") == "[fe80::1]%va:22"
    assert endpoint("127.0.0.1", 80, 4, "lo") == "127.0.0.1%lo:80"
    rec = SocketRecord(proto="tcp", family=6, state="LISTEN", local_addr="::1", local_port=2222, peer_addr="::",
                       peer_port=0, uid=0, inode=1, cookie=1, ifindex=1, device="lo")
    assert "[::1]%lo:2222" in describe(rec) and ":2222%" not in describe(rec)
