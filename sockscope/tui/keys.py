"""Every key of the TUI, for the help screen (the bindings themselves live with the
widgets and screens that handle them; tests check the two agree)."""

from __future__ import annotations

KEYS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("Panes", (
        ("1 2 3 4", "Listening, Established, TIME_WAIT, Other"),
        ("5", "Signals: full queues, ephemeral ports, CLOSE_WAIT leaks, reuseport groups (enter: their sockets)"),
        ("tab / shift+tab", "move focus (table, tabs, filter)"),
    )),
    ("Rows", (
        ("↑ ↓  j k", "move the selection"),
        ("PgUp PgDn Home End", "page / first / last row"),
        ("mouse", "wheel scrolls, click selects, double click opens details"),
        ("enter", "details of the selected socket (on a TIME_WAIT group: show its sockets)"),
        ("w", "why: who holds the selected socket's port, and what would work"),
    )),
    ("View", (
        ("/", "filter: text or ss-like expression (sport = :443, state listen, process nginx...)"),
        ("esc", "in the filter: clear it"),
        ("s / S", "sort by the next column / reverse the sort (or click a header)"),
        ("g", "TIME_WAIT: grouped by local port and peer, or flat"),
        ("p", "pause / resume collection"),
        ("r", "refresh now (a full dump)"),
    )),
    ("Bind check", (
        ("b", "would a new bind()/listen() work? blockers are marked ! in the panes"),
        ("x", "clear the blocker marks"),
    )),
    ("App", (
        ("?", "this help"),
        ("ctrl+p", "command palette"),
        ("q / ctrl+q", "quit"),
    )),
)

LEGEND = """Opt column: A = SO_REUSEADDR, P = SO_REUSEPORT, 6 = IPV6_V6ONLY (IPv6 only);
'-' = off, '?' = unknown (could not be read, e.g. without root).
Grp column: sockets sharing proto/address/port (a SO_REUSEPORT group): ┌│└ + size.
Marks: + green = appeared, - dimmed = vanished (both for ~2 s), ! red = blocks the bind check.
Polling: listening sockets every interval; a full dump (which walks every connection)
every max(interval, 5 × its own duration), shown in the header."""
