"""`w`: the predictor's "why" report for a port, in a modal."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, Static

from sockscope.model import Snapshot
from sockscope.sanitize import terminal_text

from ..keys import bindings
from .predictor import run_why


class WhyScreen(ModalScreen[None]):
    BINDINGS = bindings("why")  # tui/keys.py

    def __init__(self, snapshot: Snapshot, proto: str, port: int) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.proto = proto
        self.port = port
        self.text: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="why-box", classes="modal-box"):
            yield Label(f"Why: {self.proto} port {self.port}", classes="modal-title")
            with VerticalScroll(id="why-scroll"):
                yield Static(Text("asking the predictor…", style="dim"), id="why-body")
            yield Footer()

    def on_mount(self) -> None:
        self.ask()

    @work(thread=True, group="why")
    def ask(self) -> None:
        text = run_why(self.snapshot, self.proto, self.port)
        self.app.call_from_thread(self._show, text)

    def _show(self, text: str) -> None:
        self.text = text
        self.query_one("#why-body", Static).update(Text(terminal_text(text)))
