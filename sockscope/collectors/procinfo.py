"""Executable path and start time of a few processes (the members of reuseport groups).

Bounded: callers pass the pids they need (a handful per group), and the cache keeps at
most MAX_CACHE entries, keyed by (pid, start ticks) so that a reused pid is re-read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .owners import parse_stat, read_text

MAX_CACHE = 4096


@dataclass(slots=True, frozen=True)
class ProcInfo:
    pid: int
    exe: str | None  # readlink /proc/PID/exe; None when unreadable (no rights, kernel thread, gone)
    started_at: float | None  # wall clock (seconds since the epoch)


def _boot_time() -> float:
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("btime "):
                return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def _start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks since boot), parsed as the owner scan does."""
    text = read_text(f"/proc/{pid}/stat")
    if text is None:
        return None
    try:
        return parse_stat(text)[1]
    except (IndexError, ValueError):
        return None


class ProcInfoReader:
    def __init__(self) -> None:
        self._cache: dict[tuple[int, int], ProcInfo] = {}
        self._hz = os.sysconf("SC_CLK_TCK")
        try:
            self._btime: float | None = _boot_time()
        except OSError:
            self._btime = None

    def read(self, pids: set[int]) -> dict[int, ProcInfo]:
        out: dict[int, ProcInfo] = {}
        for pid in pids:
            ticks = _start_ticks(pid)
            if ticks is None:
                out[pid] = ProcInfo(pid, None, None)
                continue
            info = self._cache.get((pid, ticks))
            if info is None:
                try:
                    exe: str | None = os.readlink(f"/proc/{pid}/exe")
                except OSError:
                    exe = None
                started = self._btime + ticks / self._hz if self._btime is not None else None
                info = ProcInfo(pid, exe, started)
                if len(self._cache) >= MAX_CACHE:
                    self._cache.clear()
                self._cache[(pid, ticks)] = info
            out[pid] = info
        return out
