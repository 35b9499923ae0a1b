"""The collection loop: runs in one background thread that alone owns the Collector.

Change-driven: each tick first asks the source's ChangeWatch (collectors/events.py)
whether anything changed: destroy events from sock_diag's multicast groups, the
namespace's socket counters (one small read) and, where BPF is available, the kernel's
count of TCP state changes (one map read). An unchanged host gets no dump at all, only
a full one every SAFETY_PERIOD seconds for what the watch cannot see (queues, timers,
setsockopt; without BPF also a peer's FIN).

When something changed, polling is adaptive. A dump of LISTEN and UNCONN sockets is
nearly free, but any other state makes the kernel walk the established hash (≥ 7 ms
even when empty, ~0.3 s at 100,000 sockets). So the poller dumps everything at a period
of at least `interval` and at least FULL_FACTOR times the last full dump's duration,
and in between dumps only the listening sockets, merged with the last full dump's
other sockets.

A CPU budget (CpuBudget) caps the collector thread's average CPU time: a collection
starts only when the budget has earned its expected cost, which stretches the
interval on a host too big for it. One thread runs every collection, so never more
than one is in flight.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sockscope.collectors.events import ChangeWatch, Churn, Seen, count_churn, seen_of
from sockscope.collectors.multiwatch import MultiWatch
from sockscope.model import Snapshot

from .columns import LISTEN_STATES
from .views import Frame

FULL_FACTOR = 5.0  # a full dump at most every FULL_FACTOR × its own duration
MAX_FULL_PERIOD = 60.0
SAFETY_PERIOD = 30.0  # a full dump at least this often even when nothing seems to change
DEFAULT_CPU_BUDGET = 0.05  # of one core
DRAIN_SLICE = 0.25  # seconds between two reads of queued destroy events while waiting


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


class CpuBudget:
    """A token bucket of CPU seconds: earns `fraction` seconds per second of wall time, up
    to what the largest collection costs, and pays for what the collector thread spent.
    Pure: times and costs are passed in."""

    def __init__(self, fraction: float) -> None:
        self.fraction = fraction
        self.balance = 0.0
        self.cap = 0.0
        self._at: float | None = None

    def earn(self, now: float) -> None:
        if self._at is not None:
            self.balance = min(self.cap, self.balance + (now - self._at) * self.fraction)
        self._at = now

    def spend(self, cpu_seconds: float, largest: float) -> None:
        # The cap grows with the costliest collection, so that one is always affordable
        # after a long enough wait, and idle time never buys a burst beyond it.
        self.cap = max(self.cap, largest, self.fraction)
        self.balance -= cpu_seconds

    def wait_for(self, cost: float) -> float:
        """Seconds until `cost` is affordable (0: now)."""
        if self.fraction <= 0 or self.balance >= cost:
            return 0.0
        return (cost - self.balance) / self.fraction


@dataclass(slots=True, frozen=True)
class PollStats:
    """What the header shows about the poller's own cost (replaced, never mutated)."""

    cpu_percent: float  # the collector thread's CPU over the last minute, % of one core
    budget_percent: float
    stretched: bool  # the budget delayed a collection beyond its planned time
    full_every: float  # seconds between the last two full dumps
    idle: bool  # the last tick found nothing changed and skipped the dump
    events: bool  # destroy events are received
    # Wall clock of the last tick. On an idle host no frame is delivered for a long time;
    # when `idle` (nothing changed and not held back by the budget) the table is current
    # as of this moment: a staleness marker must look here, not at the last frame's time.
    checked_at: float = 0.0


class Source(Protocol):
    """Where snapshots come from: the Collector, or a fixed snapshot in tests. A source
    may also have `watch() -> ChangeWatch | None` (an object with ChangeWatch's
    changed/begin/take/mark_refreshed/drain, subscribed, threaded and limitation, and
    optionally take_state_changes, e.g. one that combines the watches of several
    namespaces); without one, every tick dumps."""

    def snapshot(self, states: frozenset[str] | None) -> Snapshot: ...

    def close(self) -> None: ...


