"""Details of one socket: every field, option sources, owners with command lines (read
lazily with psutil), its reuseport group, and what a new bind on its port would meet."""

from __future__ import annotations

import datetime
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, Static

from sockscope.model import Snapshot, SocketRecord, owner_order

from sockscope.formatting import endpoint, flag, options_text
from sockscope.sanitize import host_lines, host_text, terminal_text

from ..keys import bindings
from ..procinfo import ProcessDetails, read_process
from .predictor import default_candidate, run_check, run_rehearsals, text_width, verdict_text


def _opt(value: bool | None, source: str | None) -> str:
    word = "unknown" if value is None else ("on" if value else "off")
    return f"{word} ({source})" if source and value is not None else word


def group_of(rec: SocketRecord, snapshot: Snapshot) -> list[SocketRecord]:
    """Sockets with the same proto/addr/port in LISTEN/UNCONN (its reuseport group)."""
    return [
        r for r in snapshot.on_port(rec.proto, rec.local_port)
        if r.local_addr == rec.local_addr and r.state in ("LISTEN", "UNCONN") and r.netns == rec.netns
    ]


def describe(rec: SocketRecord, snapshot: Snapshot | None, cmdlines: dict[int, list[str] | None] | None = None,
             verdict: Any = None, verdict_error: str | None = None, now: float | None = None,
             procs: dict[int, ProcessDetails | None] | None = None, rehearsals: Any = None,
             width: int = 76) -> Text:
    """Every field of `rec` as text (pure; the screen fills cmdlines and the verdict later)."""
    t = Text()

    def head(title: str) -> None:
        t.append(f"\n{title}\n", style="bold underline")

    def field(name: str, value: Any, style: str = "") -> None:
        t.append(f"  {name:<14}", style="dim")
        t.append(f"{value}\n", style=style)

    t.append(f"{rec.proto}{rec.family} {rec.state}  ", style="bold")
    t.append(endpoint(rec.local_addr, rec.local_port, rec.family, rec.device))
    if rec.state not in ("LISTEN", "UNCONN") or rec.peer_port:
        t.append("  →  " + endpoint(rec.peer_addr, rec.peer_port, rec.family, peer=True))
    t.append("\n")
    head("Socket")
    field("protocol", f"{rec.proto} (IPv{rec.family})")
    field("state", rec.state)
    field("local", endpoint(rec.local_addr, rec.local_port, rec.family))
    field("peer", endpoint(rec.peer_addr, rec.peer_port, rec.family, peer=True))
    field("device", f"{host_text(rec.device)} (ifindex {rec.ifindex})" if rec.device else "none (not SO_BINDTODEVICE)")
    if rec.netns is not None:
        field("namespace", f"{host_text(rec.netns.name)} ({rec.netns.kind}, inode {rec.netns.inode})")
    field("uid", rec.uid)
    field("inode", rec.inode or "none (no file: TIME_WAIT or request socket)")
    field("cookie", rec.cookie or "unknown")
    field("recv-q", rec.recv_q)
    field("send-q", rec.send_q)
    if rec.timer is None:
        field("timer", "none")
    else:
        field("timer", f"{rec.timer.kind}, expires in {rec.timer.expires_ms / 1000:.1f}s "
                       f"(at the snapshot)")
    head("Options")
    src = rec.option_source or {}
    field("SO_REUSEADDR", _opt(rec.reuseaddr, src.get("reuseaddr")), "green" if rec.reuseaddr else "")
    field("SO_REUSEPORT", _opt(rec.reuseport, src.get("reuseport")), "green" if rec.reuseport else "")
    if rec.family == 6:
        field("IPV6_V6ONLY", _opt(rec.v6only, src.get("v6only")))
    else:
        field("IPV6_V6ONLY", "n/a (IPv4)", "dim")
    field("flags", options_text(rec))
    head("Owners")
    if not rec.owners:
        t.append("  none known" + (" (TIME_WAIT sockets have no owner)" if rec.state == "TIME-WAIT" else "") + "\n")
    for o in sorted(rec.owners, key=owner_order):
        t.append(f"  {host_text(o.process)}", style="bold")
        t.append(f"  pid {o.pid}  fd {o.fd}  user {host_text(o.user) or '?'}\n")
        cmd = o.cmdline
        if cmd is None and cmdlines is not None:
            cmd = cmdlines.get(o.pid)
            if o.pid not in cmdlines:
                cmd = None
                t.append("    cmdline: reading…\n", style="dim")
                continue
        if cmd:
            # One line whatever argv holds: a "\n\r\x1b[1A" in it cannot overwrite this line.
            t.append("    " + host_lines(cmd) + "\n", style="italic")
        elif cmdlines is not None:
            t.append("    cmdline: unavailable (process gone, kernel thread, or no permission)\n", style="dim")
        proc = (procs or {}).get(o.pid)
        if proc is not None:
            t.append("    " + process_line(proc) + "\n", style="dim")
    if rec.state in ("LISTEN", "UNCONN") and snapshot is not None:
        group = group_of(rec, snapshot)
        head(f"Reuseport group: {len(group)} socket{'s' if len(group) != 1 else ''} on "
             f"{rec.proto} {endpoint(rec.local_addr, rec.local_port, rec.family)}")
        for r in group:
            me = " (this one)" if r is rec or (r.cookie and r.cookie == rec.cookie) else ""
            who = f"{host_text(r.process)}/{r.pid}" if r.pid is not None else "no owner"
            opts = flag(r.reuseaddr, "A") + flag(r.reuseport, "P")
            t.append(f"  {r.state:<7} {opts}  uid {r.uid:<6} {who}  cookie {r.cookie}{me}\n")
    head(f"A new bind on {rec.proto} {endpoint(rec.local_addr, rec.local_port, rec.family)} "
         "(no options, uid 0)")
    if verdict is not None:
        t.append_text(verdict_text(verdict, width=width))
    elif verdict_error:
        t.append(f"  {terminal_text(verdict_error)}\n", style="yellow")
    else:
        t.append("  checking…\n", style="dim")
    if rehearsals is not None:
        like, restart = rehearsals
        if like is not None:
            head("Another member like this (same options and uid)")
            t.append_text(verdict_text(like, width=width))
        if restart is not None:
            head(f"This process restarted (pid {restart.pid}: exits now, binds its sockets again)")
            t.append_text(restart_text(restart, width))
    if snapshot is not None:
        when = datetime.datetime.fromtimestamp(snapshot.taken_at).strftime("%H:%M:%S") if now is None else ""
        if when:
            t.append(f"\nsnapshot of {when}", style="dim")
    return t


