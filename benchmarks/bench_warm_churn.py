"""Warm refreshes on a host where connections keep coming and going: the fixture's ~100,000
sockets plus a steady loop of short connections (client closes first, so its end stays in
TIME-WAIT) at RATE per second inside the namespace. After a minute of that loop the
TIME-WAIT population is steady (RATE x 60) and every refresh meets new socket cookies.
Prints warm refresh times of one Collector against `ss -tan` in the same namespace,
alternating.

    sudo .venv/bin/python benchmarks/bench_warm_churn.py [--sockets 100000] [--rate 35] [--settle 65]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from fixture import Fixture, in_netns  # noqa: E402

CHURN = r"""
import socket, sys, time
rate, seconds = float(sys.argv[1]), float(sys.argv[2])
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.9", 9999)); ls.listen(512)
t0 = time.monotonic(); n = 0
while time.monotonic() - t0 < seconds:
    c = socket.create_connection(("127.0.0.9", 9999)); s, _ = ls.accept()
    c.close(); s.close(); n += 1
    delay = t0 + n / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
"""

WARM = r"""
import subprocess, sys, time
from sockscope.collectors.snapshotter import Collector
rounds = int(sys.argv[1])
with Collector() as c:
    c.snapshot(); c.snapshot()
    for _ in range(rounds):
        t = time.perf_counter(); s = c.snapshot(); w = time.perf_counter() - t
        t = time.perf_counter(); subprocess.run(["ss", "-tan"], stdout=subprocess.DEVNULL); v = time.perf_counter() - t
        print(w, v, len(s.sockets), flush=True)
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sockets", type=int, default=100_000)
    p.add_argument("--rate", type=float, default=35.0, help="short connections per second (default 35)")
    p.add_argument("--settle", type=float, default=65.0, help="seconds of churn before measuring (default 65)")
    p.add_argument("--rounds", type=int, default=9)
    args = p.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    with Fixture(n=args.sockets) as fx:
        churn = subprocess.Popen(in_netns(fx.netns_name, sys.executable, "-c", CHURN, str(args.rate),
                                          str(args.settle + 120)))
        try:
            time.sleep(args.settle)
            out = subprocess.run(in_netns(fx.netns_name, sys.executable, "-c", WARM, str(args.rounds)),
                                 capture_output=True, text=True, timeout=600, check=True).stdout
        finally:
            churn.kill()
            churn.wait()
        rows = [tuple(float(x) for x in line.split()) for line in out.splitlines() if line.strip()]
        warm = [r[0] for r in rows]
        ss = [r[1] for r in rows]
        print(f"date {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, {int(rows[-1][2])} sockets, "
              f"{args.rate:g} connections/s for {args.settle:g} s before measuring, {len(rows)} rounds alternating")
        print(f"warm refresh  median {statistics.median(warm):.3f} s  min {min(warm):.3f} s")
        print(f"ss -tan       median {statistics.median(ss):.3f} s  min {min(ss):.3f} s")
        print(f"ratio (medians) {statistics.median(warm) / statistics.median(ss):.2f} x ss -tan")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
