"""The predictor's parts on hand-built snapshots, without root: each blocker rule, the
errors bind() returns before the port check, unknown options, suggestions (each checked
again), explanations, ephemeral ports and `why`. The kernel-checked counterpart of these
is tests/test_predict_rules.py (root); tests/unit/test_predict_replay.py replays the
differential run."""

from __future__ import annotations

import re

import pytest

from sockscope.model import HostFacts, Owner, Snapshot, SocketRecord, Timer
from sockscope.predict import Candidate, check, why_port as why
from sockscope.predict.candidate import parse_candidate
from sockscope.predict.explain import describe

_cookie = iter(range(1000, 10**6))


def rec(state: str = "LISTEN", addr: str = "0.0.0.0", port: int = 8080, proto: str = "tcp", uid: int = 0,
        ra: bool | None = False, rp: bool | None = False, v6only: bool | None = None, device: str | None = None,
        ifindex: int = 0, peer: tuple[str, int] | None = None, owner: str | None = "srv") -> SocketRecord:
    family = 6 if ":" in addr else 4
    tw = state == "TIME-WAIT"
    return SocketRecord(
        proto=proto,  # type: ignore[arg-type]
        family=family, state=state, local_addr=addr, local_port=port,
        peer_addr=peer[0] if peer else ("::" if family == 6 else "0.0.0.0"), peer_port=peer[1] if peer else 0,
        uid=uid, inode=0 if tw else next(_cookie), cookie=next(_cookie), ifindex=ifindex, device=device,
        v6only=v6only if family == 6 else None, reuseaddr=ra, reuseport=rp,
        owners=[] if tw or owner is None else [Owner(4242, 3, owner, "root")],
        timer=Timer("timewait", 30000) if tw else None,
    )


def snap(*recs: SocketRecord, **facts) -> Snapshot:
    return Snapshot(sockets=list(recs), facts=HostFacts(**facts))


def cand(endpoint: str = "0.0.0.0:8080", proto: str = "tcp", uid: int = 0, **kw) -> Candidate:
    return parse_candidate(proto, endpoint, uid=uid, **kw)[0]


# ---------------------------------------------------------------- rules, one each


@pytest.mark.parametrize(
    "existing, kw, verdict, rule",
    [
        (dict(state="UNCONN"), {}, "conflict", "in-use"),
        (dict(state="LISTEN", ra=True), dict(reuseaddr=True), "conflict", "listener"),
        (dict(state="UNCONN", ra=False), dict(reuseaddr=True), "conflict", "old-without-reuseaddr"),
        (dict(state="UNCONN", ra=True), {}, "conflict", "new-without-reuseaddr"),
        (dict(state="LISTEN", rp=True), {}, "conflict", "reuseport-one-side"),
        (dict(state="LISTEN", rp=True, uid=1001), dict(reuseport=True), "conflict", "reuseport-uid"),
        (dict(state="LISTEN", rp=True), dict(reuseport=True), "ok", None),
        (dict(state="UNCONN", ra=True), dict(reuseaddr=True, listen=False), "ok", None),
    ],
)
def test_each_tcp_rule(existing: dict, kw: dict, verdict: str, rule: str | None) -> None:
    v = check(snap(rec(**existing)), cand(**kw))
    assert v.verdict == verdict, v.explanation
    if rule:
        assert v.errno == "EADDRINUSE" and v.stage == "bind"
        assert [b.rule for b in v.blockers] == [rule]
        assert all(b.definite for b in v.blockers)


def test_specific_and_wildcard_and_families() -> None:
    s = snap(rec(addr="127.0.0.1"))
    assert check(s, cand("127.0.0.2:8080")).verdict == "ok"
    assert check(s, cand("0.0.0.0:8080")).verdict == "conflict"
    # [::] without V6ONLY covers IPv4; with it, it does not.
    assert check(snap(rec(addr="::", v6only=False)), cand("127.0.0.1:8080")).verdict == "conflict"
    assert check(snap(rec(addr="::", v6only=True)), cand("127.0.0.1:8080")).verdict == "ok"
    # V6ONLY left alone follows net.ipv6.bindv6only.
    s = snap(rec(addr="0.0.0.0"), bindv6only=True)
    assert check(s, cand("[::]:8080")).verdict == "ok"
    s = snap(rec(addr="0.0.0.0"), bindv6only=False)
    assert check(s, cand("[::]:8080")).verdict == "conflict"


def test_udp_rules() -> None:
    s = snap(rec("UNCONN", "0.0.0.0", 53, "udp", ra=True))
    assert check(s, cand("0.0.0.0:53", "udp", reuseaddr=True)).verdict == "ok"
    assert check(s, cand("0.0.0.0:53", "udp")).verdict == "conflict"


# ---------------------------------------------------------------- before the port check


def test_errors_before_the_port_check() -> None:
    facts = dict(complete=True, local_v4=["127.0.0.0/8"], v6_addrs=[("::1", "lo", True, False)],
                 interfaces={1: "lo", 2: "va"})
    v = check(snap(**facts), cand("127.0.0.1:80", uid=1001))
    assert (v.verdict, v.errno) == ("conflict", "EACCES")
    assert check(snap(**facts), cand("127.0.0.1:80", uid=0)).verdict == "ok"
    v = check(snap(**facts), cand("10.1.2.3:8080"))
    assert (v.errno, v.stage) == ("EADDRNOTAVAIL", "bind")
    v = check(snap(**facts), cand("[::ffff:127.0.0.1]:8080", v6only=True))
    assert v.errno == "EINVAL"
    v = check(snap(**facts), cand("[fe80::1]:8080"))
    assert v.errno == "EINVAL" and "link-local" in v.explanation


