"""`?`: every key, in one screen."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, Static

from ..keys import LEGEND, bindings, help_sections


class HelpScreen(ModalScreen[None]):
    BINDINGS = bindings("help")

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for section, keys in help_sections():
            table.add_row(Text(section, style="bold underline"), "")
            for key, what in keys:
                table.add_row(key, what)
            table.add_row("", "")
        with Vertical(id="help-box", classes="modal-box"):
            yield Label("sockscope keys", classes="modal-title")
            with VerticalScroll(id="help-scroll"):
                yield Static(table, id="help-keys")
                yield Static(Text(LEGEND), id="help-legend")
            yield Footer()
