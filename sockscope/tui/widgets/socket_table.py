"""SocketTable: a Line-API table that stays fast at 100,000 rows.

Rows are the records themselves (or GroupRows); nothing is built per row ahead of
time. `render_line` formats only the visible rows, so applying a refresh costs the
swap of a list plus one lookup to keep the selection on the same socket.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.events import Click
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from sockscope.sanitize import terminal_text

from ..keys import bindings
from ..columns import PANE_COLUMNS, Column, Ident, RenderContext, ident, with_netns
from ..views import PaneView


def fit(text: str, width: int, align: str = "left", shorten: str = "end") -> str:
    """`text` padded or shortened (with …) to exactly `width` cells."""
    n = len(text) if text.isascii() else cell_len(text)
    if n > width:
        if width <= 1:
            return "…"[:width]
        if not text.isascii():
            text = text.encode("ascii", "replace").decode()
        if shorten == "middle":
            keep = width - 1
            head = keep // 2
            text = text[:head] + "…" + text[len(text) - (keep - head):]
        else:
            text = text[: width - 1] + "…"
        return text
    pad = " " * (width - n)
    return pad + text if align == "right" else text + pad


def layout(columns: tuple[Column, ...], width: int) -> list[tuple[Column, int]]:
    """Column widths for a table `width` cells wide (one cell is the marker, one space
    between columns): drop optional columns until the rest fits, then share the room."""
    avail = max(width - 1, 0)
    cols = list(columns)

    def need(cs: list[Column]) -> int:
        return sum(c.width for c in cs) + max(len(cs) - 1, 0)

    while need(cols) > avail:
        droppable = [c for c in cols if c.priority > 0]
        if not droppable:
            break
        worst = max(droppable, key=lambda c: (c.priority, cols.index(c)))
        cols.remove(worst)
    widths = {c.key: c.width for c in cols}
    extra = avail - need(cols)
    flex = [c for c in cols if c.flex]
    if extra > 0 and flex:
        total = sum(c.flex for c in flex)
        given = 0
        for c in flex:
            share = extra * c.flex // total
            widths[c.key] += share
            given += share
        widths[flex[-1].key] += extra - given
    elif extra > 0 and cols:
        widths[cols[-1].key] += extra
    return [(c, widths[c.key]) for c in cols]


def _opens_filter(app: Any, key: str) -> bool:
    for binding in getattr(app, "BINDINGS", ()):
        if isinstance(binding, Binding) and binding.action == "filter" and key in binding.key.split(","):
            return True
    return False


class SocketTable(ScrollView, can_focus=True):
    """A table of one pane's rows; header on the first line, fixed while rows scroll."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "socket-table--header",
        "socket-table--header-sorted",
        "socket-table--cursor",
        "socket-table--cursor-blurred",
        "socket-table--new",
        "socket-table--gone",
        "socket-table--blocker",
        "socket-table--opt",
        "socket-table--group",
        "socket-table--empty",
    }

    BINDINGS: ClassVar[list[BindingType]] = bindings("table")  # tui/keys.py

    class RowActivated(Message):
        """Enter or double click on a row."""

        def __init__(self, table: "SocketTable", row: Any) -> None:
            super().__init__()
            self.table = table
            self.row = row

        @property
        def control(self) -> "SocketTable":
            return self.table

    class SortRequested(Message):
        """A click on a column header."""

        def __init__(self, table: "SocketTable", column: str) -> None:
            super().__init__()
            self.table = table
            self.column = column

        @property
        def control(self) -> "SocketTable":
            return self.table

    def __init__(self, pane: str, clock: Callable[[], float] = time.time, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pane = pane
        self.clock = clock
        self.view: PaneView | None = None
        self.mode = pane
        self.cursor = 0
        self.selected: Ident | None = None
        self.blockers: frozenset[Ident] = frozenset()
        self.ctx = RenderContext()
        self.empty_text = "no sockets"
        self._layout: list[tuple[Column, int]] = []
        self._layout_for: tuple[str, int, bool] | None = None
        self.show_netns = False  # a Netns column first (several namespaces watched)
        self._styles: dict[str, Style] = {}

    # ------------------------------------------------------------ data

    @property
    def rows(self) -> list[Any]:
        return self.view.rows if self.view is not None else []

    @property
    def current(self) -> Any | None:
        rows = self.rows
        if 0 <= self.cursor < len(rows):
            return rows[self.cursor]
        return None

    def set_view(self, view: PaneView) -> None:
        """Swap in a new view; the cursor stays on the same socket, at the same place on screen."""
        on_screen = self.cursor - int(self.scroll_y)
        self.view = view
        self.mode = view.mode
        rows = view.rows
        pos = view.position(self.selected) if self.selected is not None else None
        if pos is None:
            pos = min(self.cursor, max(len(rows) - 1, 0))
        self.cursor = pos
        self.selected = ident(rows[pos]) if rows else None
        self.ctx.rows = rows
        self.ctx.groups = view.groups
        self.ctx.full_taken_at = view.full_taken_at
        self.virtual_size = Size(self.body_width, len(rows) + 1)
        body = max(self.size.height - 1, 1)
        on_screen = min(max(on_screen, 0), body - 1)
        self.scroll_to(y=max(pos - on_screen, 0), animate=False, force=True, immediate=True)
        self.refresh()

    def move_to(self, index: int) -> None:
        rows = self.rows
        if not rows:
            return
        index = min(max(index, 0), len(rows) - 1)
        old = self.cursor
        self.cursor = index
        self.selected = ident(rows[index])
        body = max(self.size.height - 1, 1)
        top = int(self.scroll_y)
        if index < top:
            self.scroll_to(y=index, animate=False, force=True, immediate=True)
        elif index >= top + body:
            self.scroll_to(y=index - body + 1, animate=False, force=True, immediate=True)
        else:
            self.refresh_line(old + 1)
            self.refresh_line(index + 1)
            return
        self.refresh()

    def select_identity(self, key: Ident) -> bool:
        if self.view is None:
            return False
        pos = self.view.position(key)
        if pos is None:
            return False
        self.move_to(pos)
        return True

    def set_blockers(self, blockers: frozenset[Ident]) -> None:
        self.blockers = blockers
        self.refresh()

    # ------------------------------------------------------------ actions

    def action_cursor_up(self) -> None:
        self.move_to(self.cursor - 1)

    def action_cursor_down(self) -> None:
        self.move_to(self.cursor + 1)

    def action_page_up(self) -> None:
        self.move_to(self.cursor - max(self.size.height - 2, 1))

    def action_page_down(self) -> None:
        self.move_to(self.cursor + max(self.size.height - 2, 1))

    def action_first(self) -> None:
        self.move_to(0)

    def action_last(self) -> None:
        self.move_to(len(self.rows) - 1)

    def action_activate(self) -> None:
        row = self.current
        if row is not None:
            self.post_message(self.RowActivated(self, row))

    def column_at(self, x: int) -> Column | None:
        pos = 1
        for col, width in self._get_layout():
            if pos <= x < pos + width + 1:
                return col
            pos += width + 1
        return None

    async def _on_click(self, event: Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:
            col = self.column_at(offset.x)
            if col is not None and col.sort is not None:
                self.post_message(self.SortRequested(self, col.key))
            return
        index = int(self.scroll_y) + offset.y - 1
        if 0 <= index < len(self.rows):
            self.move_to(index)
            if event.chain >= 2:
                self.action_activate()

    def set_show_netns(self, show: bool) -> None:
        if show != self.show_netns:
            self.show_netns = show
            self.refresh()

    async def _on_key(self, event: events.Key) -> None:
        # Keys that arrive in one burst (a paste, typing over a slow ssh link) are all
        # queued here before any of them reaches the app's bindings. So the key that
        # opens the filter is acted on here, at once, and the keys queued behind it go
        # to the widget that has focus by then (the filter input), not to `p` or `s`.
        focused = self.screen.focused
        if focused is not None and focused is not self:
            event.stop()
            event.prevent_default()
            focused.post_message(events.Key(event.key, event.character))
            return
        if _opens_filter(self.app, event.key):
            event.stop()
            event.prevent_default()
            await self.app.run_action("filter")
            return
        await super()._on_key(event)

    def on_resize(self) -> None:
        self.virtual_size = Size(self.body_width, len(self.rows) + 1)
        self._layout_for = None

    # ------------------------------------------------------------ rendering

    @property
    def body_width(self) -> int:
        """The width rows are drawn in (without the scrollbar)."""
        return self.scrollable_content_region.width

    def _get_layout(self) -> list[tuple[Column, int]]:
        key = (self.mode, self.body_width, self.show_netns)
        if self._layout_for != key:
            self._layout = layout(with_netns(PANE_COLUMNS[self.mode], self.show_netns), self.body_width)
            self._layout_for = key
        return self._layout

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles = {}

    def _style(self, name: str) -> Style:
        style = self._styles.get(name)
        if style is None:
            style = self._styles[name] = self.get_component_rich_style(f"socket-table--{name}", partial=True)
        return style

    def render_lines(self, crop: Region) -> list[Strip]:
        self.ctx.now = self.clock()
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width = self.body_width
        base = self.rich_style
        if y == 0:
            return self._render_header(width, base)
        index = int(self.scroll_y) + y - 1
        rows = self.rows
        if index >= len(rows):
            if not rows and y == 2 and self.view is not None:
                return Strip([Segment(fit("  " + self.empty_text, width), base + self._style("empty"))], width)
            return Strip.blank(width, base)
        return self._render_row(index, rows[index], width, base)

    def _render_header(self, width: int, base: Style) -> Strip:
        style = base + self._style("header")
        sorted_style = style + self._style("header-sorted")
        sort_key, reverse = self.view.sort if self.view is not None else ("", False)
        segments = [Segment(" ", style)]
        used = 1
        for i, (col, w) in enumerate(self._get_layout()):
            label = col.label
            is_sorted = col.key == sort_key
            if is_sorted:
                label = label[: max(w - 1, 0)] + ("▼" if reverse else "▲")
            text = fit(label, w, col.align)
            if i:
                segments.append(Segment(" ", style))
                used += 1
            segments.append(Segment(text, sorted_style if is_sorted else style))
            used += w
        if used < width:
            segments.append(Segment(" " * (width - used), style))
        return Strip(segments, max(used, width)).crop(0, width)

    def _render_row(self, index: int, row: Any, width: int, base: Style) -> Strip:
        view = self.view
        assert view is not None
        ctx = self.ctx
        ctx.index = index
        key = ident(row)
        now = ctx.now
        style = base
        marker = " "
        marker_style: Style | None = None
        gone = view.gone.get(key)
        if gone is not None:
            style = style + self._style("gone")
            marker = "-"
        else:
            new = view.new.get(key)
            if new is not None and new > now:
                style = style + self._style("new")
                marker = "+"
        if key in self.blockers:
            marker = "!"
            marker_style = base + self._style("blocker")
        if index == self.cursor:
            style = style + self._style("cursor" if self.has_focus else "cursor-blurred")
        segments = [Segment(marker, (marker_style or style) + (self._style("cursor") if index == self.cursor and
                                                                marker_style is not None else Style()))]
        used = 1
        for i, (col, w) in enumerate(self._get_layout()):
            try:
                # Host strings in cells already passed host_text() (formatting.py); the
                # guard here catches any column that forgot, and keeps a cell one line.
                text = terminal_text(col.text(row, ctx)).replace("\n", "\\x0a")
            except Exception:  # noqa: BLE001 - a cell must never break the screen
                text = "?"
            cell = fit(text, w, col.align, col.shorten)
            if i:
                segments.append(Segment(" ", style))
                used += 1
            if col.key == "opt":
                segments.append(Segment(cell, style + self._style("opt")))
            elif col.key == "group" and cell.strip():
                segments.append(Segment(cell, style + self._style("group")))
            else:
                segments.append(Segment(cell, style))
            used += w
        if used < width:
            segments.append(Segment(" " * (width - used), style))
        return Strip(segments, max(used, width)).crop(0, width)