def process_line(p: ProcessDetails) -> str:
    """"exe /usr/sbin/nginx · parent 1 · started 2026-11-25 21:03:11 · sleeping, 4 threads"."""
    parts = [f"exe {host_text(p.exe)}" if p.exe else "exe unreadable"]
    if p.ppid is not None:
        parts.append(f"parent {p.ppid}")
    if p.started is not None:
        parts.append("started " + datetime.datetime.fromtimestamp(p.started).strftime("%Y-%m-%d %H:%M:%S"))
    if p.status:
        parts.append(p.status + (f", {p.threads} threads" if p.threads else ""))
    return " · ".join(parts)


RESTART_SUMMED_AFTER = 4  # past this many sockets that bind again or stay open: one line each


def restart_text(report: Any, width: int) -> Text:
    """One line per socket of the restart rehearsal, then the overall verdict."""
    from .predictor import VERDICT_STYLE

    out = Text()
    out.append(f" {report.verdict.upper()} ", style=VERDICT_STYLE.get(report.verdict, "bold") + " reverse")
    words = {"ok": "every socket would bind again", "conflict": "not every socket would bind again",
             "unknown": "hangs on options that could not be read"}
    out.append(f"  {words[report.verdict]}\n", style="bold")
    fine = [it for it in report.items if it.verdict is not None and it.verdict.verdict == "ok"]
    kept = [it for it in report.items if it.verdict is None]
    summed = len(fine) + len(kept) > RESTART_SUMMED_AFTER  # one line each, not hundreds
    for item in report.items:
        r = item.socket
        where = f"{r.proto} {r.state} {endpoint(r.local_addr, r.local_port, r.family, r.device)}"
        if summed and (item in fine or item in kept):
            continue
        if item.verdict is None:
            out.append(f"  = {where}: stays open (another process holds it too)\n", style="dim")
            continue
        v = item.verdict
        line = f"{where}: {v.verdict}" + (f" ({v.errno})" if v.errno else "")
        if v.when:
            line += f"; {v.when}"
        elif v.groups:
            line += f"; blocked by {v.groups[0].head()}"
        out.append_text(verdict_line(line, width, v.verdict))
    if summed:
        if fine:
            out.append_text(verdict_line(f"{len(fine)} socket(s) would bind again: ok", width, "ok"))
        if kept:
            out.append(f"  = {len(kept)} socket(s) stay open (another process holds them too)\n", style="dim")
    return out


