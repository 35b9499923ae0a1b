"""The header: socket counts per state, collection status, and a sparkline of the total."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Sparkline, Static

from sockscope.sanitize import terminal_text

# Display order and short names of the states in the header.
STATE_ORDER: tuple[tuple[str, str], ...] = (
    ("LISTEN", "LISTEN"),
    ("UNCONN", "UNCONN"),
    ("ESTAB", "ESTAB"),
    ("TIME-WAIT", "TIME-WAIT"),
    ("SYN-SENT", "SYN-SENT"),
    ("SYN-RECV", "SYN-RECV"),
    ("CLOSE-WAIT", "CLOSE-WAIT"),
    ("FIN-WAIT-1", "FIN-WAIT-1"),
    ("FIN-WAIT-2", "FIN-WAIT-2"),
    ("LAST-ACK", "LAST-ACK"),
    ("CLOSING", "CLOSING"),
    ("UDP-CONN", "UDP-CONN"),
)


def seconds(s: float) -> str:
    return f"{s * 1000:.0f}ms" if s < 1 else f"{s:.1f}s"


class StatsHeader(Horizontal):
    """Counts on the left, the sparkline on the right."""

    def compose(self) -> ComposeResult:
        yield Static(id="header-counts")
        with Vertical(id="header-spark"):
            yield Label("sockets, last 10 min", id="spark-label")
            yield Sparkline([], id="sparkline")

    def show(self, *, title: str, counts: dict[str, int], total: int, status: str,
             history: list[float], paused: bool, error: str | None = None) -> None:
        line1 = Text()
        for state, name in STATE_ORDER:
            n = counts.get(state, 0)
            if n:
                if line1:
                    line1.append("  ")
                line1.append(name, style="dim")
                line1.append(f" {n:,}", style="bold")
        for state, n in sorted(counts.items()):
            if n and state not in dict(STATE_ORDER):
                line1.append(f"  {state} {n:,}")
        if not line1:
            line1.append(title, style="bold")
        line2 = Text()
        line2.append(f"total {total:,}", style="bold")
        line2.append("  " + terminal_text(status).replace("\n", " "), style="dim")
        if paused:
            line2.append("  ")
            line2.append(" PAUSED ", style="bold reverse")
        if error:
            line2.append("  ")
            line2.append(terminal_text(error).replace("\n", " "), style="bold red")
        self.query_one("#header-counts", Static).update(Text("\n").join([line1, line2]))
        spark = self.query_one("#sparkline", Sparkline)
        data: Any = history[-120:] if len(history) > 1 else []
        if list(spark.data or []) != list(data):
            spark.data = list(data)
        hi = max(history) if history else 0
        self.query_one("#spark-label", Label).update(f"sockets ≤{hi:,.0f}, 10 min")
