"""What the signals need besides a snapshot: the namespace's TcpExt counters and the
executables and start times of a few processes. Each part reports its own success and
duration (the exporter publishes them)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from . import netns as netns_mod
from .netstat import NetstatError, read_tcpext
from .procinfo import ProcInfo, ProcInfoReader


@dataclass(slots=True)
class SignalInputs:
    tcpext: dict[str, int] | None
    procs: dict[int, ProcInfo]
    errors: dict[str, str] = field(default_factory=dict)  # part -> one sentence
    seconds: dict[str, float] = field(default_factory=dict)  # part -> duration


class SignalInputReader:
    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self.procinfo = ProcInfoReader()

    def read(self, pids: set[int]) -> SignalInputs:
        out = SignalInputs(None, {})
        start = time.perf_counter()
        try:
            with netns_mod.entered(self.netns):
                out.tcpext = read_tcpext()
        except (NetstatError, OSError) as exc:
            out.errors["netstat"] = str(exc)
        out.seconds["netstat"] = time.perf_counter() - start
        start = time.perf_counter()
        out.procs = self.procinfo.read(pids)
        out.seconds["procinfo"] = time.perf_counter() - start
        return out
