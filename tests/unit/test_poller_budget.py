"""The CPU budget (root-free): a collector that costs more than the budget gets its
refreshes spaced out; one that costs little is not held back. CPU time is simulated."""

from __future__ import annotations

import threading
import time

from sockscope.model import Snapshot
from sockscope.tui.poller import CpuBudget, Poller


class SlowSource:
    """Every snapshot 'costs' `cost` seconds of the collector thread's CPU."""

    def __init__(self, cpu: list[float], cost: float) -> None:
        self.cpu = cpu
        self.cost = cost
        self.in_flight = 0
        self.max_in_flight = 0

    def snapshot(self, states: frozenset[str] | None) -> Snapshot:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.cpu[0] += self.cost
        self.in_flight -= 1
        return Snapshot(sockets=[])

    def close(self) -> None:
        pass


def run_for(seconds: float, cost: float, budget: float, interval: float = 0.02) -> tuple[Poller, SlowSource]:
    cpu = [0.0]
    source = SlowSource(cpu, cost)
    poller = Poller(lambda: source, interval, lambda f: None, lambda e: None,
                    cpu_budget=budget, thread_time=lambda: cpu[0])
    t = threading.Thread(target=poller.run, daemon=True)
    t.start()
    time.sleep(seconds)
    poller.stop()
    t.join(5)
    assert not t.is_alive()
    return poller, source


def test_a_slow_collector_is_stretched_to_the_budget():
    # 0.1 s of CPU per collection with a 5 % budget: one every 2 s at most, though the
    # interval asks for one every 20 ms (the first, cold dump is not charged).
    poller, source = run_for(1.5, cost=0.1, budget=0.05)
    assert poller.collections <= 3
    assert poller.stats is not None and poller.stats.stretched
    assert source.max_in_flight == 1


def test_a_cheap_collector_keeps_its_interval():
    poller, _ = run_for(1.0, cost=0.0001, budget=0.05)
    assert poller.collections >= 20
    assert poller.stats is not None and not poller.stats.stretched


def test_a_forced_refresh_ignores_the_budget():
    cpu = [0.0]
    source = SlowSource(cpu, 0.5)
    poller = Poller(lambda: source, 0.02, lambda f: None, lambda e: None, cpu_budget=0.01, thread_time=lambda: cpu[0])
    t = threading.Thread(target=poller.run, daemon=True)
    t.start()
    try:
        time.sleep(0.3)
        before = poller.collections
        poller.request(full=True)
        end = time.monotonic() + 5
        while poller.collections == before and time.monotonic() < end:
            time.sleep(0.01)
        assert poller.collections == before + 1
    finally:
        poller.stop()
        t.join(5)


def test_budget_bucket():
    b = CpuBudget(0.05)
    b.earn(0.0)
    b.spend(0.5, largest=0.5)
    assert b.wait_for(0.5) == (0.5 + 0.5) / 0.05
    b.earn(10.0)  # earned 0.5: back to zero
    assert abs(b.balance) < 1e-9
    b.earn(1000.0)  # idle time buys no more than the costliest collection
    assert b.balance == 0.5
    assert b.wait_for(0.5) == 0.0
