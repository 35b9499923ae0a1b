"""The collection loop: runs in one background thread that alone owns the Collector.

Polling is adaptive. A dump of LISTEN and UNCONN sockets is nearly free, but any other
state makes the kernel walk the established hash (≥ 7 ms even when empty, ~0.3 s at
100,000 sockets). So the poller dumps everything at a period of at least `interval`
and at least FULL_FACTOR times the last full dump's duration, and in between dumps only
the listening sockets, merged with the last full dump's other sockets.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from sockscope.model import Snapshot

from .columns import LISTEN_STATES
from .views import Frame

FULL_FACTOR = 5.0  # a full dump at most every FULL_FACTOR × its own duration
MAX_FULL_PERIOD = 60.0


class PollPlan:
    """When to do a full dump. Pure: times are passed in (monotonic seconds)."""

    def __init__(self, interval: float, factor: float = FULL_FACTOR, max_period: float = MAX_FULL_PERIOD) -> None:
        self.interval = interval
        self.factor = factor
        self.max_period = max(max_period, interval)
        self.last_full_at: float | None = None
        self.last_full_seconds = 0.0
        self.last_listen_seconds = 0.0

    @property
    def full_period(self) -> float:
        return min(max(self.interval, self.factor * self.last_full_seconds), self.max_period)

    def want_full(self, now: float) -> bool:
        if self.last_full_at is None:
            return True
        # A little slack so that a tick landing just short of the period still counts.
        return now - self.last_full_at >= self.full_period - min(0.05, self.interval / 4)

    def did_full(self, started: float, seconds: float) -> None:
        if self.last_full_at is None:
            # The first dump is cold (every owner and option read once): plan by the
            # warm dumps that follow, so the second one comes at the next tick.
            seconds = 0.0
        self.last_full_at = started
        self.last_full_seconds = seconds

    def did_listen(self, seconds: float) -> None:
        self.last_listen_seconds = seconds


class Source(Protocol):
    """Where snapshots come from: the Collector, or a fixed snapshot in tests."""

    def snapshot(self, states: frozenset[str] | None) -> Snapshot: ...

    def close(self) -> None: ...


class CollectorSource:
    """The real thing. Made in the collector thread; never used from another."""

    def __init__(self, netns: str | None, method: str, all_netns: bool = False) -> None:
        from sockscope.collectors.multi import MultiCollector
        from sockscope.collectors.snapshotter import Collector

        # Both have the same snapshot()/close(): every namespace, or one.
        self.collector: Collector | MultiCollector = (
            MultiCollector(method=method) if all_netns else Collector(netns=netns, method=method)  # type: ignore[arg-type]
        )

    def snapshot(self, states: frozenset[str] | None) -> Snapshot:
        return self.collector.snapshot(states=states)

    def close(self) -> None:
        self.collector.close()


class StaticSource:
    """A fixed snapshot (tests, screenshots of hand-built data): same records every time."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.data = snapshot

    def snapshot(self, states: frozenset[str] | None) -> Snapshot:
        s = self.data
        socks = s.sockets if states is None else [r for r in s.sockets if r.state in states]
        return Snapshot(sockets=socks, taken_at=s.taken_at, netns=s.netns, facts=s.facts,
                        collector=s.collector, limitation=s.limitation)

    def close(self) -> None:
        pass


class Poller:
    """The loop. `run()` blocks (call it in a thread worker); the other methods are
    safe from any thread."""

    def __init__(
        self,
        make_source: Callable[[], Source],
        interval: float,
        deliver: Callable[[Frame], None],
        on_error: Callable[[str], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.make_source = make_source
        self.plan = PollPlan(interval)
        self.deliver = deliver
        self.on_error = on_error
        self.clock = clock
        self.paused = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._force_full = False
        self._forced = False
        self._lock = threading.Lock()
        self.seq = 0

    def request(self, full: bool = True) -> None:
        """Refresh now (even when paused), ending the current wait."""
        with self._lock:
            self._forced = True
            self._force_full = self._force_full or full
            self._wake.set()

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        try:
            source = self.make_source()
        except Exception as exc:  # noqa: BLE001 - shown to the user, never a traceback
            self.on_error(str(exc) or type(exc).__name__)
            return
        listening: list = []
        others: list = []
        others_gen = 0
        full_taken_at = 0.0
        try:
            while not self._stop.is_set():
                if self.paused and not self._forced:
                    self._wake.wait()
                    self._wake.clear()
                    continue
                with self._lock:
                    self._wake.clear()
                    forced_full = self._force_full
                    self._forced = self._force_full = False
                started = time.monotonic()
                full = forced_full or self.plan.want_full(started)
                try:
                    if full:
                        snap = source.snapshot(None)
                        seconds = time.monotonic() - started
                        self.plan.did_full(started, seconds)
                        listening = [r for r in snap.sockets if r.state in LISTEN_STATES]
                        others = [r for r in snap.sockets if r.state not in LISTEN_STATES]
                        others_gen += 1
                        full_taken_at = snap.taken_at
                    else:
                        snap = source.snapshot(LISTEN_STATES)
                        self.plan.did_listen(time.monotonic() - started)
                        listening = snap.sockets
                except Exception as exc:  # noqa: BLE001 - e.g. the namespace was deleted
                    self.on_error(f"collection failed: {exc}")
                    self._wake.wait(max(self.plan.interval, 2.0))
                    continue
                self.seq += 1
                self.deliver(
                    Frame(
                        seq=self.seq,
                        full=full,
                        listening=listening,
                        others=others,
                        others_gen=others_gen,
                        taken_at=snap.taken_at,
                        full_taken_at=full_taken_at,
                        started=started,
                        facts=snap.facts,
                        netns=snap.netns,
                        collector=snap.collector,
                        limitation=snap.limitation,
                        listen_seconds=self.plan.last_listen_seconds,
                        full_seconds=self.plan.last_full_seconds,
                        full_period=self.plan.full_period,
                        namespaces=snap.namespaces,
                    )
                )
                left = started + self.plan.interval - time.monotonic()
                if left > 0:
                    self._wake.wait(left)
        finally:
            source.close()
