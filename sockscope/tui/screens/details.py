"""Details of one socket: every field, option sources, owners with command lines (read
lazily with psutil), its reuseport group, and what a new bind on its port would meet."""

from __future__ import annotations

import datetime
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, Static

from sockscope.model import Snapshot, SocketRecord

from sockscope.formatting import endpoint, flag, options_text
from sockscope.sanitize import host_lines, host_text, terminal_text
from .predictor import default_candidate, run_check, verdict_text


def _opt(value: bool | None, source: str | None) -> str:
    word = "unknown" if value is None else ("on" if value else "off")
    return f"{word} ({source})" if source and value is not None else word


def group_of(rec: SocketRecord, snapshot: Snapshot) -> list[SocketRecord]:
    """Sockets with the same proto/addr/port in LISTEN/UNCONN (its reuseport group)."""
    return [
        r for r in snapshot.on_port(rec.proto, rec.local_port)
        if r.local_addr == rec.local_addr and r.state in ("LISTEN", "UNCONN")
    ]


def describe(rec: SocketRecord, snapshot: Snapshot | None, cmdlines: dict[int, list[str] | None] | None = None,
             verdict: Any = None, verdict_error: str | None = None, now: float | None = None) -> Text:
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
    for o in sorted(rec.owners, key=lambda o: (o.pid, o.fd)):
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
        t.append_text(verdict_text(verdict))
    elif verdict_error:
        t.append(f"  {terminal_text(verdict_error)}\n", style="yellow")
    else:
        t.append("  checking…\n", style="dim")
    if snapshot is not None:
        when = datetime.datetime.fromtimestamp(snapshot.taken_at).strftime("%H:%M:%S") if now is None else ""
        if when:
            t.append(f"\nsnapshot of {when}", style="dim")
    return t


class DetailsScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q,enter", "dismiss", "Close"),
        Binding("w", "why", "Why this port"),
    ]

    def __init__(self, rec: SocketRecord, snapshot: Snapshot, fixed_time: bool = False) -> None:
        super().__init__()
        self.rec = rec
        self.snapshot = snapshot
        self.cmdlines: dict[int, list[str] | None] = {}
        self.verdict: Any = None
        self.verdict_error: str | None = None
        self.fixed_time = fixed_time

    def compose(self) -> ComposeResult:
        with Vertical(id="details-box", classes="modal-box"):
            yield Label("Socket details", classes="modal-title")
            with VerticalScroll(id="details-scroll"):
                yield Static(self._text(), id="details-body")
            yield Footer()

    def _text(self) -> Text:
        return describe(self.rec, self.snapshot, self.cmdlines, self.verdict, self.verdict_error,
                        now=0.0 if self.fixed_time else None)

    def on_mount(self) -> None:
        self.fetch_cmdlines()
        self.check_port()

    def _update(self) -> None:
        self.query_one("#details-body", Static).update(self._text())

    @work(thread=True, exclusive=False, group="details-cmdline")
    def fetch_cmdlines(self) -> None:
        out: dict[int, list[str] | None] = {}
        try:
            import psutil
        except ImportError:
            psutil = None  # type: ignore[assignment]
        for o in self.rec.owners:
            if o.cmdline is not None or o.pid in out:
                continue
            cmd = None
            if psutil is not None:
                try:
                    cmd = psutil.Process(o.pid).cmdline() or None
                except Exception:  # noqa: BLE001 - gone, zombie, or denied
                    cmd = None
            out[o.pid] = cmd
        self.app.call_from_thread(self._got_cmdlines, out)

    def _got_cmdlines(self, out: dict[int, list[str] | None]) -> None:
        self.cmdlines.update(out)
        for o in self.rec.owners:
            self.cmdlines.setdefault(o.pid, o.cmdline)
        self._update()

    @work(thread=True, exclusive=False, group="details-check")
    def check_port(self) -> None:
        try:
            candidate = default_candidate(self.rec)
        except ImportError:
            verdict, error = None, "predictor unavailable"
        else:
            verdict, error = run_check(self.snapshot, candidate)
        self.app.call_from_thread(self._got_verdict, verdict, error)

    def _got_verdict(self, verdict: Any, error: str | None) -> None:
        self.verdict, self.verdict_error = verdict, error
        self._update()

    def action_why(self) -> None:
        from .why import WhyScreen

        self.app.push_screen(WhyScreen(self.snapshot, self.rec.proto, self.rec.local_port))
