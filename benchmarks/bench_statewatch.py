"""What the BPF state-change program costs the host: N loopback connect/close cycles in a
private namespace with the program detached, attached and counting that namespace, and
attached while watching only another namespace (one map lookup that misses per state
change), rounds alternating so that machine noise hits all alike. Plus what one watch
tick costs with and without the program, against `ss -tan` in the same namespace.

Each cycle: connect to a listener on 127.0.0.1, accept, close the client with an RST
(SO_LINGER 0: no TIME-WAIT piles up, so 100,000 cycles never run out of ports), close
the accepted end: six state changes (client SYN-SENT, ESTAB, CLOSE; server child
SYN-RECV, ESTAB, CLOSE). The cycles run in a child process inside the namespace, which
reports its wall time and its own CPU (user + system: loopback's softirq work runs in
the sender's context, so the program's cost lands there).

    sudo .venv/bin/python benchmarks/bench_statewatch.py [--connections 100000] [--rounds 2]

Figures are printed, never asserted.
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
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from fixture import in_netns  # noqa: E402
from kit.netns import Netns  # noqa: E402

from sockscope.collectors import netns as netns_mod  # noqa: E402
from sockscope.collectors.bpf import state_watch  # noqa: E402
from sockscope.collectors.events import ChangeWatch  # noqa: E402

CYCLES = r"""
import json, os, socket, struct, sys, time
n = int(sys.argv[1])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 7000))
srv.listen(4096)
linger = struct.pack("ii", 1, 0)
t0, c0 = time.perf_counter(), os.times()
for _ in range(n):
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
    c.connect(("127.0.0.1", 7000))
    a, _ = srv.accept()
    c.close()
    a.close()
t1, c1 = time.perf_counter(), os.times()
srv.close()
print(json.dumps({"wall": t1 - t0, "cpu": (c1.user - c0.user) + (c1.system - c0.system), "sys": c1.system - c0.system}))
"""

MODES = ("detached", "attached, counting this namespace", "attached, watching another namespace")


def run_cycles(ns: Netns, n: int) -> dict[str, float]:
    out = subprocess.run(in_netns(ns.name, sys.executable, "-c", CYCLES, str(n)),
                         capture_output=True, text=True, timeout=3600, check=True)
    return json.loads(out.stdout)


def tick_cost(ns: Netns, states: bool, n: int = 2000) -> float:
    """Median seconds of one ChangeWatch.changed() in the namespace (no destroy events:
    a quiet namespace, so only the reads are timed)."""
    with netns_mod.entered(ns.name):
        watch = ChangeWatch(subscribe=False, states=states)
    try:
        times = []
        for _ in range(n):
            t = time.perf_counter()
            watch.changed()
            times.append(time.perf_counter() - t)
        return statistics.median(times)
    finally:
        watch.close()


def ss_cost(ns: Netns, runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(in_netns(ns.name, "ss", "-tan"), capture_output=True, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connections", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (namespaces, BPF)", file=sys.stderr)
        return 2
    n = args.connections
    print(f"# {platform.node()} Linux {platform.release()}, {os.cpu_count()} CPUs (shared machine), "
          f"{n:,} connect/close cycles per run, {args.rounds} rounds")
    results: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
    counted: list[int] = []
    with Netns(prefix="sswb") as ns, Netns(prefix="sswo") as other:
        ino = os.stat(ns.path).st_ino
        other_ino = os.stat(other.path).st_ino
        for _round in range(args.rounds):
            for mode in MODES:
                handle = None
                if mode == MODES[1]:
                    handle = state_watch.acquire(ino)
                elif mode == MODES[2]:
                    handle = state_watch.acquire(other_ino)
                try:
                    before = handle.read() if handle is not None else None
                    results[mode].append(run_cycles(ns, n))
                    if mode == MODES[1] and handle is not None and before is not None:
                        time.sleep(0.2)
                        counted.append(handle.read()[0] - before[0])
                finally:
                    if handle is not None:
                        handle.close()
        tick_off = tick_cost(ns, states=False)
        tick_on = tick_cost(ns, states=True)
        ss = ss_cost(ns)
    base_wall = statistics.median(r["wall"] for r in results[MODES[0]])
    base_cpu = statistics.median(r["cpu"] for r in results[MODES[0]])
    print(f"{'mode':<40} {'wall s':>8} {'cpu s':>8} {'µs/cycle':>9} {'wall ratio':>11} {'cpu ratio':>10}")
    for mode in MODES:
        wall = statistics.median(r["wall"] for r in results[mode])
        cpu = statistics.median(r["cpu"] for r in results[mode])
        print(f"{mode:<40} {wall:>8.2f} {cpu:>8.2f} {1e6 * wall / n:>9.1f} {wall / base_wall:>11.3f} "
              f"{cpu / base_cpu:>10.3f}")
    print("each run (wall s): " + "; ".join(f"{m}: " + ", ".join(f"{r['wall']:.2f}" for r in results[m])
                                            for m in MODES))
    want = 6 * n + 2
    print(f"state changes counted per run: {', '.join(f'{c:,}' for c in counted)} (expected {want:,}: "
          "6 per cycle + the listener's LISTEN and CLOSE)")
    print(f"one watch tick (ChangeWatch.changed, median): counters only {1e6 * tick_off:.1f} µs, "
          f"with the BPF map read {1e6 * tick_on:.1f} µs; `ss -tan` in the same namespace {1e3 * ss:.1f} ms "
          f"(tick with BPF = {tick_on / ss:.4f} x ss)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
