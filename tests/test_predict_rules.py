"""Named regression tests: one per rule and quirk of shared/kernel-bind-rules.md.

Each builds the situation with real sockets in a private namespace, asks the predictor,
and asks the kernel; both must give the expected answer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from predict_lab import DEV, DEV_V4, DEV_V6, Lab

from sockscope.collectors.snapshotter import Collector
from sockscope.predict import Candidate, Verdict

pytestmark = pytest.mark.root
P = 18080


@pytest.fixture
def lab(netns, holders) -> Iterator[Lab]:
    lab = Lab.open(netns, holders)
    yield lab
    lab.close_all()
    lab.close()


def ask(lab: Lab, expect: str, errno: str | None = None, rule: str | None = None, fresh: bool = False,
        bpf: bool = True, **cand) -> Verdict:
    """Predict, check the verdict, and check the kernel agrees (for definite verdicts)."""
    cand.setdefault("proto", "tcp")
    cand.setdefault("family", 6 if ":" in cand.get("addr", "") else 4)
    cand.setdefault("port", P)
    c = Candidate(**cand)
    if fresh:
        # A collector that never saw the sockets alive: what `sockscope check` knows.
        with Collector(netns=lab.ns.name, use_bpf=bpf) as col:
            verdict = lab.predict(c, col.snapshot())
    else:
        verdict = lab.predict(c)
    stage, kernel_errno = lab.really(c)
    assert verdict.verdict == expect, verdict.explanation
    assert verdict.errno == errno, verdict.explanation
    if rule is not None:
        assert rule in {b.rule for b in verdict.blockers}, [b.reason for b in verdict.blockers]
    if expect == "ok":
        assert kernel_errno is None, f"kernel: {stage} {kernel_errno}"
    elif expect == "conflict":
        assert (stage, kernel_errno) == (verdict.stage, errno)
    return verdict


def server_timewait(lab: Lab, uid: int = 0, close_listener: bool = True, snapshot_alive: bool = False, **opts) -> None:
    """A listener on 127.0.0.1:P that accepted one connection and closed it first: its
    child goes to TIME_WAIT on port P."""
    lst = lab.socket(uid, "tcp", 4, "0.0.0.0", P, listen=True, **opts)
    assert lst is not None
    cli = lab.connect(0, 4, "127.0.0.1", P)
    child = lab.accept(lst)
    assert cli is not None and child is not None
    if snapshot_alive:
        lab.snapshot()
    lab.close_sock(child)
    lab.close_sock(cli)
    if close_listener:
        lab.close_sock(lst)


# -- TCP: §3 -------------------------------------------------------------------------------


def test_listener_without_options_blocks_and_explains(lab: Lab) -> None:
    lst = lab.socket(1001, "tcp", 4, "0.0.0.0", P, listen=True)
    assert lst is not None
    v = ask(lab, "conflict", "EADDRINUSE", "in-use", addr="127.0.0.1")
    b = v.blockers[0]
    assert b.socket.state == "LISTEN" and b.socket.pid is not None
    assert f"pid {b.socket.pid}" in b.reason and "LISTEN" in b.reason
    assert any("stop" in s.lower() and str(b.socket.pid) in s for s in v.suggestions)


def test_reuseaddr_never_makes_two_listeners(lab: Lab) -> None:
    assert lab.socket(0, "tcp", 4, "0.0.0.0", P, reuseaddr=True, listen=True)
    v = ask(lab, "conflict", "EADDRINUSE", "listener", addr="0.0.0.0", reuseaddr=True)
    assert any("BSD" in n for n in v.notes)


def test_reuseaddr_on_both_lets_a_bound_socket_share_then_its_listen_fails(lab: Lab) -> None:
    bound = lab.socket(0, "tcp", 4, "0.0.0.0", P, reuseaddr=True)
    assert bound is not None
    v = ask(lab, "ok", addr="0.0.0.0", reuseaddr=True)
    assert any("listen()" in n for n in v.notes)
    # ... and the kernel's listen() re-check: with the candidate listening, the first fails.
    mine = lab.socket(0, "tcp", 4, "0.0.0.0", P, reuseaddr=True, listen=True)
    assert mine is not None
    assert bound.holder.listen(bound.sid) == "EADDRINUSE"


def test_reuseaddr_needed_on_the_new_socket_too(lab: Lab) -> None:
    assert lab.socket(0, "tcp", 4, "127.0.0.1", P, reuseaddr=True)
    v = ask(lab, "conflict", "EADDRINUSE", "new-without-reuseaddr", addr="127.0.0.1")
    assert any("SO_REUSEADDR" in s for s in v.suggestions)


def test_reuseport_same_uid_groups(lab: Lab) -> None:
    assert lab.socket(1001, "tcp", 4, "0.0.0.0", P, reuseport=True, listen=True)
    ask(lab, "ok", addr="0.0.0.0", reuseport=True, uid=1001)


def test_reuseport_other_uid_blocks(lab: Lab) -> None:
    assert lab.socket(1001, "tcp", 4, "0.0.0.0", P, reuseport=True, listen=True)
    v = ask(lab, "conflict", "EADDRINUSE", "reuseport-uid", addr="0.0.0.0", reuseport=True, uid=1002)
    assert any("uid 1001" in s for s in v.suggestions)


def test_reuseport_on_one_side_only_blocks(lab: Lab) -> None:
    assert lab.socket(0, "tcp", 4, "0.0.0.0", P, reuseport=True, listen=True)
    ask(lab, "conflict", "EADDRINUSE", "reuseport-one-side", addr="0.0.0.0")


# -- TIME_WAIT ---------------------------------------------------------------------------------


def test_timewait_of_a_server_without_reuseaddr_blocks_a_restart(lab: Lab) -> None:
    server_timewait(lab, snapshot_alive=True)
    v = ask(lab, "conflict", "EADDRINUSE", "old-without-reuseaddr", addr="0.0.0.0", reuseaddr=True)
    assert v.blockers[0].socket.state == "TIME-WAIT"
    assert any("Wait" in s and "would succeed in" in s for s in v.suggestions)
    assert v.ok_after_s is not None and abs(v.ok_after_s - v.blockers[0].socket.timer.expires_ms / 1000) < 0.01


def test_timewait_flags_unreadable_gives_unknown_and_says_on_what(lab: Lab) -> None:
    server_timewait(lab, snapshot_alive=False)
    v = ask(lab, "unknown", None, fresh=True, bpf=False, addr="0.0.0.0", reuseaddr=True)
    assert "unless it came from a socket that has SO_REUSEADDR" in v.explanation
    assert v.blockers and not v.blockers[0].definite
    # With the BPF iterator the TIME-WAIT's own flags are read: a definite answer.
    ask(lab, "conflict", "EADDRINUSE", fresh=True, addr="0.0.0.0", reuseaddr=True)


def test_timewait_remembered_by_cookie_allows_reuseaddr(lab: Lab) -> None:
    server_timewait(lab, snapshot_alive=True, reuseaddr=True)
    ask(lab, "ok", addr="0.0.0.0", reuseaddr=True)
    ask(lab, "conflict", "EADDRINUSE", "new-without-reuseaddr", addr="0.0.0.0")


def test_timewait_reuseport_exception_ignores_uid(lab: Lab) -> None:
    server_timewait(lab, uid=1001, snapshot_alive=True, reuseport=True)
    ask(lab, "ok", addr="0.0.0.0", reuseport=True, uid=1002)


def test_timewait_inherits_the_live_listeners_options(lab: Lab) -> None:
    server_timewait(lab, uid=0, close_listener=False, reuseport=True)
    v = ask(lab, "ok", fresh=True, addr="0.0.0.0", reuseport=True, uid=0)
    assert "none of the" in v.explanation


# -- §5 address overlap --------------------------------------------------------------------


def test_dual_stack_wildcard_blocks_ipv4(lab: Lab) -> None:
    assert lab.socket(0, "tcp", 6, "::", P, v6only=False, listen=True)
    ask(lab, "conflict", "EADDRINUSE", addr="127.0.0.1")
    ask(lab, "conflict", "EADDRINUSE", addr="::ffff:127.0.0.1", v6only=False)


def test_v6only_wildcard_leaves_ipv4_and_mapped_free(lab: Lab) -> None:
    assert lab.socket(0, "tcp", 6, "::", P, v6only=True, listen=True)
    ask(lab, "ok", addr="0.0.0.0")
    ask(lab, "ok", addr="::ffff:127.0.0.1", v6only=False)
    ask(lab, "conflict", "EADDRINUSE", addr="::1")


def test_mapped_wildcard_is_an_ipv4_wildcard(lab: Lab) -> None:
    assert lab.socket(0, "tcp", 6, "::ffff:0.0.0.0", P, listen=True)
    ask(lab, "conflict", "EADDRINUSE", addr="127.0.0.1")
    ask(lab, "ok", addr="::1")


def test_dual_stack_client_quirk(lab: Lab) -> None:
    """An IPv6 socket with a specific address and V6ONLY off (a child of a dual-stack
    listener) blocks an IPv4 0.0.0.0 bind, but not 127.0.0.1 nor ::ffff:0.0.0.0."""
    lst = lab.socket(0, "tcp", 6, "::", P, v6only=False, listen=True)
    assert lst is not None
    cli = lab.connect(0, 6, "::1", P)
    child = lab.accept(lst)
    assert cli is not None and child is not None
    lab.close_sock(lst)
    ask(lab, "conflict", "EADDRINUSE", addr="0.0.0.0")
    ask(lab, "ok", addr="127.0.0.1")
    ask(lab, "ok", addr="::ffff:0.0.0.0", v6only=False)


# -- devices, §1 errors ----------------------------------------------------------------------


def test_devices_separate_listeners(lab: Lab) -> None:
    assert lab.socket(0, "tcp", 4, "0.0.0.0", P, device=DEV, listen=True)
    v = ask(lab, "conflict", "EADDRINUSE", addr="0.0.0.0")
    assert any("device lo" in s for s in v.suggestions), v.suggestions
    ask(lab, "ok", addr="0.0.0.0", device="lo")
    ask(lab, "conflict", "EADDRINUSE", addr="0.0.0.0", device=DEV)


def test_address_not_local(lab: Lab) -> None:
    ask(lab, "conflict", "EADDRNOTAVAIL", addr="10.99.0.1")
    ask(lab, "conflict", "EADDRNOTAVAIL", addr="fd00:99::1")
    ask(lab, "ok", addr=DEV_V4)
    ask(lab, "ok", addr=DEV_V6)


def test_host_scoped_ipv6_must_be_on_the_bound_device(lab: Lab) -> None:
    ask(lab, "conflict", "EADDRNOTAVAIL", addr="::1", device=DEV)
    ask(lab, "ok", addr=DEV_V6, device="lo")  # a global address is fine on any device


def test_link_local_needs_an_interface(lab: Lab) -> None:
    ask(lab, "conflict", "EINVAL", addr="fe80::1")


def test_privileged_port(lab: Lab) -> None:
    ask(lab, "conflict", "EACCES", addr="0.0.0.0", port=80, uid=1001)
    ask(lab, "ok", addr="0.0.0.0", port=80, uid=0)


def test_mapped_address_on_v6only_socket(lab: Lab) -> None:
    ask(lab, "conflict", "EINVAL", addr="::ffff:127.0.0.1", v6only=True)


# -- UDP: §4 -------------------------------------------------------------------------------


def test_udp_rules(lab: Lab) -> None:
    assert lab.socket(1001, "udp", 4, "0.0.0.0", P)
    ask(lab, "conflict", "EADDRINUSE", proto="udp", addr="127.0.0.1")
    ask(lab, "ok", proto="udp", addr="::1")


def test_udp_reuseaddr_on_both_ignores_uid(lab: Lab) -> None:
    assert lab.socket(1001, "udp", 4, "0.0.0.0", P, reuseaddr=True)
    ask(lab, "ok", proto="udp", addr="0.0.0.0", reuseaddr=True, uid=1002)


def test_udp_reuseport_needs_one_uid(lab: Lab) -> None:
    assert lab.socket(1001, "udp", 4, "0.0.0.0", P, reuseport=True)
    ask(lab, "ok", proto="udp", addr="0.0.0.0", reuseport=True, uid=1001)
    ask(lab, "conflict", "EADDRINUSE", "reuseport-uid", proto="udp", addr="0.0.0.0", reuseport=True, uid=1002)


def test_udp_first_socket_in_chain_decides(lab: Lab) -> None:
    """Two SO_REUSEADDR+SO_REUSEPORT sockets of different uids share the port; a new
    SO_REUSEPORT-only socket meets the newest first (chain head), whose uid decides."""
    assert lab.socket(1001, "udp", 4, "0.0.0.0", P, reuseaddr=True, reuseport=True)
    assert lab.socket(1002, "udp", 4, "0.0.0.0", P, reuseaddr=True, reuseport=True)
    ask(lab, "ok", proto="udp", addr="0.0.0.0", reuseport=True, uid=1002)
    ask(lab, "conflict", "EADDRINUSE", proto="udp", addr="0.0.0.0", reuseport=True, uid=1001)


# -- §7 port 0, §6 caches ----------------------------------------------------------------------


def test_ephemeral_port_exhaustion(lab: Lab) -> None:
    lab.ns.sysctl("net.ipv4.ip_local_port_range", "40000 40001")
    ask(lab, "ok", addr="0.0.0.0", port=0)
    assert lab.socket(0, "tcp", 4, "0.0.0.0", 40000, listen=True)
    assert lab.socket(0, "tcp", 4, "0.0.0.0", 40001, listen=True)
    v = ask(lab, "conflict", "EADDRINUSE", addr="0.0.0.0", port=0)
    assert "no ephemeral port" in v.explanation
    ask(lab, "conflict", "EADDRINUSE", addr="127.0.0.1", port=0)
    ask(lab, "ok", addr="::1", port=0)


def test_reuseport_fast_path_is_reported_not_guessed(lab: Lab) -> None:
    """§6: Y (no SO_REUSEPORT) blocks the candidate by the per-socket rule, but an earlier
    SO_REUSEPORT socket X of the candidate's uid covering its address left the port's
    strict fast path set, and the kernel admits the bind."""
    assert lab.socket(0, "tcp", 4, "127.0.0.1", P, reuseaddr=True)  # Y
    assert lab.socket(1001, "tcp", 4, "0.0.0.0", P, reuseaddr=True, reuseport=True)  # X
    c = Candidate("tcp", 4, "127.0.0.1", P, reuseport=True, uid=1001, listen=False)
    v = lab.predict(c)
    assert v.verdict == "unknown"
    assert any("fast path" in n for n in v.notes)
    assert lab.really(c) == (None, None)


def test_explanations_name_state_pid_and_rule_in_json(lab: Lab) -> None:
    assert lab.socket(1001, "tcp", 4, "0.0.0.0", P, reuseport=True, listen=True)
    v = lab.predict(Candidate("tcp", 4, "0.0.0.0", P, reuseport=True, uid=1002))
    data = v.to_json()
    assert data["verdict"] == "conflict" and data["errno"] == "EADDRINUSE" and data["stage"] == "bind"
    b = data["blockers"][0]
    assert b["state"] == "LISTEN" and b["rule"] == "reuseport-uid" and b["pid"] and str(b["pid"]) in b["reason"]
    assert b["reuseport"] is True and b["uid"] == 1001
    assert isinstance(data["suggestions"], list) and data["explanation"]
