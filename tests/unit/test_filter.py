"""sockscope.filter: plain-text search and ss-like expressions over hand-built records (no root)."""

from __future__ import annotations

import random

import pytest

from sockscope.filter import FilterError, compile_filter
from sockscope.model import STATE_NAMES, Owner, SocketRecord


def rec(
    proto: str = "tcp",
    state: str = "LISTEN",
    local: str = "0.0.0.0",
    lport: int = 0,
    peer: str = "0.0.0.0",
    pport: int = 0,
    uid: int = 0,
    owners: list[Owner] | None = None,
    device: str | None = None,
) -> SocketRecord:
    family = 6 if ":" in local else 4
    return SocketRecord(
        proto,  # type: ignore[arg-type]
        family,
        state,
        local,
        lport,
        peer,
        pport,
        uid,
        inode=1,
        cookie=1,
        device=device,
        owners=owners or [],
    )


NGINX = rec(lport=8080, uid=33, owners=[Owner(100, 6, "nginx", "www-data"), Owner(101, 6, "nginx", "www-data")])
SSHD6 = rec(local="::", lport=22, peer="::", owners=[Owner(200, 3, "sshd", "root")])
CLIENT = rec(state="ESTAB", local="10.1.2.3", lport=50000, peer="93.184.216.34", pport=443, uid=1000,
             owners=[Owner(300, 20, "curl", "alice")])
MAPPED = rec(state="ESTAB", local="::ffff:127.0.0.1", lport=8080, peer="::ffff:127.0.0.1", pport=40000,
             owners=[Owner(100, 9, "nginx", "www-data")])
LOOP6 = rec(state="ESTAB", local="::1", lport=5432, peer="::1", pport=41000, uid=70,
            owners=[Owner(400, 7, "postgres", "postgres")])
DNS = rec(proto="udp", state="UNCONN", local="127.0.0.53", lport=53, uid=101, device="lo",
          owners=[Owner(500, 12, "systemd-resolve", "systemd-resolve")])
TW = rec(state="TIME-WAIT", local="10.1.2.3", lport=50001, peer="93.184.216.34", pport=80)
SYNSENT = rec(state="SYN-SENT", local="10.1.2.3", lport=50002, peer="10.9.9.9", pport=8080, uid=1000)
SYNRECV = rec(state="SYN-RECV", local="10.1.2.3", lport=8080, peer="10.9.9.8", pport=33333)
CLOSEWAIT = rec(state="CLOSE-WAIT", local="192.168.1.5", lport=40404, peer="192.168.1.1", pport=80,
                owners=[Owner(600, 4, "firefox", None)])
BOUND = rec(state="UNCONN", local="0.0.0.0", lport=9999)

ALL = [NGINX, SSHD6, CLIENT, MAPPED, LOOP6, DNS, TW, SYNSENT, SYNRECV, CLOSEWAIT, BOUND]


def pick(text: str) -> list[SocketRecord]:
    pred = compile_filter(text)
    return [r for r in ALL if pred(r)]


def same(text: str, want: list[SocketRecord]) -> None:
    got = pick(text)
    assert got == want, (text, [(r.state, r.local_addr, r.local_port) for r in got])


def error(text: str) -> FilterError:
    with pytest.raises(FilterError) as info:
        compile_filter(text)
    return info.value


# ---------------------------------------------------------------- empty and plain text


@pytest.mark.parametrize("text", ["", "   ", "\t\n"])
def test_empty_accepts_everything(text: str) -> None:
    same(text, ALL)


def test_plain_text_matches_process_user_pid_addr_port_state_device() -> None:
    same("nginx", [NGINX, MAPPED])
    same("NGINX", [NGINX, MAPPED])  # case-insensitive
    same("www-data", [NGINX, MAPPED])
    same("500", [CLIENT, DNS, TW, SYNSENT])  # pid 500, and ports 50000-50002 contain it too
    same("600", [CLOSEWAIT])  # pid
    same("93.184", [CLIENT, TW])
    same("127.0.0.53:53", [DNS])
    same("127.0.0.53%lo:53", [DNS])  # as list and ss write a bound device
    same("[::1]:5432", [LOOP6])
    same("syn-", [SYNSENT, SYNRECV])
    same("established", [CLIENT, MAPPED, LOOP6])  # ss's long name for ESTAB
    # device "lo", "CLOSE-WAIT", and UNCONN's long names "unconnected closed"
    same("lo", [DNS, CLOSEWAIT, BOUND])
    assert compile_filter("wlan0")(rec(device="wlan0"))
    same("9999", [BOUND])


def test_plain_text_words_all_must_match() -> None:
    same("nginx 8080", [NGINX, MAPPED])
    same("nginx ESTAB", [MAPPED])
    same("nginx sshd", [])


