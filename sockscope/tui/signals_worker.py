"""The Signals pane's worker: its own thread, fed the frames of full dumps.

For each new full frame it reads what the signals need besides the snapshot (the
namespace's TcpExt counters, the executables of reuseport members: `read_inputs`, None
for hand-built sources, which read nothing) and runs the pure SignalTracker. Only the
latest frame waits: a slow round skips frames instead of queueing them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sockscope.model import Snapshot
from sockscope.signals import Observation, SignalReport, SignalTracker
from sockscope.signals.reuseport import member_pids

from .views import Frame

ReadInputs = Callable[[set[int]], tuple[dict[str, int] | None, dict[int, Any]]]


def collector_inputs(netns: str | None) -> ReadInputs:
    """What a live namespace gives: TcpExt counters and process facts."""
    from sockscope.collectors.signal_inputs import SignalInputReader

    reader = SignalInputReader(netns)

    def read(pids: set[int]) -> tuple[dict[str, int] | None, dict[int, Any]]:
        got = reader.read(pids)
        return got.tcpext, dict(got.procs)

    return read


def host_only(snap: Snapshot) -> Snapshot:
    """With several namespaces (--all-netns), the signals of the host's: flows, ports and
    counters of different namespaces must not be added up (two namespaces' 127.0.0.1 are
    different hosts), and the TcpExt counters read are the host's. The exporter reports
    every namespace under its own label."""
    if not snap.namespaces:
        return snap
    for inode, view in snap.namespaces.items():
        if view.ref.kind == "host":
            return snap.for_netns(inode)
    return snap.for_netns(next(iter(snap.namespaces)))


class SignalsWorker:
    def __init__(self, deliver: Callable[[int, SignalReport | None], None], on_error: Callable[[str], None],
                 read_inputs: ReadInputs | None = None) -> None:
        self.deliver = deliver
        self.on_error = on_error
        self.read_inputs = read_inputs
        self.tracker = SignalTracker()
        self._frame: Frame | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def submit(self, frame: Frame) -> None:
        with self._lock:
            self._frame = frame
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                frame, self._frame = self._frame, None
            if frame is None or self._stop.is_set():
                continue
            try:
                snap = host_only(frame.snapshot())
                tcpext, procs = self.read_inputs(member_pids(snap)) if self.read_inputs else (None, {})
                report = self.tracker.observe(Observation(snap, tcpext, procs))
            except Exception as exc:  # noqa: BLE001 - shown in the pane, never a crash
                self.on_error(f"signals failed: {type(exc).__name__}: {exc}")
                self.deliver(frame.seq, None)  # done with this frame all the same (waiters move on)
                continue
            self.deliver(frame.seq, report)
