"""`b`: would a new bind() (and listen()) work here? A form, the verdict, and the
blockers marked in the panes until dismissed (`x`)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Footer, Input, Label, Select, Static

from sockscope.formatting import endpoint as write_endpoint
from sockscope.model import Snapshot
from sockscope.sanitize import terminal_text

from ..keys import bindings
from ..columns import ident
from ..messages import BlockersFound
from .predictor import UNAVAILABLE, run_check, text_width, verdict_text

# The V6ONLY select: "default" is None, the namespace's net.ipv6.bindv6only (never "off").
V6ONLY_CHOICES: dict[str, bool | None] = {"default": None, "on": True, "off": False}


class BindCheckScreen(ModalScreen[None]):
    BINDINGS = bindings("bind-check")  # tui/keys.py

    def __init__(self, get_snapshot: Any, proto: str = "tcp", endpoint: str = "", uid: int = 0,
                 like: Any = None) -> None:
        super().__init__()
        # The selected socket, if any: the form starts as "another socket like this one"
        # (its options, device and uid; listen() when it listens).
        self.like = like
        self.get_snapshot = get_snapshot  # callable: the latest merged Snapshot
        self.proto = proto
        self.endpoint = endpoint
        self.uid = uid
        self.verdict: Any = None
        self.candidate: Any = None
        self.notes: list[str] = []
        snapshot = get_snapshot()
        # Unset means the namespace's net.ipv6.bindv6only, as in `sockscope check`: say which.
        self.v6only_default = (
            f"bindv6only={int(snapshot.facts.bindv6only)}" if snapshot is not None else "net.ipv6.bindv6only"
        )

    def compose(self) -> ComposeResult:
        with Vertical(id="bind-box", classes="modal-box"):
            yield Label("Bind check: would this socket's bind()/listen() work?", classes="modal-title")
            with Horizontal(classes="form-row"):
                yield Select([("TCP", "tcp"), ("UDP", "udp")], value=self.proto, allow_blank=False,
                             id="bind-proto", compact=True)
                yield Input(self.endpoint, placeholder="ADDR:PORT  e.g. 0.0.0.0:8080, [::]:8080, [fe80::1%eth0]:22",
                            id="bind-endpoint", compact=True)
            with Horizontal(classes="form-row"):
                yield Checkbox("SO_REUSEADDR", id="bind-reuseaddr", compact=True)
                yield Checkbox("SO_REUSEPORT", id="bind-reuseport", compact=True)
                yield Select(
                    [(f"V6ONLY: default ({self.v6only_default})", "default"), ("V6ONLY: on", "on"), ("V6ONLY: off", "off")],
                    value="default", allow_blank=False, id="bind-v6only", compact=True,
                )
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
        rec = self.like
        if rec is not None:
            self.query_one("#bind-reuseaddr", Checkbox).value = rec.reuseaddr is True
            self.query_one("#bind-reuseport", Checkbox).value = rec.reuseport is True
            if rec.family == 6 and rec.v6only is not None:
                self.query_one("#bind-v6only", Select).value = "on" if rec.v6only else "off"
            self.query_one("#bind-listen", Checkbox).value = rec.proto == "tcp" and rec.state == "LISTEN"
            self.query_one("#bind-uid", Input).value = str(rec.uid)
            if rec.device:
                self.query_one("#bind-device", Input).value = rec.device

    def show(self, text: Text | str) -> None:
        self.query_one("#bind-result", Static).update(text)

    @on(Input.Submitted)
    @on(Button.Pressed, "#bind-check")
    def action_check(self) -> None:
        # The same parser as `sockscope check` (scope, device notation, uid bounds, V6ONLY).
        from sockscope.predict.candidate import CandidateInputError, parse_candidate

        snapshot = self.get_snapshot()
        v6only = self.query_one("#bind-v6only", Select).value
        try:
            candidate, notes = parse_candidate(
                str(self.query_one("#bind-proto", Select).value),
                self.query_one("#bind-endpoint", Input).value,
                uid=self.query_one("#bind-uid", Input).value.strip() or "0",
                reuseaddr=self.query_one("#bind-reuseaddr", Checkbox).value,
                reuseport=self.query_one("#bind-reuseport", Checkbox).value,
                v6only=V6ONLY_CHOICES.get(str(v6only)),
                device=self.query_one("#bind-device", Input).value.strip() or None,  # blank: none
                listen=self.query_one("#bind-listen", Checkbox).value,
                interfaces=snapshot.facts.interfaces if snapshot is not None else None,
            )
        except CandidateInputError as exc:
            self.show(Text(terminal_text(str(exc)), style="bold red"))
            return
        self.candidate = candidate
        self.notes = notes
        self.verdict = None
        self.show(Text("checking…", style="dim"))
        self.run_check(snapshot, candidate)

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
        text = verdict_text(verdict, width=text_width(self))
        if blockers:
            text.append(f"\n{len(blockers)} blocker(s) marked ! in the panes; x clears the marks.", style="bold")
        for note in self.notes:
            text.append(f"\nNote: {note}", style="dim")
        self.show(text)
        where = write_endpoint(candidate.addr, candidate.port, candidate.family, candidate.device)
        self.post_message(BlockersFound(blockers, f"{candidate.proto} {where}: {verdict.verdict}"))