class CollectorSource:
    """The real thing. Made in the collector thread; never used from another."""

    def __init__(self, netns: str | None, method: str, all_netns: bool = False, events: bool = True,
                 states: bool = True) -> None:
        """`events`: subscribe to destroy events; `states`: count TCP state changes with
        BPF where possible (both fall back with a sentence in the frame's limitation)."""
        from sockscope.collectors import netns as netns_mod
        from sockscope.collectors.multi import MultiCollector
        from sockscope.collectors.snapshotter import Collector

        # Both have the same snapshot()/close(): every namespace, or one.
        self.collector: Collector | MultiCollector = (
            MultiCollector(method=method) if all_netns else Collector(netns=netns, method=method)  # type: ignore[arg-type]
        )
        self._watch: ChangeWatch | MultiWatch | None = None
        if isinstance(self.collector, MultiCollector):
            # A watch per namespace, made as the snapshots find them (multiwatch.py).
            self._watch = MultiWatch(self.collector, subscribe=events, states=states)
            return
        try:
            with netns_mod.entered(netns):  # the watch's sockets and files belong to it
                self._watch = ChangeWatch(subscribe=events, reader=True, states=states)
        except OSError:
            self._watch = None  # no counters to read: dump every tick, as before

    def watch(self) -> ChangeWatch | MultiWatch | None:
        return self._watch

    def snapshot(self, states: frozenset[str] | None) -> Snapshot:
        snap = self.collector.snapshot(states=states)
        if isinstance(self._watch, MultiWatch):
            self._watch.sync()
        return snap

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
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
        cpu_budget: float = DEFAULT_CPU_BUDGET,
        safety_period: float = SAFETY_PERIOD,
        thread_time: Callable[[], float] = time.thread_time,
    ) -> None:
        self.make_source = make_source
        self.plan = PollPlan(interval)
        self.deliver = deliver
        self.on_error = on_error
        self.clock = clock
        self.paused = False
        self.budget = CpuBudget(cpu_budget)
        self.safety_period = max(safety_period, interval)
        self.thread_time = thread_time
        self.stats: PollStats | None = None
        self.collections = 0  # dumps run (full or listening), for tests and benchmarks
        self.skipped = 0  # ticks that found nothing changed
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._force_full = False
        self._forced = False
        self._lock = threading.Lock()
        self.seq = 0
        self._cpu_window: deque[tuple[float, float]] = deque()  # (monotonic, thread cpu)

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

    def _cpu_percent(self, now: float, cpu: float) -> float:
        w = self._cpu_window
        w.append((now, cpu))
        while len(w) > 2 and w[1][0] < now - 60.0:
            w.popleft()
        span = now - w[0][0]
        return 100.0 * (cpu - w[0][1]) / span if span > 0 else 0.0

    def _wait(self, seconds: float, watch: ChangeWatch | MultiWatch | None) -> None:
        """Sleep until woken or `seconds` passed, reading queued destroy events meanwhile
        so the kernel's buffer never fills under churn."""
        end = time.monotonic() + seconds
        while not self._stop.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return
            slice_ = min(left, DRAIN_SLICE) if watch is not None and watch.subscribed and not watch.threaded else left
            if self._wake.wait(slice_):
                return
            if watch is not None:
                watch.drain()

    def run(self) -> None:
        try:
            source = self.make_source()
        except Exception as exc:  # noqa: BLE001 - shown to the user, never a traceback
            self.on_error(str(exc) or type(exc).__name__)
            return
        watch_of: Any = getattr(source, "watch", None)
        watch: ChangeWatch | MultiWatch | None = watch_of() if callable(watch_of) else None
        listening: list = []
        others: list = []
        others_gen = 0
        full_taken_at = 0.0
        seen: Seen | None = None
        churn: Churn | None = None
        last_full_start: float | None = None
        full_every = 0.0
        largest = 0.0  # CPU seconds of the costliest collection so far (warm ones)
        full_cost = listen_cost = 0.0  # CPU seconds of the last warm full / listening dump
        cpu_mark = self.thread_time()
        reader_mark = 0.0  # the event reader thread's CPU, charged to the budget too
        try:
            while not self._stop.is_set():
                if self.paused and not self._forced:
                    self._wake.wait()
                    self._wake.clear()
                    continue
                with self._lock:
                    self._wake.clear()
                    forced = self._forced
                    forced_full = self._force_full
                    self._forced = self._force_full = False
                started = time.monotonic()
                self.budget.earn(started)
                try:
                    changed = watch.changed() if watch is not None else True
                except OSError:
                    changed = True  # cannot tell: dump, as without a watch
                first = self.plan.last_full_at is None
                safety_due = not first and started - self.plan.last_full_at >= self.safety_period  # type: ignore[operator]
                full = first or forced_full or safety_due or (changed and self.plan.want_full(started))
                stretched = False
                run = forced or full or changed
                if run and not forced:
                    # The budget decides whether this tick may collect; a full dump that
                    # is due but unaffordable also holds back listening dumps, or they
                    # would starve it.
                    wait = self.budget.wait_for(full_cost if full else listen_cost)
                    if wait > 0:
                        run = False
                        stretched = True
                if run:
                    try:
                        if full:
                            token: Any = watch.begin() if watch is not None else None  # opaque: the watch's own
                            snap = source.snapshot(None)
                            seconds = time.monotonic() - started
                            self.plan.did_full(started, seconds)
                            listening = [r for r in snap.sockets if r.state in LISTEN_STATES]
                            others = [r for r in snap.sockets if r.state not in LISTEN_STATES]
                            others_gen += 1
                            full_taken_at = snap.taken_at
                            if last_full_start is not None:
                                full_every = started - last_full_start
                            last_full_start = started
                            new_seen = seen_of(snap.sockets)
                            states = None
                            if watch is not None:
                                events, lost = watch.take()
                                take_states = getattr(watch, "take_state_changes", None)
                                states = take_states() if callable(take_states) else None
                                stale = any((e.proto, e.cookie) in new_seen for e in events)
                                watch.mark_refreshed(token, stale=stale)
                                exact = watch.subscribed and not lost
                            else:
                                events, exact = [], False
                            if seen is not None:
                                churn = count_churn(seen, new_seen, events, snap.facts.ip_local_port_range, exact)
                                churn.seconds = full_every
                                churn.states = states
                            seen = new_seen
                        else:
                            snap = source.snapshot(LISTEN_STATES)
                            self.plan.did_listen(time.monotonic() - started)
                            listening = snap.sockets
                    except Exception as exc:  # noqa: BLE001 - e.g. the namespace was deleted
                        self.on_error(f"collection failed: {exc}")
                        self._wait(max(self.plan.interval, 2.0), watch)
                        continue
                    self.collections += 1
                else:
                    self.skipped += 1
                cpu_now = self.thread_time()
                spent = cpu_now - cpu_mark
                cpu_mark = cpu_now
                if watch is not None:
                    reader_now = watch.reader_cpu
                    spent += reader_now - reader_mark
                    cpu_now += reader_now  # the header's figure covers both threads
                    reader_mark = reader_now
                if run:
                    if full and first:
                        spent = 0.0  # the cold first dump is the user's request, not a refresh
                    elif full:
                        full_cost = spent
                    else:
                        listen_cost = spent
                    largest = max(largest, spent)
                self.budget.spend(spent, largest)
                self.stats = PollStats(
                    cpu_percent=self._cpu_percent(time.monotonic(), cpu_now),
                    budget_percent=100.0 * self.budget.fraction,
                    stretched=stretched,
                    full_every=full_every,
                    idle=not run and not stretched,
                    events=watch is not None and watch.subscribed,
                    checked_at=self.clock(),
                )
                if run:
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
                            limitation=_join(snap.limitation, watch.limitation if watch is not None else None),
                            listen_seconds=self.plan.last_listen_seconds,
                            full_seconds=self.plan.last_full_seconds,
                            full_period=self.plan.full_period,
                            churn=churn,
                            namespaces=snap.namespaces,
                        )
                    )
                left = started + self.plan.interval - time.monotonic()
                if left > 0:
                    self._wait(left, watch)
        finally:
            source.close()


