"""The filter bar: an input for sockscope.filter expressions, and its error line."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Static

from ..keys import bindings
from sockscope.sanitize import terminal_text

PLACEHOLDER = "text, or an expression: sport = :443 and not state time-wait   (Esc clears, Enter keeps)"


class FilterInput(Input):
    BINDINGS = bindings("filter")  # tui/keys.py

    def action_clear_filter(self) -> None:
        self.post_message(FilterBar.Cleared())


class FilterBar(Vertical):
    """Hidden until opened with `/`."""

    class Changed(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Cleared(Message):
        pass

    class Done(Message):
        pass

    def compose(self) -> ComposeResult:
        yield FilterInput(placeholder=PLACEHOLDER, id="filter-input", compact=True)
        yield Static("", id="filter-error", markup=False)

    @property
    def input(self) -> Input:
        return self.query_one("#filter-input", Input)

    def open(self) -> None:
        self.add_class("-open")
        # Focus now, not after the next refresh (Widget.focus() is deferred): keys that
        # arrive in the same burst as `/` (a paste, a slow ssh link) are already queued
        # and must go to the input, not run `p` (pause) or `s` (sort).
        self.screen.set_focus(self.input)
        if self.screen.focused is not self.input:
            self.input.focus()

    def close(self) -> None:
        self.remove_class("-open")

    @property
    def is_open(self) -> bool:
        return self.has_class("-open")

    def show_error(self, message: str | None) -> None:
        err = self.query_one("#filter-error", Static)
        # A Text, never a markup string: the message quotes what was typed (`uid [/`).
        err.update(Text(terminal_text(message or "").replace("\n", " ")))
        err.set_class(bool(message), "-error")

    @on(Input.Changed, "#filter-input")
    def _changed(self, event: Input.Changed) -> None:
        event.stop()
        if not event.value.isprintable():
            # A paste can carry ESC or other controls, which the input would draw raw;
            # no filter needs them.
            self.input.value = "".join(ch for ch in event.value if ch.isprintable())
            return
        self.post_message(self.Changed(event.value))

    @on(Input.Submitted, "#filter-input")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Done())
