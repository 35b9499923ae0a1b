"""Messages from the background threads to the app (post_message is thread-safe)."""

from __future__ import annotations

from typing import Any

from textual.message import Message

from .views import Views


class ViewsReady(Message):
    """The view builder finished: panes ready to swap in."""

    def __init__(self, views: Views) -> None:
        super().__init__()
        self.views = views


class BlockersFound(Message):
    """A bind check finished: mark these sockets (idents) as blockers in the panes; `text`
    says which check (empty frozenset and text clear the marks)."""

    def __init__(self, blockers: frozenset[Any], text: str) -> None:
        super().__init__()
        self.blockers = blockers
        self.text = text


class CollectorFailed(Message):
    """The collector thread could not read the sockets (shown in the header, retried)."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class SignalsReady(Message):
    """The signals worker finished the signals of the full dump `seq`."""

    def __init__(self, seq: int, report: object) -> None:
        super().__init__()
        self.seq = seq
        self.report = report