def test_plain_text_does_not_cross_fields() -> None:
    # the haystack joins fields with NUL; a needle holding the separator must not bridge two
    same('"22\x00::"', [])
    same("sshdroot", [])


def test_quoted_text_is_plain_even_with_operator_characters() -> None:
    weird = rec(owners=[Owner(1, 1, "a=b (x)", None)])
    assert compile_filter('"a=b (x)"')(weird)
    assert not compile_filter('"a=b (x)"')(NGINX)


def test_non_keyword_start_without_operators_is_plain_text() -> None:
    # "and" is not an expression start, so it is searched for (and found nowhere)
    same("and tcp", [])
    same("curl alice", [CLIENT])


# ---------------------------------------------------------------- ports


@pytest.mark.parametrize("text", ["sport = :8080", "sport == 8080", "sport eq :8080", "sport :8080", "sport 8080",
                                  "sport=:8080", "SPORT = :8080"])
def test_sport_equal_spellings(text: str) -> None:
    same(text, [NGINX, MAPPED, SYNRECV])


def test_port_comparisons() -> None:
    same("dport != :443", [NGINX, SSHD6, MAPPED, LOOP6, DNS, TW, SYNSENT, SYNRECV, CLOSEWAIT, BOUND])
    same("dport ne 443", pick("dport != :443"))
    same("sport > :50000", [TW, SYNSENT])
    same("sport gt 50000", [TW, SYNSENT])
    same("sport >= :50000", [CLIENT, TW, SYNSENT])
    same("sport ge 50000", [CLIENT, TW, SYNSENT])
    same("sport < 1024", [SSHD6, DNS])
    same("sport lt 1024", [SSHD6, DNS])
    same("sport <= 53", [SSHD6, DNS])
    same("sport le :53", [SSHD6, DNS])
    same("dport = :80", [TW, CLOSEWAIT])


def test_service_names_resolve_like_ss() -> None:
    import socket

    try:
        socket.getservbyname("ssh")
    except OSError:
        # No /etc/services here: the name must then be refused clearly, not crash.
        with pytest.raises(FilterError):
            compile_filter("sport = :ssh")
        return
    same("sport = :ssh", [SSHD6])


# ---------------------------------------------------------------- addresses


def test_src_dst_exact_and_cidr() -> None:
    same("src 127.0.0.53", [DNS])
    same("src 10.0.0.0/8", [CLIENT, TW, SYNSENT, SYNRECV])
    same("dst 93.184.216.0/24", [CLIENT, TW])
    same("src [::1]", [LOOP6])
    same("src ::1", [LOOP6])
    same("src ::/0", [SSHD6, MAPPED, LOOP6])
    same("dst [::1]/128", [LOOP6])


def test_src_with_port() -> None:
    same("src 10.1.2.3:8080", [SYNRECV])
    same("src [::1]:5432", [LOOP6])
    same("src [::1]:5433", [])
    same("src :53", [DNS])
    same("src *:22", [SSHD6])
    same("src 10.0.0.0/8:50001", [TW])
    same("src *", ALL)


def test_v4_mapped_addresses_match_ipv4_networks() -> None:
    same("src 127.0.0.1", [MAPPED])
    same("src 127.0.0.0/8", [MAPPED, DNS])
    same("dst 127.0.0.1:40000", [MAPPED])
    # and a mapped network matches plain IPv4 records
    same("src ::ffff:127.0.0.0/104", [MAPPED, DNS])


def test_src_equality_operators() -> None:
    same("src = 127.0.0.53", [DNS])
    same("src == 127.0.0.53", [DNS])
    assert len(pick("src != 127.0.0.53")) == len(ALL) - 1


def test_unparseable_record_address_matches_no_network() -> None:
    odd = rec(local="*", lport=1)
    assert not compile_filter("src 0.0.0.0/0")(odd)
    assert compile_filter("src *:1")(odd)


# ---------------------------------------------------------------- states


@pytest.mark.parametrize("text", ["state established", "state ESTAB", "state estab", "state Established",
                                  "state = established"])
def test_state_names(text: str) -> None:
    same(text, [CLIENT, MAPPED, LOOP6])


@pytest.mark.parametrize("text", ["state time-wait", "state TIME-WAIT", "state time_wait", "state timewait",
                                  "state TIME_WAIT"])
def test_state_dashes_and_underscores(text: str) -> None:
    same(text, [TW])


