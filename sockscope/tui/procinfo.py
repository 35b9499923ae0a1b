"""A socket owner's process in detail, for the details screen, read with psutil.

psutil's job in sockscope: one process at a time, on demand, where its cost (a few hundred
microseconds per process) does not matter. The collectors' owner scan stays hand-written
(/proc/*/fd readlinks and /proc/PID/stat, as `ss -p` does): it touches every descriptor of
every process each refresh, where psutil's per-process objects would cost several times
more (README, design).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

# Imported here, on the UI thread when the details screen's module loads (~20 ms, once),
# not in the worker: an import in a thread holds the import lock while the UI renders.
try:
    import psutil as _psutil
except ImportError:  # the TUI works without it; details then show no process line
    _psutil = None
psutil: Any = _psutil

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ProcessDetails:
    cmdline: list[str] | None
    exe: str | None  # None: unreadable (another user's process without root) or a kernel thread
    started: float | None  # seconds since the epoch
    ppid: int | None
    status: str | None  # psutil's: "running", "sleeping", "zombie"...
    threads: int | None


def read_process(pid: int, comm: str) -> ProcessDetails | None:
    """The process `pid`, if it still runs the program the collector saw (its comm is
    `comm`); None when it is gone, its pid now names another program, or psutil is missing."""
    if psutil is None:
        return None
    try:
        p = psutil.Process(pid)
        with p.oneshot():
            # comm is at most 15 bytes; psutil's name() may complete it from the command line.
            if p.name()[:15] != comm[:15]:
                return None
            return ProcessDetails(
                cmdline=_attempt(p.cmdline) or None,
                exe=_attempt(p.exe) or None,
                started=_attempt(p.create_time),
                ppid=_attempt(p.ppid),
                status=_attempt(p.status),
                threads=_attempt(p.num_threads),
            )
    except psutil.Error:
        return None


def _attempt(read: Callable[[], T]) -> T | None:
    """One attribute; None when the kernel refuses it (AccessDenied) or the process exited."""
    try:
        return read()
    except psutil.Error:
        return None
