"""Every text writer that quotes a host string, fed hostile names (no root, no sockets):
list's table, check's verdict, why's report, the TUI's cells, details and verdict text.
None may let a control character through; the names stay recognisable as escapes.
Hostile user names are tested here because a test must not add users to the host."""

from __future__ import annotations

import unicodedata

from sockscope.cli.check_cmd import render_verdict
from sockscope.cli.list_cmd import render_table
from sockscope.model import HostFacts, Owner, Snapshot, SocketRecord
from sockscope.predict import Candidate, check, why_port as why

EVIL = "\x1b]0;pwned\x07\x1b[2J"
EVIL_USER = "u\x1b[8m\r\n"
EVIL_DEV = "e\x1b[31m\x07"
EVIL_ARGV = ["\n\r\x1b[1Aspoof", "[b]x[/b]", "\u202e", "\x9b31m"]


def bad_chars(text: str) -> list[str]:
    return [ch for ch in text if ch != "\n" and (not ch.isprintable() or unicodedata.category(ch) in ("Cc", "Cf"))]


def records() -> list[SocketRecord]:
    owner = Owner(4242, 5, EVIL, EVIL_USER, EVIL_ARGV)
    a = SocketRecord("tcp", 4, "LISTEN", "127.0.0.1", 8080, "0.0.0.0", 0, 0, 11, 101, reuseaddr=False,
                     reuseport=False, owners=[owner])
    b = SocketRecord("tcp", 4, "LISTEN", "0.0.0.0", 8081, "0.0.0.0", 0, 0, 12, 102, ifindex=7, device=EVIL_DEV,
                     reuseaddr=True, reuseport=False, owners=[owner])
    return [a, b]


def snap() -> Snapshot:
    facts = HostFacts(interfaces={1: "lo", 7: EVIL_DEV}, complete=True)
    return Snapshot(sockets=records(), taken_at=0.0, facts=facts)


def test_list_table():
    for wide in (False, True):
        out = render_table(records(), 80, wide)
        assert not bad_chars(out), out
        assert len(out.splitlines()) == 3
    wide = render_table(records(), 80, True)
    assert "\\x1b]0;pwned\\x07\\x1b[2J/4242 u\\x1b[8m\\x0d\\x0a" in wide
    assert "0.0.0.0%e\\x1b[31m\\x07:8081" in wide


def test_check_and_why_text():
    s = snap()
    for cand in (Candidate("tcp", 4, "127.0.0.1", 8080), Candidate("tcp", 4, "0.0.0.0", 8081, reuseaddr=True),
                 Candidate("tcp", 4, "0.0.0.0", 8081, device=EVIL_DEV)):
        verdict = check(s, cand)
        text = render_verdict(verdict)
        assert not bad_chars(text), text
        if verdict.blockers:
            assert "\\x1b]0;pwned" in text
    for port in (8080, 8081):
        text = why(s, "tcp", port).text
        assert not bad_chars(text), text
        assert "\\x1b]0;pwned" in text and "u\\x1b[8m\\x0d\\x0a" in text


def test_tui_cells_details_and_verdict():
    from sockscope.tui.columns import PANE_COLUMNS, RenderContext
    from sockscope.tui.screens.details import describe
    from sockscope.tui.screens.predictor import verdict_text

    s = snap()
    ctx = RenderContext(rows=s.sockets)
    for i, r in enumerate(s.sockets):
        ctx.index = i
        for col in PANE_COLUMNS["listening"] + PANE_COLUMNS["established"]:
            cell = col.text(r, ctx)
            assert not bad_chars(cell) and "\n" not in cell, (col.key, cell)
        verdict = check(s, Candidate("tcp", 4, r.local_addr, r.local_port))
        text = describe(r, s, {4242: EVIL_ARGV}, verdict, None, now=0).plain
        assert not bad_chars(text), text
        # The command line is one line: its "\n\r\e[1A" cannot rewrite the line above.
        assert "    \\x0a\\x0d\\x1b[1Aspoof [b]x[/b] \\u202e \\x9b31m\n" in text
        assert not bad_chars(verdict_text(verdict).plain)


def test_namespace_names_the_change_watch_may_quote_are_made_safe():
    """MultiCollector.children() gives the names MultiWatch puts in its limitation line."""
    from types import SimpleNamespace

    from sockscope.collectors.multi import MultiCollector

    multi = MultiCollector.__new__(MultiCollector)
    ns = SimpleNamespace(ref=SimpleNamespace(name="web\x1b[31m\u202eevil\n"))
    multi._children = {(1, 2): (ns, SimpleNamespace(_ns_fd=None))}
    label, fd = multi.children()[(1, 2)]
    assert fd is None
    assert all(c.isprintable() for c in label) and "\x1b" not in label and "\u202e" not in label
