"""Idle cost of watching every namespace (`sockscope tui --all-netns`): the collector
thread of the poller, with and without the per-namespace change watch, on N quiet
namespaces (one listener each), against running `ss -tan` once in every namespace each
second. Figures, never assertions.

    sudo .venv/bin/python benchmarks/bench_netns_idle.py [--namespaces 20] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from fixture import in_netns  # noqa: E402
from kit.netns import Netns  # noqa: E402

from sockscope.collectors import netns as netns_mod  # noqa: E402
from sockscope.tui import poller as poller_mod  # noqa: E402


class Unwatched(poller_mod.CollectorSource):
    """--all-netns as before the per-namespace watch: no watch, every tick dumps."""

    def __init__(self) -> None:
        super().__init__(None, "auto", all_netns=True)
        if self._watch is not None:
            self._watch.close()
        self._watch = None


def run(seconds: float, watch: bool) -> tuple[float, int, int]:
    """(% of one core, dumps, ticks skipped) of this process over `seconds`."""
    make = (lambda: poller_mod.CollectorSource(None, "auto", all_netns=True)) if watch else Unwatched
    p = poller_mod.Poller(make, 1.0, lambda f: None, lambda e: None, cpu_budget=5.0, safety_period=30)
    t = threading.Thread(target=p.run, daemon=True)
    t.start()
    time.sleep(5)  # the first dumps of every namespace
    d0, s0, w0, c0 = p.collections, p.skipped, time.monotonic(), time.process_time()
    time.sleep(seconds)
    cpu = time.process_time() - c0
    wall = time.monotonic() - w0
    out = (100 * cpu / wall, p.collections - d0, p.skipped - s0)
    p.stop()
    t.join(10)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--namespaces", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    spaces = []
    keep = []
    try:
        for i in range(args.namespaces):
            ns = Netns().__enter__()
            spaces.append(ns)
            with netns_mod.entered(ns.name):
                s = socket.socket()
                s.bind(("127.0.0.1", 8000 + i))
                s.listen()
                keep.append(s)
        t0 = time.perf_counter()
        for ns in spaces:
            subprocess.run(in_netns(ns.name, "ss", "-tan"), stdout=subprocess.DEVNULL, check=True)
        ss_all = time.perf_counter() - t0
        with_watch = run(args.seconds, True)
        without = run(args.seconds, False)
        n = args.namespaces + 1
        print(f"date {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, {n} namespaces "
              f"({args.namespaces} made + the host's), idle {args.seconds:g} s each, interval 1 s")
        print(f"`ss -tan` once in every namespace: {1000 * ss_all:.0f} ms -> once a second {100 * ss_all:.1f} % of one core")
        for name, (pct, dumps, skipped) in (("with the per-namespace watch", with_watch),
                                            ("without (every tick dumps)", without)):
            print(f"{name:30} {pct:5.2f} % of one core, {dumps} dumps, {skipped} ticks skipped "
                  f"({pct / (100 * ss_all):.3f} x ss each second)")
    finally:
        for s in keep:
            s.close()
        for ns in spaces:
            ns.delete()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
