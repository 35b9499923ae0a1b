"""The exporter's collection loop: its own schedule in one background thread, never once
per scrape. Each cycle reads every target namespace (one Collector each, kept warm),
computes signals and bind verdicts, builds the families within the series budget and
swaps them in; scrapes and the textfile only read the last finished set.

Targets are a callable returning (what the Collector opens, the `netns` label) pairs: None
is the exporter's own namespace; a name under /run/netns or a path such as
/proc/PID/ns/net opens another. `--netns NAME` gives a fixed list; `--all-netns` (the netns
work's discovery) plugs in a callable that lists every namespace each cycle: new ones get
their Collector, tracker and input reader on first sight, vanished ones are closed.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import CollectorRegistry

from sockscope.collectors.signal_inputs import SignalInputReader
from sockscope.collectors.bpf.kernel_options import IteratorLoader
from sockscope.collectors.bpf.task_files import TaskFileOwners
from sockscope.collectors.snapshotter import Collector
from sockscope.signals import Observation, SignalTracker
from sockscope.signals.reuseport import member_pids

from .metrics import (DEFAULT_MAX_SERIES, DEFAULT_TOP_DESTINATIONS, BindWatch, CollectorStatus, Family,
                      apply_budget, budget_families, build_families)

CLOSE_WAIT_S = 10.0  # close() waits this long for a collection under way
MAX_TARGETS = 256  # namespaces read per cycle (each keeps a Collector: bounded)


TargetSpec = tuple[str | None, str]  # (what Collector opens, the netns label)


@dataclass(slots=True)
class Target:
    name: str | None
    label: str
    collector: Any  # a Collector, or None until made (and after a failure)
    tracker: SignalTracker
    inputs: SignalInputReader


def watch_verdicts(snapshot, watch: list[tuple[str, int]]) -> list[BindWatch]:
    """A new server's bind()+listen() on 0.0.0.0:PORT (UDP: bind) with SO_REUSEADDR, as this uid."""
    from sockscope.predict import Candidate, check

    out = []
    for proto, port in watch:
        cand = Candidate(proto=proto, family=4, addr="0.0.0.0", port=port, reuseaddr=True,  # type: ignore[arg-type]
                         uid=os.getuid(), listen=proto == "tcp")
        try:
            out.append(BindWatch(proto, port, check(snapshot, cand).verdict))
        except Exception:  # noqa: BLE001 - a predictor failure is an unknown verdict, not a dead exporter
            out.append(BindWatch(proto, port, "unknown"))
    return out


