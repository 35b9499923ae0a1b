"""Pausing Python's cyclic garbage collector while a refresh allocates, and keeping what a
long-running process holds out of its walks.

A refresh at 100,000 sockets creates several hundred thousand objects (records, owners,
decoded tuples). The cyclic collector runs every 700 net allocations and walks the young
objects each time, and now and then every tracked object: measured at 100,050 sockets,
that was about a third of a cold `sockscope list --json` (1.63 s with it, 1.09 s without).
Nothing a refresh builds holds a reference cycle, so reference counting frees all of it
anyway; the pause only skips walks that could find nothing.

The collector is process-wide: a pause from one thread while another allocates delays that
thread's collections too, for the length of one refresh. Pauses may overlap between
threads; the collector comes back when the outermost one ends.

Long-running processes (the TUI, the exporter) also call freeze_between_refreshes(). A
walk of every tracked object holds the GIL for its whole length: at 100,000 sockets the
TUI tracks about 600,000 objects, and such a walk stopped every thread, the UI's
included, for 0.13-0.18 s every half minute or so (and the 100,000 objects a refresh left
in the youngest generation cost two walks of ~90 ms right after it). So when the
outermost pause ends, every object alive is moved to the permanent generation
(gc.freeze()), which the collector does not walk: later walks see only what was made
since. Reference counting still frees those objects the moment they are dropped, so
records replaced by a refresh go as before. What the permanent generation keeps from the
collector is only reference cycles that become garbage after being frozen (the UI's
widgets form some; the young generations are collected when a pause begins, so cycles
already dead then are not frozen); every THAW_EVERY seconds one full collection runs over everything
(gc.unfreeze(), gc.collect(), at the end of a refresh, in the collector's thread), which
bounds what such cycles can hold to what the process makes in that time.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

THAW_EVERY = 300.0  # seconds between full collections when freezing (see the docstring)

_lock = threading.Lock()
_depth = 0  # pauses in progress, in every thread
_was_enabled = False  # the collector's state before the outermost pause
_freeze = False  # freeze_between_refreshes() was called
_thawed_at = 0.0
full_collections = 0  # thaws done (tests and benchmarks read it)


def freeze_between_refreshes(now: float | None = None) -> None:
    """For processes that refresh for hours: see the module docstring. Idempotent."""
    global _freeze, _thawed_at
    with _lock:
        if not _freeze:
            _freeze = True
            _thawed_at = time.monotonic() if now is None else now


def stop_freezing() -> None:
    """Back to the collector's own schedule, nothing frozen (tests; an app that exits)."""
    global _freeze
    with _lock:
        _freeze = False
        gc.unfreeze()


def _settle() -> None:
    """At the end of the outermost pause, with the lock held."""
    global _thawed_at, full_collections
    now = time.monotonic()
    if now - _thawed_at >= THAW_EVERY:
        gc.unfreeze()
        gc.collect()
        full_collections += 1
        _thawed_at = now
    gc.freeze()


@contextmanager
def gc_paused() -> Iterator[None]:
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            if _freeze:
                # The young generations hold what was made since the last freeze: collect
                # their garbage now (a few thousand objects), or the freeze at the end
                # would keep its cycles until the next thaw.
                gc.collect(1)
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                if _freeze:
                    _settle()
                if _was_enabled:
                    gc.enable()
