"""`n`: every watched network namespace with what it holds; enter shows only its sockets
(a `netns NAME` filter), "all" shows every namespace again."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Label

from sockscope.model import Snapshot
from sockscope.sanitize import host_text

from ..keys import bindings
from ..netns_summary import NetnsRow, summarize

ALL = "all"


class NamespacesScreen(ModalScreen[str | None]):
    """Dismissed with the filter text to apply ("" for all namespaces), or None."""

    BINDINGS = bindings("namespaces")  # tui/keys.py

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.rows: list[NetnsRow] = summarize(snapshot)

    def compose(self) -> ComposeResult:
        with Vertical(id="netns-box", classes="modal-box"):
            yield Label(f"Network namespaces: {len(self.rows)}", classes="modal-title")
            yield DataTable(id="netns-table", cursor_type="row", zebra_stripes=True)
            yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#netns-table", DataTable)
        table.add_columns("Namespace", "Kind", "Listen", "Estab", "TW", "Owners", "Published")
        table.add_row(Text("all", style="bold"), "", *(str(sum(getattr(r, f) for r in self.rows))
                      for f in ("listeners", "established", "timewait")), "", "", key=ALL)
        for row in self.rows:
            owners = ", ".join(f"{host_text(p)}×{n}" if n > 1 else host_text(p) for p, n in row.owners)
            table.add_row(
                Text(host_text(row.ref.name)), row.ref.kind, str(row.listeners), str(row.established),
                str(row.timewait), Text(owners), Text(", ".join(row.published)), key=str(row.ref.inode),
            )
        table.focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value
        if key == ALL:
            self.dismiss("")
            return
        for row in self.rows:
            if str(row.ref.inode) == key:
                self.dismiss(row.filter_text)
                return

    def action_pick_all(self) -> None:
        self.dismiss("")

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