def verdict_line(line: str, width: int, kind: str) -> Text:
    import textwrap

    style = {"ok": "green", "conflict": "red", "unknown": "yellow"}.get(kind, "")
    wrapped = textwrap.wrap(line, max(width, 30), initial_indent="  • ", subsequent_indent="    ") or [line]
    return Text("\n".join(wrapped) + "\n", style=style)


class DetailsScreen(ModalScreen[None]):
    BINDINGS = bindings("details")  # tui/keys.py

    def __init__(self, rec: SocketRecord, snapshot: Snapshot, fixed_time: bool = False,
                 links: list[str] | None = None) -> None:
        super().__init__()
        self.links = links or []  # port mappings through this socket (--all-netns), as text
        self.rec = rec
        self.snapshot = snapshot
        self.cmdlines: dict[int, list[str] | None] = {}
        self.procs: dict[int, ProcessDetails | None] = {}
        self.verdict: Any = None
        self.verdict_error: str | None = None
        self.rehearsals: Any = None
        self.fixed_time = fixed_time

    def compose(self) -> ComposeResult:
        with Vertical(id="details-box", classes="modal-box"):
            yield Label("Socket details", classes="modal-title")
            with VerticalScroll(id="details-scroll"):
                yield Static(self._text(), id="details-body")
            yield Footer()

    def _text(self) -> Text:
        t = describe(self.rec, self.snapshot, self.cmdlines, self.verdict, self.verdict_error,
                     now=0.0 if self.fixed_time else None, procs=self.procs, rehearsals=self.rehearsals,
                     width=text_width(self))
        if self.links:
            t.append("\nPort mapping\n", style="bold underline")
            for line in self.links:
                t.append(f"  {line}\n")
        return t

    def on_mount(self) -> None:
        self.fetch_cmdlines()
        self.check_port()

    def _update(self) -> None:
        self.query_one("#details-body", Static).update(self._text())

    @work(thread=True, exclusive=False, group="details-cmdline")
    def fetch_cmdlines(self) -> None:
        # psutil, one process at a time (tui/procinfo.py): exe, start, parent, state, and the
        # command line when the collector had none.
        procs: dict[int, ProcessDetails | None] = {}
        for o in self.rec.owners:
            if o.pid not in procs:
                procs[o.pid] = read_process(o.pid, o.process)
        self.app.call_from_thread(self._got_cmdlines, procs)

    def _got_cmdlines(self, procs: dict[int, ProcessDetails | None]) -> None:
        self.procs.update(procs)
        self.cmdlines.update({pid: p.cmdline if p else None for pid, p in procs.items()})
        for o in self.rec.owners:
            self.cmdlines.setdefault(o.pid, o.cmdline)
        # Repaint only when the text changes: a process line to add, or "reading…" to replace.
        if any(p is not None for p in procs.values()) or any(o.cmdline is None for o in self.rec.owners):
            self._update()

    @work(thread=True, exclusive=False, group="details-check")
    def check_port(self) -> None:
        verdict: Any
        error: str | None
        try:
            candidate = default_candidate(self.rec)
        except ImportError:
            verdict, error = None, "predictor unavailable"
        else:
            verdict, error = run_check(self.snapshot, candidate)
        rehearsals = run_rehearsals(self.snapshot, self.rec)
        self.app.call_from_thread(self._got_verdict, verdict, error, rehearsals)

    def _got_verdict(self, verdict: Any, error: str | None, rehearsals: Any = None) -> None:
        self.verdict, self.verdict_error, self.rehearsals = verdict, error, rehearsals
        self._update()

    def action_why(self) -> None:
        from .why import WhyScreen

        self.app.push_screen(WhyScreen(self.snapshot, self.rec.proto, self.rec.local_port))