# ---------------------------------------------------------------- unknown is an answer


def test_unreadable_options_make_the_verdict_unknown_and_say_on_what() -> None:
    tw = rec("TIME-WAIT", "127.0.0.1", 8080, ra=None, rp=None, peer=("127.0.0.1", 50000))
    v = check(snap(tw), cand("127.0.0.1:8080", reuseaddr=True))
    assert v.verdict == "unknown" and v.errno is None
    assert [b.definite for b in v.blockers] == [False]
    assert "SO_REUSEADDR" in v.blockers[0].reason
    # Without SO_REUSEADDR on the new socket the TIME_WAIT blocks in every world.
    v = check(snap(tw), cand("127.0.0.1:8080"))
    assert v.verdict == "conflict"


# ---------------------------------------------------------------- suggestions and explanations


def test_every_suggested_port_or_address_really_works() -> None:
    s = snap(rec(port=8080), rec(port=8081), rec(addr="127.0.0.1", port=9000))
    for c in (cand("0.0.0.0:8080"), cand("0.0.0.0:9000")):
        v = check(s, c)
        assert v.verdict == "conflict" and v.suggestions
        for text in v.suggestions:
            for ep in re.findall(r"(\d+\.\d+\.\d+\.\d+:\d+|\[[^\]]+\]:\d+)", text):
                again = check(s, cand(ep))
                assert again.verdict == "ok", (text, again.explanation)


def test_option_suggestion_is_checked() -> None:
    s = snap(rec(rp=True))
    v = check(s, cand())
    assert any("SO_REUSEPORT" in t for t in v.suggestions)
    assert check(s, cand(reuseport=True)).verdict == "ok"


def test_explanations_name_the_socket_and_its_options() -> None:
    r = rec(addr="::1", port=2222, ra=True, rp=None, v6only=True, device="lo", ifindex=1)
    text = describe(r)
    assert "TCP LISTEN [::1]%lo:2222" in text
    assert "SO_REUSEADDR on" in text and "SO_REUSEPORT unknown" in text and "V6ONLY on" in text
    v = check(snap(rec(ra=True)), cand(reuseaddr=True))
    assert v.explanation.startswith("bind() of a TCP listener on 0.0.0.0:8080 with SO_REUSEADDR as uid 0")
    assert "EADDRINUSE" in v.explanation


# ---------------------------------------------------------------- port 0


def test_ephemeral_ports() -> None:
    facts = dict(ip_local_port_range=(40000, 40002))
    full = snap(*(rec(port=p) for p in (40000, 40001, 40002)), **facts)
    v = check(full, cand("0.0.0.0:0"))
    assert (v.verdict, v.errno) == ("conflict", "EADDRINUSE") and "no ephemeral port" in v.explanation
    # A specific address that overlaps none of them still finds a port... not here: 0.0.0.0 overlaps all.
    assert check(full, cand("127.0.0.1:0")).verdict == "conflict"
    one_free = snap(rec(port=40000), rec(port=40002), **facts)
    assert check(one_free, cand("0.0.0.0:0")).verdict == "ok"
    reserved = snap(rec(port=40000), rec(port=40002), ip_local_reserved_ports=frozenset({40001}), **facts)
    assert check(reserved, cand("0.0.0.0:0")).verdict == "conflict"
    # A different device does not take the port from a device-bound one.
    udp = snap(*(rec("UNCONN", "0.0.0.0", p, "udp", ra=True) for p in (40000, 40001, 40002)), **facts)
    assert check(udp, cand("0.0.0.0:0", "udp", reuseaddr=True)).verdict == "ok"
    assert check(udp, cand("0.0.0.0:0", "udp")).verdict == "conflict"


# ---------------------------------------------------------------- why


def test_why_lists_holders_and_checked_alternatives() -> None:
    # A listener and a connection it accepted (which inherits its options and uid).
    s = snap(rec(addr="::", port=9090, rp=True, v6only=False, uid=1001),
             rec("ESTAB", "::1", 9090, rp=True, v6only=False, uid=1001, peer=("::1", 40000)))
    report = why(s, "tcp", 9090)
    text = report.text
    assert text.startswith("2 TCP socket(s) use port 9090:")
    assert "[::]:9090" in text and "1 connection(s) on this port: 1 ESTAB" in text
    ok = text.split("Would bind now:")[1].split("Would fail:")[0]
    assert "with SO_REUSEPORT as uid 1001" in ok
    assert "blocked by LISTEN [::]:9090 (reuseport-uid)" in text or "(reuseport-one-side)" in text
    data = report.to_json()
    assert data["port"] == 9090 and len(data["holders"]) == 2
    for t in data["trials"]:
        c = Candidate(proto="tcp", family=t["candidate"]["family"], addr=t["candidate"]["addr"], port=9090,
                      reuseaddr=t["candidate"]["reuseaddr"], reuseport=t["candidate"]["reuseport"], uid=t["candidate"]["uid"])
        assert check(s, c).verdict == t["verdict"]
    empty = why(snap(), "udp", 5353)
    assert empty.text.startswith("No UDP socket uses port 5353")


def test_why_writes_a_device_as_ss_does() -> None:
    s = snap(rec(addr="::1", port=2222, device="lo", ifindex=1, v6only=True))
    text = why(s, "tcp", 2222).text
    assert "TCP LISTEN [::1]%lo:2222" in text
    assert "blocked by LISTEN [::1]%lo:2222" in text
    assert ":2222%lo" not in text
