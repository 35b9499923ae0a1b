"""Every key of the TUI, in one table: the app's, the table's, the filter's and the modal
screens' BINDINGS, the help screen (`?`) and the command palette are all made from it, so
a key cannot be bound without being described, or described without being bound."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding, BindingType

__all__ = ["Key", "KEYS", "LEGEND", "bindings", "help_sections", "palette_keys"]


@dataclass(frozen=True, slots=True)
class Key:
    section: str  # help section
    shown: str  # the key as help and palette write it: "/", "s", "↑ k"
    what: str  # what it does, for help and the palette
    where: str = "app"  # whose BINDINGS: "app", "table", "filter", "details", "why", "bind-check", "help",
    #                     "free-port", "namespaces";
    #                     "textual" = Textual's own (focus, mouse, palette): described, not bound here
    binding: str | None = None  # Textual key spec ("up,k"); None with where="textual"
    action: str | None = None
    footer: str | None = None  # footer label; None = not shown in the footer
    palette: str | None = None  # command palette title; None = not in the palette
    palette_action: str | None = None  # the app action the palette runs, when not `action` (a widget's)


_PANES = (("1", "listening", "Listening"), ("2", "established", "Established"), ("3", "timewait", "TIME_WAIT"),
          ("4", "other", "Other"))  # fmt: skip

# Order: the footer shows keys in this order; help groups them by section (first seen first).
KEYS: tuple[Key, ...] = (
    *(
        Key("Panes", key, f"the {title} pane", binding=key, action=f"pane('{pane}')", palette=f"Show {title}")
        for key, pane, title in _PANES
    ),
    Key("Panes", "5", "Signals: full queues, ephemeral ports, CLOSE_WAIT leaks, reuseport groups (enter: their sockets)",
        binding="5", action="signals", palette="Show Signals"),
    Key("Panes", "tab / shift+tab", "move focus (table, tabs, filter)", where="textual"),
    Key("Rows", "↑ k", "move the selection up", where="table", binding="up,k", action="cursor_up"),
    Key("Rows", "↓ j", "move the selection down", where="table", binding="down,j", action="cursor_down"),
    Key("Rows", "PgUp", "a page up", where="table", binding="pageup", action="page_up"),
    Key("Rows", "PgDn", "a page down", where="table", binding="pagedown", action="page_down"),
    Key("Rows", "Home", "first row", where="table", binding="home", action="first"),
    Key("Rows", "End", "last row", where="table", binding="end", action="last"),
    Key("Rows", "mouse", "wheel scrolls, click selects, double click opens details", where="textual"),
    Key("Rows", "enter", "details of the selected socket (on a TIME_WAIT group: show its sockets)", where="table",
        binding="enter", action="activate", footer="Details", palette="Socket details", palette_action="details"),
    Key("View", "/", "filter: text or ss-like expression (sport = :443, state listen, process nginx...)",
        binding="slash", action="filter", footer="Filter", palette="Filter sockets"),
    Key("View", "esc", "clear the filter", binding="escape", action="clear_filter", palette="Clear filter"),
    Key("View", "esc", "in the filter: clear it", where="filter", binding="escape", action="clear_filter",
        footer="Clear filter"),
    Key("View", "s", "sort by the next column (or click a header)", binding="s", action="sort_next", footer="Sort",
        palette="Sort by next column"),
    Key("View", "S", "reverse the sort", binding="S", action="sort_reverse", palette="Reverse sort"),
    Key("View", "g", "TIME_WAIT: grouped by local port and peer, or flat", binding="g", action="toggle_group",
        footer="Group TW", palette="Toggle TIME_WAIT grouping"),
    Key("View", "p", "pause / resume collection", binding="p", action="pause", footer="Pause",
        palette="Pause / resume"),
    Key("View", "r", "refresh now (a full dump)", binding="r", action="refresh", palette="Refresh now"),
    Key("Bind check", "b", "would a new bind()/listen() work? blockers are marked ! in the panes", binding="b",
        action="bind_check", footer="Bind check", palette="Bind check"),
    Key("Rows", "w", "why: who holds the selected socket's port, and what would work", binding="w", action="why",
        footer="Why", palette="Why this port"),
    Key("Rows", "n", "network namespaces (--all-netns): each one's sockets and owners; show one or all", binding="n",
        action="namespaces", palette="Network namespaces"),
    Key("Rows", "K", "free the port: destroy the socket or stop its process (preview, then y)", binding="K",
        action="free_port", palette="Free this port"),
    Key("Bind check", "x", "clear the blocker marks", binding="x", action="clear_blockers",
        palette="Clear blocker marks"),
    Key("Bind check", "ctrl+r", "in the bind check: check now (as enter)", where="bind-check", binding="ctrl+r",
        action="check", footer="Check"),
    Key("Bind check", "esc", "close the bind check", where="bind-check", binding="escape", action="dismiss",
        footer="Close"),
    Key("Details", "esc q enter", "close details", where="details", binding="escape,q,enter", action="dismiss",
        footer="Close"),
    Key("Details", "w", "in details: why this port", where="details", binding="w", action="why",
        footer="Why this port"),
    Key("Details", "esc q w enter", "close why", where="why", binding="escape,q,w,enter", action="dismiss",
        footer="Close"),
    Key("Free port", "d", "in K: destroy the socket (SOCK_DESTROY, as ss -K): its peer sees a reset", where="free-port",
        binding="d", action="choose('destroy')", footer="Destroy socket"),
    Key("Free port", "t", "in K: send SIGTERM to the processes that hold it", where="free-port", binding="t",
        action="choose('sigterm')", footer="SIGTERM process"),
    Key("Free port", "k", "in K: SIGKILL, offered only once SIGTERM left a process running", where="free-port",
        binding="k", action="choose('sigkill')"),
    Key("Free port", "y", "in K: yes, do exactly what the preview says", where="free-port", binding="y",
        action="confirm"),
    Key("Free port", "esc n", "in K: cancel / close", where="free-port", binding="escape,n", action="dismiss",
        footer="Cancel / close"),
    Key("Namespaces", "enter", "in the namespace pane: show only that namespace's sockets", where="textual"),
    Key("Namespaces", "a", "in the namespace pane: show every namespace", where="namespaces", binding="a",
        action="pick_all", footer="All"),
    Key("Namespaces", "esc q n", "close the namespace pane", where="namespaces", binding="escape,q,n",
        action="dismiss_none", footer="Close"),
    Key("App", "?", "this help", binding="question_mark", action="help", footer="Help", palette="Help"),
    Key("App", "esc q ?", "close this help", where="help", binding="escape,q,question_mark", action="dismiss",
        footer="Close"),
    Key("App", "ctrl+p", "command palette", where="textual"),
    Key("App", "q", "quit", binding="q", action="quit", footer="Quit"),
    Key("App", "ctrl+q", "quit", where="textual"),
)


def bindings(where: str) -> list[BindingType]:
    """The BINDINGS of `where` ("app", "table", ...), from KEYS."""
    return [
        Binding(k.binding, k.action, k.footer or k.what, show=k.footer is not None)
        for k in KEYS
        if k.where == where and k.binding is not None and k.action is not None
    ]


def help_sections() -> list[tuple[str, list[tuple[str, str]]]]:
    """[(section, [(key as shown, what it does)])], in table order."""
    out: dict[str, list[tuple[str, str]]] = {}
    for k in KEYS:
        out.setdefault(k.section, []).append((k.shown, k.what))
    return list(out.items())


def palette_keys() -> list[tuple[str, str, str]]:
    """(title with its key, what it does, app action) for each key the palette offers."""
    return [(f"{k.palette} ({k.shown})", k.what, k.palette_action or k.action or "") for k in KEYS if k.palette]


LEGEND = """Opt column: A = SO_REUSEADDR, P = SO_REUSEPORT, 6 = IPV6_V6ONLY (IPv6 only);
'-' = off, '?' = unknown (could not be read, e.g. without root).
Grp column: sockets sharing proto/address/port (a SO_REUSEPORT group): ┌│└ + size.
Marks: + green = appeared, - dimmed = vanished (both for ~2 s), ! red = blocks the bind check.
Polling: listening sockets every interval; a full dump (which walks every connection)
every max(interval, 5 × its own duration), shown in the header."""
