"""Kernel flags by BPF iterator against `ss -tan` and against today's pidfd_getfd path, at
~100,000 TCP sockets, in one run (rounds alternate so that machine noise hits all alike).

Measured inside the fixture's namespace:
  ss -tan                      the reference (a subprocess, as users run it)
  iterator read (tcp+udp)      BPF_ITER_CREATE + read(), bytes only
  iterator read + decode       ... + records decoded into per-cookie tuples and buckets
  snapshot, kernel flags       Collector.snapshot() with BPF (dump + owners + iterator + join)
  snapshot, pidfd flags        Collector(use_bpf=False).snapshot(): today's path
each cold (a new Collector) and warm (the median of the next 3 refreshes; an unchanged dump
reuses the last iterator read), plus a warm refresh that re-reads the iterators (what
every refresh costs on a host whose sockets change).

    sudo .venv/bin/python benchmarks/bench_bpf.py [--sockets 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from fixture import Fixture, in_netns

SNIPPET = r"""
import json, sys, time
from sockscope.collectors.bpf.iterators import SocketIterators, Table
from sockscope.collectors.snapshotter import Collector
mode = sys.argv[1]
out = {}
if mode == "iter":
    t = time.perf_counter(); its = SocketIterators.open(); out["load"] = time.perf_counter() - t
    t = time.perf_counter(); raw = {p: its.read_raw(p) for p in ("tcp", "udp")}; out["read"] = time.perf_counter() - t
    t = time.perf_counter(); dec = {p: Table(p, raw[p], its.kernel) for p in raw}; dec["tcp"].buckets(); out["decode"] = time.perf_counter() - t
    out["count"] = sum(len(d) for d in dec.values())
    out["bytes"] = sum(len(r) for r in raw.values())
else:
    with Collector(use_bpf=(mode == "bpf")) as c:
        t = time.perf_counter(); s = c.snapshot(); out["cold"] = time.perf_counter() - t
        warm = []
        for _ in range(3):
            t = time.perf_counter(); s = c.snapshot(); warm.append(time.perf_counter() - t)
        out["warm"] = sorted(warm)[1]
        if mode == "bpf":
            # a refresh that must read the iterator again (as after any socket change)
            c._kernel._last = None
            t = time.perf_counter(); s = c.snapshot(); out["warm_reread"] = time.perf_counter() - t
        out["count"] = len(s.sockets)
        out["known"] = sum(1 for r in s.sockets if r.reuseaddr is not None)
        out["timewait_known"] = sum(1 for r in s.sockets if r.timewait and r.reuseaddr is not None)
        out["timewait"] = sum(1 for r in s.sockets if r.timewait)
        out["buckets"] = sum(len(v) for v in (s.tcp_buckets or {}).values())
print(json.dumps(out))
"""


def timed(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=True).stdout
    return time.perf_counter() - start, out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sockets", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces, BPF)", file=sys.stderr)
        return 2
    with Fixture(n=args.sockets) as fx:
        ns = fx.netns_name
        print(f"fixture: {fx.count()} sockets in {ns}, built in {fx.build_seconds:.1f}s")
        res: dict[str, list[float]] = {}
        info: dict[str, dict] = {}

        def add(name: str, value: float) -> None:
            res.setdefault(name, []).append(value)

        for _ in range(args.rounds):
            wall, _ = timed(in_netns(ns, "ss", "-tan"))
            add("ss -tan", wall)
            _, out = timed(in_netns(ns, sys.executable, "-c", SNIPPET, "iter"))
            it = json.loads(out)
            info["iter"] = it
            add("iterator load (once per Collector)", it["load"])
            add("iterator read (tcp+udp)", it["read"])
            add("iterator read + decode", it["read"] + it["decode"])
            for mode, label in (("bpf", "kernel flags"), ("pidfd", "pidfd flags")):
                _, out = timed(in_netns(ns, sys.executable, "-c", SNIPPET, mode))
                snap = json.loads(out)
                info[mode] = snap
                add(f"snapshot cold, {label}", snap["cold"])
                add(f"snapshot warm, {label}", snap["warm"])
                if "warm_reread" in snap:
                    add("snapshot warm, kernel flags re-read", snap["warm_reread"])
        ss = statistics.median(res["ss -tan"])
        print(f"date {time.strftime('%Y-%m-%d %H:%M')}, kernel {platform.release()}, {os.cpu_count()} cores "
              f"(shared with other jobs), {args.rounds} rounds, alternating")
        print(f"{'what':40} {'median s':>9} {'min s':>8} {'/ ss -tan':>9}")
        for name, ts in res.items():
            med = statistics.median(ts)
            print(f"{name:40} {med:9.3f} {min(ts):8.3f} {med / ss:9.2f}")
        it, bpf, pidfd = info["iter"], info["bpf"], info["pidfd"]
        print(f"iterator: {it['count']} sockets, {it['bytes'] / 1e6:.1f} MB of records")
        for mode, snap in (("kernel flags", bpf), ("pidfd flags", pidfd)):
            print(f"{mode}: {snap['known']}/{snap['count']} sockets with known flags, "
                  f"TIME-WAIT {snap['timewait_known']}/{snap['timewait']}, {snap['buckets']} bind buckets")
        for kind in ("cold", "warm"):
            k = statistics.median(res[f"snapshot {kind}, kernel flags"])
            pf = statistics.median(res[f"snapshot {kind}, pidfd flags"])
            print(f"snapshot {kind}: kernel flags / pidfd flags = {k / pf:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