class ExporterRunner:
    def __init__(
        self,
        targets: Callable[[], list[TargetSpec]],
        *,
        interval: float = 15.0,
        max_series: int = DEFAULT_MAX_SERIES,
        top_destinations: int = DEFAULT_TOP_DESTINATIONS,
        watch: list[tuple[str, int]] | None = None,
        method: str = "auto",
        textfile: str | None = None,
        on_cycle: Callable[[list[Family]], None] | None = None,
        make_collector: Callable[[str | None], Any] | None = None,
    ) -> None:
        self.targets = targets
        self.interval = interval
        self.max_series = max_series
        self.top = top_destinations
        self.watch = watch or []
        self.method = method
        self.textfile = textfile
        self.on_cycle = on_cycle
        # What reads a namespace: a Collector (tests pass one that returns a fixed snapshot).
        # Every namespace's Collector shares one set of BPF programs: the socket iterators
        # (each read walks the namespace it is made in) and the task-file iterator; with
        # `--all-netns` on a container host that is 3 programs, not 3 per namespace.
        self._iterators = IteratorLoader()
        self._task_files = TaskFileOwners()
        self.make_collector = make_collector or (
            lambda name: Collector(netns=name, method=method, iterators=self._iterators,  # type: ignore[arg-type]
                                   task_files=self._task_files))
        self._targets: dict[TargetSpec, Target] = {}
        self._thread: threading.Thread | None = None
        self._families: list[Family] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.cycles = 0
        self.last_error: str | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(PromCollector(self))

    # ---------------------------------------------------------------- collection

    def _target(self, spec: TargetSpec) -> Target:
        t = self._targets.get(spec)
        if t is None:
            t = Target(spec[0], spec[1], None, SignalTracker(), SignalInputReader(spec[0]))
            self._targets[spec] = t
        return t

    def collect_once(self) -> list[Family]:
        cycle_start = time.perf_counter()
        families: list[Family] = []
        specs = list(dict.fromkeys(self.targets()))[:MAX_TARGETS]
        for gone in set(self._targets) - set(specs):
            t = self._targets.pop(gone)
            if t.collector is not None:
                t.collector.close()
        for spec in specs:
            families += self._collect_target(self._target(spec))
        merged = merge(families)
        kept, dropped = apply_budget(merged, self.max_series)
        used = sum(len(f.samples) for f in kept if not f.meta)
        cycle = Family("sockscope_cycle_duration_seconds", "gauge",
                       "How long the last collection cycle over every namespace took", ())
        cycle.add((), time.perf_counter() - cycle_start)
        cycle.meta = True
        kept += budget_families(self.max_series, dropped, used) + [cycle]
        with self._lock:
            self._families = kept
        self.cycles += 1
        if self.textfile:
            self.write_textfile(self.textfile)
        if self.on_cycle:
            self.on_cycle(kept)
        return kept

    def _collect_target(self, t: Target) -> list[Family]:
        ns = t.label
        statuses: list[CollectorStatus] = []
        snapshot = report = None
        start = time.perf_counter()
        try:
            if t.collector is None:
                t.collector = self.make_collector(t.name)
            snapshot = t.collector.snapshot()
            statuses.append(CollectorStatus("sockets", True, time.perf_counter() - start))
        except Exception as exc:  # noqa: BLE001 - one namespace failing must not stop the others
            self.last_error = f"{ns or 'own namespace'}: {exc}"
            statuses.append(CollectorStatus("sockets", False, time.perf_counter() - start))
            if t.collector is not None:
                t.collector.close()
                t.collector = None
        watches: list[BindWatch] = []
        if snapshot is not None:
            got = t.inputs.read(member_pids(snapshot))
            for part in ("netstat", "procinfo"):
                statuses.append(CollectorStatus(part, part not in got.errors, got.seconds.get(part, 0.0)))
            start = time.perf_counter()
            report = t.tracker.observe(Observation(snapshot, got.tcpext, got.procs))
            watches = watch_verdicts(snapshot, self.watch)
            statuses.append(CollectorStatus("signals", True, time.perf_counter() - start))
        return build_families(ns, snapshot, report, watches, statuses, self.top)

    def run(self) -> None:
        """The loop (in its own thread): collect, then sleep until the next period."""
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.collect_once()
            except Exception as exc:  # noqa: BLE001 - keep serving the last good set
                self.last_error = str(exc)
            self._stop.wait(max(self.interval - (time.monotonic() - started), 0.0))

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="sockscope-exporter", daemon=True)
        thread.start()
        self._thread = thread
        return thread

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.stop()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            # A collection under way finishes before its collectors and the shared BPF
            # links are closed (a cycle at 100,000 sockets takes ~0.5 s).
            thread.join(CLOSE_WAIT_S)
        for t in self._targets.values():
            if t.collector is not None:
                t.collector.close()
        self._targets.clear()
        self._iterators.close()
        self._task_files.close()

    # ---------------------------------------------------------------- output

    def families(self) -> list[Family]:
        with self._lock:
            return self._families

    def write_textfile(self, path: str) -> None:
        """For node_exporter's textfile collector: written whole, then renamed into place."""
        from prometheus_client import write_to_textfile

        write_to_textfile(path, self.registry)


def merge(families: list[Family]) -> list[Family]:
    """One family per name (the same name from several namespaces), first occurrence's place."""
    out: dict[str, Family] = {}
    for f in families:
        have = out.get(f.name)
        if have is None:
            out[f.name] = Family(f.name, f.kind, f.help, f.labels, list(f.samples), f.meta)
        else:
            have.samples += f.samples
    return list(out.values())


class PromCollector:
    """A prometheus_client custom collector: yields the last finished set, does no work."""

    def __init__(self, runner: ExporterRunner) -> None:
        self.runner = runner

    def collect(self) -> Iterator[Any]:
        for f in self.runner.families():
            cls = CounterMetricFamily if f.kind == "counter" else GaugeMetricFamily
            fam = cls(f.name, f.help, labels=list(f.labels))
            for values, value in f.samples:
                fam.add_metric(list(values), value)
            yield fam