def test_state_aliases() -> None:
    # "listening" is LISTEN+UNCONN (what `ss -l` shows, and `list -s listening`); LISTEN alone is "listen"
    same("state listening", [NGINX, SSHD6, DNS, BOUND])
    same("state LISTEN", [NGINX, SSHD6])
    same("state unconn", [DNS, BOUND])
    same("state closed", [DNS, BOUND])
    same("state close-wait", [CLOSEWAIT])
    same("state all", ALL)
    same("state connected", [CLIENT, MAPPED, LOOP6, TW, SYNSENT, SYNRECV, CLOSEWAIT])
    same("state synchronized", [CLIENT, MAPPED, LOOP6, TW, CLOSEWAIT])
    same("state bucket", [TW, SYNRECV])
    same("state big", [r for r in ALL if r not in (TW, SYNRECV)])
    same("exclude listening", [r for r in ALL if r.state not in ("LISTEN", "UNCONN")])
    same("state != listening", pick("exclude listening"))


def test_every_model_state_name_is_accepted() -> None:
    for name in STATE_NAMES:
        pred = compile_filter(f"state {name}")
        assert pred(rec(state=name)), name
        assert not pred(rec(state="UNKNOWN-99"))


# ---------------------------------------------------------------- uid, pid, proto, process, user, dev


def test_uid() -> None:
    same("uid 1000", [CLIENT, SYNSENT])
    same("uid = 1000", [CLIENT, SYNSENT])
    same("uid >= 101", [CLIENT, DNS, SYNSENT])


def test_pid_matches_any_owner() -> None:
    same("pid 101", [NGINX])
    same("pid = 100", [NGINX, MAPPED])
    same("pid > 450", [DNS, CLOSEWAIT])
    # "pid != N": not owned by N, so unowned sockets pass
    assert set(map(id, pick("pid != 100"))) == {id(r) for r in ALL if r not in (NGINX, MAPPED)}


def test_proto() -> None:
    same("proto udp", [DNS])
    same("udp", [DNS])
    same("UDP", [DNS])
    same("proto = udp", [DNS])
    same("tcp", [r for r in ALL if r is not DNS])
    same("proto != tcp", [DNS])


def test_process_and_user_are_case_insensitive_substrings() -> None:
    same("process ngin", [NGINX, MAPPED])
    same("process NGINX", [NGINX, MAPPED])
    same("user www", [NGINX, MAPPED])
    same("user root", [SSHD6])
    same("process != nginx", [r for r in ALL if r not in (NGINX, MAPPED)])
    same('process "systemd-resolve"', [DNS])
    # a word operator is a name when nothing follows it
    assert compile_filter("user ne")(rec(owners=[Owner(1, 1, "x", "nemo")]))


def test_dev() -> None:
    same("dev lo", [DNS])
    same("dev = lo", [DNS])
    same("dev eth0", [])


# ---------------------------------------------------------------- combinators and precedence


def test_and_or_not_spellings() -> None:
    want = [NGINX, MAPPED]
    same("sport = :8080 and process nginx", want)
    same("sport = :8080 && process nginx", want)
    same("sport = :8080 process nginx", want)  # juxtaposition is "and"
    same("sport = :53 or sport = :22", [SSHD6, DNS])
    same("sport = :53 || sport = :22", [SSHD6, DNS])
    same("not tcp", [DNS])
    same("! tcp", [DNS])
    same("!tcp", [DNS])
    same("not not udp", [DNS])
    same("!!!udp", [r for r in ALL if r is not DNS])


def test_parentheses() -> None:
    same("(sport = :53 or sport = :22) and udp", [DNS])
    same("not (tcp or udp)", [])
    same("((((udp))))", [DNS])


def test_precedence_not_over_and_over_or() -> None:
    # or binds loosest: udp or (tcp and sport = :22)
    same("udp or tcp and sport = :22", [SSHD6, DNS])
    same("udp or tcp sport = :22", [SSHD6, DNS])
    same("tcp and sport = :22 or udp", [SSHD6, DNS])
    # not binds tightest: (not udp) and sport < 100
    same("not udp and sport < 100", [SSHD6])
    same("not udp or sport < 100", ALL)
    same("not udp and not sport < 100", [r for r in ALL if r not in (DNS, SSHD6)])
    same("not (udp or sport < 100)", [r for r in ALL if r not in (DNS, SSHD6)])


def test_bare_words_in_expressions_are_text_terms() -> None:
    same("tcp nginx", [NGINX, MAPPED])
    same("state established and not nginx", [CLIENT, LOOP6])
    same('udp or "curl"', [CLIENT, DNS])


# ---------------------------------------------------------------- errors


def test_error_missing_port() -> None:
    e = error("sport =")
    assert "expected a port after 'sport ='" in str(e) and "column 8" in str(e)
    assert e.column == 8
    e = error("sport = :abc!")  # "!" ends the word; "abc" is no service
    assert "sport" in str(e) and "column 9" in str(e)


