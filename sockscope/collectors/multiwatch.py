"""The change watch of `--all-netns`: one ChangeWatch per namespace a MultiCollector reads,
answering as one (the poller's Source protocol), so an unchanged host with many namespaces
is not dumped at every tick either.

A ChangeWatch belongs to the namespace it was made in (its /proc/net files and its netlink
socket are bound to it), so each is made inside its namespace, through the descriptor the
namespace's Collector holds. A namespace that appears or vanishes moves none of the
watched counters: every tick also runs the namespace discovery (about 0.5 ms on a host of
70 processes; /proc/PID/ns/net of each), and a different set of namespaces is a change.

No reader threads: one per namespace would be as many threads. The poller drains the
watches between ticks (DRAIN_SLICE) instead; a namespace whose kernel buffer overflows
during a long dump makes the figures lower bounds ("at least"), as without the thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import netns as netns_mod
from .events import ChangeWatch, DestroyEvent, StateChanges

if TYPE_CHECKING:
    from .multi import MultiCollector

Key = tuple[int, int]  # a namespace's (st_dev, st_ino)


class MultiWatch:
    def __init__(self, multi: MultiCollector, subscribe: bool = True, states: bool = True) -> None:
        self.multi = multi
        self.subscribe = subscribe
        self.states = states
        self._watches: dict[Key, ChangeWatch] = {}
        self._keys: frozenset[Key] | None = None  # the namespaces at the last sync
        self._unwatched: str | None = None  # a namespace read without a watch: why
        self.reader_cpu = 0.0  # no reader thread (the poller's budget counts this)

    def sync(self) -> None:
        """After a snapshot: a watch for every namespace the collector read, none left
        for those it no longer reads."""
        children = self.multi.children()
        for key in [k for k in self._watches if k not in children]:
            self._watches.pop(key).close()
        self._unwatched = None
        for key, (label, fd) in children.items():
            if key in self._watches:
                continue
            try:
                with netns_mod.entered_fd(fd, label):
                    self._watches[key] = ChangeWatch(subscribe=self.subscribe, reader=False, states=self.states)
            except OSError as exc:
                # Without its counters this namespace could change unseen: dump every tick.
                self._unwatched = f"no change watch in namespace {label} ({exc.strerror or exc}): every tick dumps"
        self._keys = frozenset(children)

    def _namespaces_moved(self) -> bool:
        return self._keys is None or self.multi.discover_keys() != self._keys

    @property
    def subscribed(self) -> bool:
        return bool(self._watches) and all(w.subscribed for w in self._watches.values())

    @property
    def threaded(self) -> bool:
        return False

    @property
    def limitation(self) -> str | None:
        notes = [self._unwatched] if self._unwatched else []
        # The same sentence from every namespace is said once.
        for w in self._watches.values():
            text = w.limitation
            if text and text not in notes:
                notes.append(text)
        return "; ".join(notes) or None

    def drain(self) -> int:
        return sum(w.drain() for w in self._watches.values())

    def changed(self) -> bool:
        if self._unwatched or self._namespaces_moved():
            return True
        moved = False
        for w in self._watches.values():  # every one: each keeps its own state current
            moved = w.changed() or moved
        return moved

    def begin(self) -> dict[Key, tuple[tuple[int, ...], int]]:
        return {key: w.begin() for key, w in self._watches.items()}

    def take(self) -> tuple[list[DestroyEvent], bool]:
        events: list[DestroyEvent] = []
        lost = False
        for w in self._watches.values():
            got, gone = w.take()
            events.extend(got)
            lost = lost or gone
        return events, lost

    def take_state_changes(self) -> StateChanges | None:
        total = 0
        by_state: dict[str, int] = {}
        seen = False
        for w in self._watches.values():
            got = w.take_state_changes()
            if got is None:
                continue
            seen = True
            total += got.total
            for state, n in got.by_state.items():
                by_state[state] = by_state.get(state, 0) + n
        return StateChanges(total, by_state) if seen else None

    def mark_refreshed(self, token: dict[Key, tuple[tuple[int, ...], int]] | None = None, stale: bool = False) -> None:
        """As ChangeWatch.mark_refreshed, for each namespace; one whose watch was made after
        `begin()` (it appeared in this dump) starts clean from now."""
        for key, w in self._watches.items():
            w.mark_refreshed(token.get(key) if token is not None else None, stale=stale)

    def close(self) -> None:
        for w in self._watches.values():
            w.close()
        self._watches.clear()
