"""Pausing Python's cyclic garbage collector while a refresh allocates.

A refresh at 100,000 sockets creates several hundred thousand objects (records, owners,
decoded tuples). The cyclic collector runs every 700 net allocations and walks the young
objects each time, and now and then every tracked object: measured at 100,050 sockets,
that was about a third of a cold `sockscope list --json` (1.63 s with it, 1.09 s without).
Nothing a refresh builds holds a reference cycle, so reference counting frees all of it
anyway; the pause only skips walks that could find nothing.

The collector is process-wide: a pause from one thread while another allocates delays that
thread's collections too, for the length of one refresh. Pauses may overlap between
threads; the collector comes back when the outermost one ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0  # pauses in progress, in every thread
_was_enabled = False  # the collector's state before the outermost pause


@contextmanager
def gc_paused() -> Iterator[None]:
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()