def _join(a: str | None, b: str | None) -> str | None:
    if a and b:
        return f"{a}; {b}"
    return a or b


def churn_text(c: Churn) -> str:
    """The header's account of what happened between two full dumps."""
    text = f"+{c.created:,} / -{c.destroyed:,} since last refresh"
    extra = []
    if c.by_port and c.created + c.destroyed:
        (proto, port), (born, gone) = max(c.by_port.items(), key=lambda kv: (kv[1][0] + kv[1][1], -kv[0][1]))
        if born + gone > 1:
            extra.append(f"{proto} :{port} +{born:,}/-{gone:,}")
    if c.timewait_created:
        extra.append(f"TIME-WAIT +{c.timewait_created:,}")
    if c.ephemeral_created:
        extra.append(f"ephemeral +{c.ephemeral_created:,}")
    if extra:
        text += " (" + ", ".join(extra) + ")"
    if not c.exact:
        # Without destroy events (or after the kernel dropped some), sockets born and gone
        # between the two dumps are missed: the figures are lower bounds.
        text = "at least " + text
    if c.states is not None and c.states.total:
        # The kernel's count of TCP state changes (BPF, exact): the two commonest new states.
        top = sorted(c.states.by_state.items(), key=lambda kv: (-kv[1], kv[0]))[:2]
        n = c.states.total
        text += f", {n:,} state change{'s' if n != 1 else ''} (to " + ", ".join(f"{k} {v:,}" for k, v in top) + ")"
    return text
