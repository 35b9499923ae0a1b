"""A `%scope` means what inet6_bind() makes of it, in `check` and in the TUI's form (one
parser, sockscope.predict.candidate), with the kernel as the judge: a scope binds a device
only for addresses that need one (link-local); elsewhere it is ignored, and a note says so."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sockscope.collectors.snapshotter import Collector
from sockscope.predict import check
from sockscope.predict.candidate import parse_candidate

SOCKSCOPE = [sys.executable, "-m", "sockscope"]


def cli_check(ns, *args: str) -> tuple[int, dict]:
    r = subprocess.run([*SOCKSCOPE, "check", *args, "--json", "--netns", ns.name],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 2 and "Traceback" not in r.stderr, r.stderr
    return r.returncode, json.loads(r.stdout)


def form_check(ns, proto: str, endpoint: str) -> object:
    """What the TUI's bind-check form computes: the same parser, the same predictor."""
    with Collector(netns=ns.name) as c:
        snap = c.snapshot()
    cand, _ = parse_candidate(proto, endpoint, uid=0, interfaces=snap.facts.interfaces)
    return check(snap, cand)


def kernel(h, proto: str, addr: str, port: int, scope: int = 0, listen: bool = True) -> str | None:
    sid = h.socket(proto, 6)
    err = h.attempt("bind", sid, addr, port, scope)
    if err is None and listen and proto == "tcp":
        err = h.listen(sid)
    h.close(sid)
    return err


@pytest.mark.root
def test_scope_cases_against_real_binds(netns, holders) -> None:
    va = netns.add_dummy("va", "fe80::1/64", "2001:db8::1/64")
    lo = int(netns.ip("-o", "link", "show", "lo").split(":", 1)[0])
    h = holders(0)
    held = h.socket("tcp", 6)
    assert h.bind(held, "::1", 2222) is None and h.listen(held) is None

    # ::1 needs no scope: %lo is ignored, so the listener on [::1]:2222 is in the way.
    assert kernel(h, "tcp", "::1", 2222, lo) == "EADDRINUSE"
    status, data = cli_check(netns, "tcp", "[::1%lo]:2222")
    assert (status, data["verdict"], data["errno"]) == (1, "conflict", "EADDRINUSE")
    assert any("%lo is ignored" in n for n in data["notes"])
    assert form_check(netns, "tcp", "[::1%lo]:2222").errno == "EADDRINUSE"

    # ...and %va does not bind the socket to va, where ::1 is not: the kernel binds.
    assert kernel(h, "tcp", "::1", 5000, va) is None
    status, data = cli_check(netns, "tcp", "[::1%va]:5000")
    assert (status, data["verdict"]) == (0, "ok"), data
    assert form_check(netns, "tcp", "[::1%va]:5000").verdict == "ok"

    # fe80::1 needs one: by name and by index it binds va; without one, EINVAL.
    assert kernel(h, "tcp", "fe80::1", 3333, va) is None
    for text in ("[fe80::1%va]:3333", f"[fe80::1%{va}]:3333"):
        status, data = cli_check(netns, "tcp", text)
        assert (status, data["verdict"]) == (0, "ok"), (text, data)
        assert form_check(netns, "tcp", text).verdict == "ok", text
    assert kernel(h, "tcp", "fe80::1", 3334) == "EINVAL"
    status, data = cli_check(netns, "tcp", "[fe80::1]:3334")
    assert (status, data["errno"]) == (1, "EINVAL")
    assert form_check(netns, "tcp", "[fe80::1]:3334").errno == "EINVAL"

    # The scope replaces SO_BINDTODEVICE (inet6_bind(): "override any existing binding").
    sid = h.socket("tcp", 6, device="lo")
    assert h.attempt("bind", sid, "fe80::1", 3336, va) is None
    h.close(sid)
    status, data = cli_check(netns, "tcp", "[fe80::1%va]:3336", "--device", "lo")
    assert (status, data["verdict"]) == (0, "ok"), data
    assert any("replaces the device" in n for n in data["notes"])

    # A listener on [fe80::1%va]:3335 blocks the same scoped bind, as the kernel says.
    ll = h.socket("tcp", 6)
    assert h.attempt("bind", ll, "fe80::1", 3335, va) is None and h.listen(ll) is None
    assert kernel(h, "tcp", "fe80::1", 3335, va) == "EADDRINUSE"
    status, data = cli_check(netns, "tcp", f"[fe80::1%{va}]:3335")
    assert (status, data["errno"]) == (1, "EADDRINUSE")
    # The blocker's device is written as ss writes it: [fe80::1]%va:3335.
    assert "[fe80::1]%va:3335" in subprocess.run(
        [*SOCKSCOPE, "check", "tcp", "[fe80::1%va]:3335", "--netns", netns.name],
        capture_output=True, text=True, timeout=60).stdout.replace("\n    ", " ")


@pytest.mark.root
def test_unknown_scope_index_is_a_usage_error(netns) -> None:
    r = subprocess.run([*SOCKSCOPE, "check", "tcp", "[fe80::1%999]:22", "--netns", netns.name],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "index 999" in r.stderr, r.stderr
