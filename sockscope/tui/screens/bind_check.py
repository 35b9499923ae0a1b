"""`b`: would a new bind() (and listen()) work here? A form, the verdict, and the
blockers marked in the panes until dismissed (`x`)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Footer, Input, Label, Select, Static

from sockscope.model import Snapshot
from sockscope.sanitize import terminal_text

from ..columns import ident
from .predictor import UNAVAILABLE, run_check, verdict_text


class BindCheckScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("ctrl+r", "check", "Check", show=True),
    ]

    def __init__(self, get_snapshot: Any, proto: str = "tcp", endpoint: str = "", uid: int = 0) -> None:
        super().__init__()
        self.get_snapshot = get_snapshot  # callable: the latest merged Snapshot
        self.proto = proto
        self.endpoint = endpoint
        self.uid = uid
        self.verdict: Any = None
        self.candidate: Any = None

    def compose(self) -> ComposeResult:
        with Vertical(id="bind-box", classes="modal-box"):
            yield Label("Bind check: would this socket's bind()/listen() work?", classes="modal-title")
            with Horizontal(classes="form-row"):
                yield Select([("TCP", "tcp"), ("UDP", "udp")], value=self.proto, allow_blank=False,
                             id="bind-proto", compact=True)
                yield Input(self.endpoint, placeholder="ADDR:PORT  e.g. 0.0.0.0:8080 or [::]:8080",
                            id="bind-endpoint", compact=True)
            with Horizontal(classes="form-row"):
                yield Checkbox("SO_REUSEADDR", id="bind-reuseaddr", compact=True)
                yield Checkbox("SO_REUSEPORT", id="bind-reuseport", compact=True)
                yield Checkbox("IPV6_V6ONLY", id="bind-v6only", compact=True)
                yield Checkbox("listen()", True, id="bind-listen", compact=True)
            with Horizontal(classes="form-row"):
                yield Label("device", classes="form-label")
                yield Input(placeholder="none", id="bind-device", compact=True)
                yield Label("uid", classes="form-label")
                yield Input(str(self.uid), id="bind-uid", compact=True, type="integer")
                yield Button("Check", id="bind-check", variant="primary", compact=True)
            with VerticalScroll(id="bind-scroll"):
                yield Static(Text("Enter an address and port, then Enter or Check.", style="dim"), id="bind-result")
            yield Footer()

    def on_mount(self) -> None:
        self.query_one("#bind-endpoint", Input).focus()

    def show(self, text: Text | str) -> None:
        self.query_one("#bind-result", Static).update(text)

    @on(Input.Submitted)
    @on(Button.Pressed, "#bind-check")
    def action_check(self) -> None:
        from sockscope.predict.addresses import EndpointError, parse_endpoint

        text = self.query_one("#bind-endpoint", Input).value.strip()
        try:
            family, addr, port, _scope = parse_endpoint(text)
        except (EndpointError, ValueError) as exc:
            self.show(Text(f"Address: {terminal_text(str(exc))}", style="bold red"))
            return
        uid_text = self.query_one("#bind-uid", Input).value.strip() or "0"
        try:
            uid = int(uid_text)
            if uid < 0:
                raise ValueError
        except ValueError:
            self.show(Text(f"uid: {terminal_text(uid_text)!r} is not a user id (a number ≥ 0)", style="bold red"))
            return
        proto = str(self.query_one("#bind-proto", Select).value)
        device = self.query_one("#bind-device", Input).value.strip() or None
        v6only_box = self.query_one("#bind-v6only", Checkbox).value
        try:
            from sockscope.predict import Candidate
        except ImportError:
            self.show(Text(UNAVAILABLE, style="yellow"))
            return
        candidate = Candidate(
            proto=proto,  # type: ignore[arg-type]
            family=family,
            addr=addr,
            port=port,
            reuseaddr=self.query_one("#bind-reuseaddr", Checkbox).value,
            reuseport=self.query_one("#bind-reuseport", Checkbox).value,
            v6only=True if (v6only_box and family == 6) else (False if family == 6 else None),
            device=device,
            uid=uid,
            listen=self.query_one("#bind-listen", Checkbox).value if proto == "tcp" else False,
        )
        self.candidate = candidate
        self.verdict = None
        self.show(Text("checking…", style="dim"))
        self.run_check(self.get_snapshot(), candidate)

    @work(thread=True, exclusive=True, group="bind-check")
    def run_check(self, snapshot: Snapshot, candidate: Any) -> None:
        verdict, error = run_check(snapshot, candidate)
        self.app.call_from_thread(self._done, candidate, verdict, error)

    def _done(self, candidate: Any, verdict: Any, error: str | None) -> None:
        self.verdict = verdict
        if verdict is None:
            self.show(Text(terminal_text(error or UNAVAILABLE), style="yellow"))
            return
        blockers = frozenset(ident(b.socket) for b in (verdict.blockers or []))
        text = verdict_text(verdict)
        if blockers:
            text.append(f"\n{len(blockers)} blocker(s) marked ! in the panes; x clears the marks.", style="bold")
        self.show(text)
        host = f"[{candidate.addr}]" if candidate.family == 6 else candidate.addr
        self.app.set_blockers(blockers, f"{candidate.proto} {host}:{candidate.port}: {verdict.verdict}")  # type: ignore[attr-defined]
