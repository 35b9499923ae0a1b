"""From snapshots to what the panes show, off the UI thread.

The collector thread hands over `Frame`s; the view builder (its own thread) turns the
latest frame and the latest `Settings` (filter, sort per pane, grouping) into ready
`PaneView`s: filtered and sorted lists of the records themselves (no renderables),
with the identities of rows that just appeared or vanished. The UI thread only swaps
a finished view in; the table renders the few visible rows lazily.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from sockscope.collectors.events import Churn
from sockscope.collectors.gcpause import gc_paused
from sockscope.model import HostFacts, NetnsView, Snapshot, SocketRecord

from .columns import (
    DEFAULT_SORT,
    LISTEN_STATES,
    PANE_COLUMNS,
    PANES,
    GroupKey,
    GroupRow,
    Ident,
    addr_key,
    column,
    group_key,
    ident,
)

MARK_SECONDS = 2.0  # how long new rows stay green and vanished rows stay dimmed
HISTORY_SECONDS = 600.0  # the sparkline's span
# Bounds of the builder's own memory, whatever the host does. A refresh in which more
# sockets appear or vanish than MAX_MARKS marks none of them one by one (a mass change is
# news as a count, not as 100,000 green rows) and keeps no ghost records alive.
MAX_MARKS = 5_000  # per pane: new-row marks, and vanished rows kept as ghosts
MAX_HISTORY = 4_096  # sparkline points (600 s at the fastest interval, 0.1 s, would be 6,000)


@dataclass(slots=True, eq=False)
class Frame:
    """One refresh from the collector thread: the listening sockets just read, and the
    other sockets of the last full dump (the same list object until the next full dump)."""

    seq: int
    full: bool
    listening: list[SocketRecord]
    others: list[SocketRecord]
    others_gen: int
    taken_at: float  # wall clock of this dump
    full_taken_at: float  # wall clock of the last full dump (the timers of `others`)
    started: float  # monotonic time the dump began (for "refresh now" waiters)
    facts: HostFacts = field(default_factory=HostFacts)
    netns: str | None = None
    collector: str = "sockdiag"
    limitation: str | None = None
    listen_seconds: float = 0.0  # duration of the last listening-only dump
    full_seconds: float = 0.0  # duration of the last full dump
    full_period: float = 0.0  # seconds between full dumps, as the poller plans it now
    namespaces: dict[int, NetnsView] | None = None  # several namespaces watched (--all-netns)
    # sockets created and destroyed between the last two full dumps (None: first dump)
    churn: Churn | None = None
    _snapshot: Snapshot | None = None

    @property
    def total(self) -> int:
        return len(self.listening) + len(self.others)

    def snapshot(self) -> Snapshot:
        """The merged snapshot, for the predictor and the details screen (built once)."""
        if self._snapshot is None:
            self._snapshot = Snapshot(
                sockets=self.listening + self.others,
                taken_at=self.taken_at,
                netns=self.netns,
                facts=self.facts,
                collector=self.collector,
                limitation=self.limitation,
                namespaces=self.namespaces,
            )
        return self._snapshot


@dataclass(slots=True, frozen=True)
class Settings:
    """What the user chose; immutable, replaced on every change (so threads can share it)."""

    version: int = 0
    filter_text: str = ""
    predicate: Callable[[SocketRecord], bool] | None = None
    sort: tuple[tuple[str, str, bool], ...] = tuple((k, c, r) for k, (c, r) in DEFAULT_SORT.items())
    tw_grouped: bool = True

    def sort_of(self, mode: str) -> tuple[str, bool]:
        for m, col, rev in self.sort:
            if m == mode:
                return col, rev
        return DEFAULT_SORT[mode]

    def with_sort(self, mode: str, col: str, reverse: bool) -> tuple[tuple[str, str, bool], ...]:
        return tuple((m, col, reverse) if m == mode else (m, c, r) for m, c, r in self.sort)


@dataclass(slots=True, eq=False)
class PaneView:
    pane: str
    mode: str  # a key of PANE_COLUMNS: the pane, or "timewait-groups"
    rows: list[Any]
    by_ident: dict[Ident, Any]  # every live record of the pane (and ghosts), filtered or not
    total: int  # live records in the pane before filtering
    shown: int  # live records that pass the filter (ghosts not counted): never > total, never < 0
    new: dict[Ident, float]  # ident -> until (clock)
    gone: dict[Ident, float]
    groups: dict[GroupKey, int]
    sort: tuple[str, bool]
    settings_version: int
    full_taken_at: float

    def position(self, key: Ident) -> int | None:
        """Where the row with identity `key` is now (C-speed scan by object identity)."""
        rec = self.by_ident.get(key)
        if rec is None:
            return None
        try:
            return self.rows.index(rec)
        except ValueError:
            return None


@dataclass(slots=True, eq=False)
class Views:
    frame: Frame
    settings: Settings
    panes: dict[str, PaneView]
    rebuilt: frozenset[str]
    counts: dict[str, int]  # state -> sockets (UDP connected counted as "UDP-CONN")
    history: list[float]
    build_seconds: float
    filter_error: str | None = None


def _group_rows(rows: list[SocketRecord]) -> list[GroupRow]:
    """TIME_WAITs summarised by local port and by peer address."""
    by_port: dict[int, list] = {}
    by_peer: dict[str, list] = {}
    for r in rows:
        exp = r.timer.expires_ms if r.timer is not None else 0
        g = by_port.get(r.local_port)
        if g is None:
            by_port[r.local_port] = [1, {r.peer_addr}, exp, exp]
        else:
            g[0] += 1
            g[1].add(r.peer_addr)
            if exp < g[2]:
                g[2] = exp
            elif exp > g[3]:
                g[3] = exp
        g = by_peer.get(r.peer_addr)
        if g is None:
            by_peer[r.peer_addr] = [1, {r.local_port}, exp, exp, r.family]
        else:
            g[0] += 1
            g[1].add(r.local_port)
            if exp < g[2]:
                g[2] = exp
            elif exp > g[3]:
                g[3] = exp
    out: list[GroupRow] = []
    for port, (n, peers, lo, hi) in by_port.items():
        out.append(GroupRow("port", f":{port}", n, len(peers), lo / 1000, hi / 1000, f"sport = :{port}", (0, port)))
    for addr, (n, ports, lo, hi, fam) in by_peer.items():
        out.append(GroupRow("peer", addr, n, len(ports), lo / 1000, hi / 1000, f"dst {addr}", (1, addr_key(addr))))
    return out


class ViewBuilder:
    """Turns frames and settings into PaneViews. Used by one thread at a time."""

    def __init__(self, clock: Callable[[], float] = time.time, mark_seconds: float = MARK_SECONDS) -> None:
        self.clock = clock
        self.mark_seconds = mark_seconds
        self.frame: Frame | None = None
        self.base: dict[str, list[SocketRecord]] = {p: [] for p in PANES}
        self.index: dict[str, dict[Ident, SocketRecord] | None] = {p: None for p in PANES}
        self.ghosts: dict[str, dict[Ident, tuple[SocketRecord, float]]] = {p: {} for p in PANES}
        self.new: dict[str, dict[Ident, float]] = {p: {} for p in PANES}
        self.groups: dict[GroupKey, int] = {}
        self.others_gen = -1
        self.other_counts: Counter[str] = Counter()
        self.listen_counts: Counter[str] = Counter()
        self.history: deque[tuple[float, int]] = deque(maxlen=MAX_HISTORY)
        self.views: dict[str, PaneView] = {}
        self.settings: Settings | None = None

    # ------------------------------------------------------------ data

    def _diff(self, pane: str, records: list[SocketRecord], now: float) -> None:
        index = {ident(r): r for r in records}
        prev = self.index[pane]
        ghosts = self.ghosts[pane]
        new = self.new[pane]
        if prev is not None:
            until = now + self.mark_seconds
            appeared = index.keys() - prev.keys()
            for k in appeared:
                ghosts.pop(k, None)
            if len(appeared) + len(new) <= MAX_MARKS:
                for k in appeared:
                    new[k] = until
            vanished = prev.keys() - index.keys()
            if len(vanished) + len(ghosts) <= MAX_MARKS:
                for k in vanished:
                    ghosts[k] = (prev[k], until)
        self.index[pane] = index
        self.base[pane] = records

    def _take(self, frame: Frame, now: float) -> set[str]:
        changed = {"listening"}
        self._diff("listening", frame.listening, now)
        self.listen_counts = Counter(map(attrgetter("state"), frame.listening))
        groups: Counter[GroupKey] = Counter(map(group_key, frame.listening))
        self.groups = {k: n for k, n in groups.items() if n > 1}
        if frame.others_gen != self.others_gen:
            self.others_gen = frame.others_gen
            est: list[SocketRecord] = []
            tw: list[SocketRecord] = []
            other: list[SocketRecord] = []
            for r in frame.others:
                s = r.state
                if s == "ESTAB" and r.proto == "tcp":
                    est.append(r)
                elif s == "TIME-WAIT":
                    tw.append(r)
                elif s not in LISTEN_STATES:
                    other.append(r)
            self.other_counts = Counter(
                "UDP-CONN" if (r.proto == "udp" and r.state == "ESTAB") else r.state for r in other
            )
            self.other_counts["ESTAB"] += len(est)
            self.other_counts["TIME-WAIT"] += len(tw)
            self._diff("established", est, now)
            self._diff("timewait", tw, now)
            self._diff("other", other, now)
            changed |= {"established", "timewait", "other"}
        self.history.append((frame.taken_at, frame.total))
        while self.history and self.history[0][0] < frame.taken_at - HISTORY_SECONDS:
            self.history.popleft()
        self.frame = frame
        return changed

    def _expire(self, now: float) -> set[str]:
        """Drop ghosts and new-marks whose time is up; panes that lost ghosts need rebuilding."""
        changed: set[str] = set()
        for pane in PANES:
            ghosts = self.ghosts[pane]
            if ghosts:
                dead = [k for k, (_r, until) in ghosts.items() if until <= now]
                if dead:
                    for k in dead:
                        del ghosts[k]
                    changed.add(pane)
            new = self.new[pane]
            if new:
                dead = [k for k, until in new.items() if until <= now]
                for k in dead:
                    del new[k]
        return changed

    def next_expiry(self) -> float | None:
        times = [until for p in PANES for (_r, until) in self.ghosts[p].values()]
        return min(times) if times else None

    # ------------------------------------------------------------ views

    def _build_pane(self, pane: str, settings: Settings, now: float) -> PaneView:
        base = self.base[pane]
        ghosts = self.ghosts[pane]
        pred = settings.predicate
        live = base if pred is None else [r for r in base if pred(r)]
        ghost_rows = [g[0] for g in ghosts.values()] if ghosts else []
        if pred is not None and ghost_rows:
            ghost_rows = [r for r in ghost_rows if pred(r)]
        rows: list[Any] = live + ghost_rows if ghost_rows else live
        mode = pane
        by_ident: dict[Any, Any]
        if pane == "timewait" and settings.tw_grouped:
            mode = "timewait-groups"
            rows = _group_rows(live)
            by_ident = {g.identity: g for g in rows}
        else:
            # The index itself when there are no ghosts: it is replaced, never changed, at
            # each refresh, and views only read it (a copy of 97,000 entries was one C call
            # holding the GIL, and 5 MB, at every sort or filter change).
            by_ident = self.index[pane] or {}
            if ghosts:
                by_ident = {**by_ident, **{k: g[0] for k, g in ghosts.items()}}
        col_key, reverse = settings.sort_of(mode)
        col = column(PANE_COLUMNS[mode], col_key)
        if col.sort is not None:
            rows = sorted(rows, key=col.sort, reverse=reverse)
        elif rows is base:
            rows = list(rows)
        return PaneView(
            pane=pane,
            mode=mode,
            rows=rows,
            by_ident=by_ident,
            total=len(base),
            shown=len(live),
            new=dict(self.new[pane]),
            gone={k: until for k, (_r, until) in ghosts.items()},
            groups=self.groups if pane == "listening" else {},
            sort=(col.key, reverse),
            settings_version=settings.version,
            full_taken_at=self.frame.full_taken_at if self.frame else now,
        )

    def build(self, frame: Frame | None, settings: Settings, dirty: set[str] | None = None) -> Views | None:
        """Views for `frame` (None: the last one) under `settings`; `dirty` panes are
        rebuilt even if their data did not change (a sort or grouping change)."""
        start = time.perf_counter()
        now = self.clock()
        rebuild: set[str] = set(dirty or ())
        if frame is not None and frame is not self.frame:
            rebuild |= self._take(frame, now)
        if self.frame is None:
            return None
        rebuild |= self._expire(now)
        if self.settings is None or settings.version != self.settings.version:
            if self.settings is None or settings.predicate is not self.settings.predicate:
                rebuild |= set(PANES)
        self.settings = settings
        for pane in PANES:
            if pane in rebuild or pane not in self.views:
                self.views[pane] = self._build_pane(pane, settings, now)
        counts = dict(self.listen_counts)
        for k, v in self.other_counts.items():
            counts[k] = counts.get(k, 0) + v
        return Views(
            frame=self.frame,
            settings=settings,
            panes=dict(self.views),
            rebuilt=frozenset(rebuild),
            counts=counts,
            history=[float(n) for _t, n in self.history],
            build_seconds=time.perf_counter() - start,
        )


class BuildQueue:
    """The view builder's thread loop: coalesces frames and settings changes (latest
    wins) and delivers Views. `run()` blocks; the submit methods are thread-safe."""

    def __init__(self, builder: ViewBuilder, settings: Settings, deliver: Callable[[Views], None],
                 on_error: Callable[[str], None] | None = None) -> None:
        import threading

        self.builder = builder
        self.deliver = deliver
        self.on_error = on_error
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._settings = settings
        self._dirty: set[str] = set()
        self._pending = False
        self._stop = False

    def submit_frame(self, frame: Frame) -> None:
        with self._cond:
            self._frame = frame
            self._pending = True
            self._cond.notify()

    def submit_settings(self, settings: Settings, dirty: set[str] | frozenset[str] = frozenset()) -> None:
        with self._cond:
            self._settings = settings
            self._dirty |= set(dirty)
            self._pending = True
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()

    def run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stop:
                    expiry = self.builder.next_expiry()
                    timeout = None if expiry is None else max(0.05, expiry - self.builder.clock() + 0.05)
                    if not self._cond.wait(timeout) and expiry is not None:
                        break  # ghosts to drop
                if self._stop:
                    return
                frame, settings, dirty = self._frame, self._settings, self._dirty
                self._frame, self._dirty, self._pending = None, set(), False
            try:
                # 100,000 rows of acyclic tuples: no collector walks while they are made,
                # and they are frozen with the rest when done (collectors/gcpause.py).
                with gc_paused():
                    views = self.builder.build(frame, settings, dirty)
            except Exception as exc:  # noqa: BLE001 - a bug here must not kill the UI silently
                if self.on_error is not None:
                    self.on_error(f"view builder: {type(exc).__name__}: {exc}")
                continue
            if views is not None:
                self.deliver(views)
