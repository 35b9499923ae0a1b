"""The Signals pane: every signal, most severe first; Enter shows the sockets behind one."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from sockscope.sanitize import host_text
from sockscope.signals import Signal, SignalReport

SEVERITY_STYLE = {"critical": ("CRIT", "bold red"), "warning": ("WARN", "bold yellow"),
                  "info": ("info", "cyan"), "ok": ("ok", "dim green")}


def severity_text(severity: str) -> Text:
    word, style = SEVERITY_STYLE[severity]
    return Text(word, style=style)


def worst_text(report: SignalReport | None) -> Text:
    """One line: the worst signal, or that there is none (the pane's head and the header)."""
    if report is None:
        return Text("signals: computing…", style="dim")
    counts = report.counts()
    worst = report.worst
    line = Text()
    if worst is None or worst.rank == 0:
        line.append("no signal: queues, ephemeral ports, CLOSE_WAIT and reuseport groups look fine", style="dim")
        return line
    line.append_text(severity_text(worst.severity))
    line.append(f" {worst.kind} {host_text(worst.subject)}: {host_text(worst.summary)}")
    more = ", ".join(f"{counts[s]} {s}" for s in ("critical", "warning", "info") if counts[s])
    line.append(f"  ({more})", style="dim")
    return line


class SignalsPane(Vertical):
    """A head line with the worst signal and a table of all of them."""

    class Show(Message):
        """Show the sockets behind a signal (its filter, in its pane)."""

        def __init__(self, signal: Signal) -> None:
            super().__init__()
            self.signal = signal

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.report: SignalReport | None = None
        self.rows: list[Signal] = []

    def compose(self) -> ComposeResult:
        yield Static(worst_text(None), id="signals-head")
        table: DataTable[Text | str] = DataTable(id="signals-table", cursor_type="row", zebra_stripes=False)
        yield table
        yield Static(id="signals-detail")

    def on_mount(self) -> None:
        table = self.query_one("#signals-table", DataTable)
        table.add_column("Sev", width=5, key="sev")
        table.add_column("Signal", width=17, key="kind")
        table.add_column("Subject", width=30, key="subject")
        table.add_column("What", key="what")

    def show(self, report: SignalReport) -> None:
        self.report = report
        self.query_one("#signals-head", Static).update(worst_text(report))
        table = self.query_one("#signals-table", DataTable)
        keep = table.cursor_row
        table.clear()
        self.rows = [s for s in report.signals if s.rank > 0] + [s for s in report.signals if s.rank == 0]
        for i, sig in enumerate(self.rows):
            table.add_row(severity_text(sig.severity), sig.kind, host_text(sig.subject), host_text(sig.summary),
                          key=str(i))
        if self.rows:
            table.move_cursor(row=min(keep, len(self.rows) - 1))
        self._show_detail()

    def _show_detail(self) -> None:
        """The selected signal in full, and how to get to its sockets."""
        sig = self.current
        detail = Text()
        if sig is not None:
            detail.append_text(severity_text(sig.severity))
            detail.append(f" {host_text(sig.subject)}: {host_text(sig.summary)}\n")
            detail.append(f"enter: its sockets in the {sig.pane} pane, filter “{host_text(sig.filter)}”", style="dim")
        self.query_one("#signals-detail", Static).update(detail)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._show_detail()

    def focus_table(self) -> None:
        self.query_one("#signals-table", DataTable).focus()

    @property
    def current(self) -> Signal | None:
        table = self.query_one("#signals-table", DataTable)
        if not self.rows or table.cursor_row is None or not 0 <= table.cursor_row < len(self.rows):
            return None
        return self.rows[table.cursor_row]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_show()

    def action_show(self) -> None:
        sig = self.current
        if sig is not None:
            self.post_message(self.Show(sig))