def test_error_bad_address() -> None:
    e = error("src 300.1.1.1")
    assert "300.1.1.1" in str(e) and "column 5" in str(e)
    assert e.token == "300.1.1.1"
    assert "column 5" in str(error("dst [::1"))
    assert "port" in str(error("src 1.2.3.4:99999"))
    assert "example.com" in str(error("dst example.com"))


def test_error_unclosed_parenthesis() -> None:
    e = error("(sport = :1")
    assert "missing ')'" in str(e) and "column 1" in str(e)
    e = error("sport = :1)")
    assert "unexpected ')'" in str(e) and "column 11" in str(e)


def test_error_unknown_state() -> None:
    e = error("state bogus")
    assert "unknown state 'bogus'" in str(e) and "column 7" in str(e) and "established" in str(e)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("sport = :70000", "out of range"),
        ("uid x", "expected a uid number after 'uid'"),
        ("pid = -1", "expected a pid number"),
        ("tcp and", "expected a filter term"),
        ("tcp or or udp", "expected a filter term, got 'or' at column 8"),
        ("tcp & udp", "use '&&'"),
        ("tcp | udp", "use '||'"),
        ("sprot = 80", "unknown filter keyword 'sprot'"),
        ("proto icmp", "unknown protocol 'icmp'"),
        ("state > listening", "operator '>' cannot be used here"),
        ("state", "expected a state name after 'state'"),
        ("process", "expected a process name"),
        ("tcp 'unterminated", "unterminated quote"),
        ("()", "expected a filter term, got ')'"),
        ("(" * 500 + "tcp" + ")" * 500, "nested deeper"),
        ("sport = 99999999999999999999999999", "expected a port"),
    ],
)
def test_error_messages(text: str, needle: str) -> None:
    assert needle in str(error(text))


def test_filter_error_is_a_value_error() -> None:
    assert issubclass(FilterError, ValueError)


# ---------------------------------------------------------------- robustness and speed

_FUZZ_TOKENS = [
    "sport", "dport", "src", "dst", "state", "exclude", "uid", "pid", "proto", "tcp", "udp", "process", "user",
    "dev", "and", "or", "not", "eq", "ne", "gt", "lt", "ge", "le", "=", "==", "!=", ">", "<", ">=", "<=", "!",
    "&&", "||", "&", "|", "(", ")", "(", ")", ":8080", "8080", ":", "::", "[::1]", "[::1]:80", "[", "]", "[::1",
    "127.0.0.1", "127.0.0.1:80", "10.0.0.0/8", "10.0.0.0/33", "::ffff:1.2.3.4", "300.1.1.1", "*", "*:*", ":*",
    "listening", "established", "time-wait", "bogus", "all", "big", "nginx", '"', "'", '"a b"', "-1", "0",
    "65536", "9" * 40, "1" * 5000, "fe80::1%eth0", "/", "/8", "é", "\x00", "\u2003", "٣", ":ssh", ":nosuchsvc",
    "[1.2.3.4]:", "]:80", "1:2:3", "[::]/200", "--", "\\",
]


def _check_never_raises_other(text: str) -> None:
    try:
        pred = compile_filter(text)
    except FilterError:
        return
    for r in ALL:
        assert isinstance(pred(r), bool), text


def test_fuzz_token_strings_raise_only_filter_error() -> None:
    rng = random.Random(20240601)
    for _ in range(2000):
        n = rng.randint(1, 12)
        sep = rng.choice([" ", "", " "])
        _check_never_raises_other(sep.join(rng.choice(_FUZZ_TOKENS) for _ in range(n)))


def test_fuzz_random_characters_raise_only_filter_error() -> None:
    rng = random.Random(7)
    alphabet = "sportdcaenlu:.[]/()=!<>&|*\"' 0123456789fx\t-é\x00"
    for _ in range(1000):
        _check_never_raises_other("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30))))


def test_long_chains_do_not_recurse() -> None:
    assert compile_filter("!" * 5000 + "udp")(DNS)  # even count of "!"
    chain = " or ".join(f"sport = :{p}" for p in range(2000))
    assert compile_filter(chain)(DNS)
    assert compile_filter(" ".join(["tcp"] * 5000))(NGINX)


def test_non_string_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        compile_filter(None)  # type: ignore[arg-type]


def test_filter_over_many_records_counts_exactly() -> None:
    records = [
        rec(state="ESTAB", local=f"10.0.{i // 256 % 256}.{i % 256}", lport=8080 if i % 100 == 0 else 30000 + i % 30000,
            peer="10.1.0.1", pport=443)
        for i in range(20_000)
    ]
    assert sum(1 for r in records if compile_filter("sport = :8080")(r)) == 200
    pred = compile_filter("src 10.0.0.0/24 and sport > 1024")
    assert sum(1 for r in records if pred(r)) == sum(1 for r in records if r.local_addr.startswith("10.0.0.") and r.local_port > 1024)
