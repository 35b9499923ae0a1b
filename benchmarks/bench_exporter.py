"""The exporter's collection cycle on a namespace of ~N sockets, against `ss -tan`.

    sudo .venv/bin/python benchmarks/bench_exporter.py --sockets 100000 --rounds 5

Builds the benchmark fixture (benchmarks/fixture.py), then alternates, round by round, one
exporter cycle (snapshot, TcpExt, signals, bind verdicts, families within the budget) in
this process and one `ss -tan` in the namespace. Prints the medians, their ratio, each
part's duration, and the series written and dropped.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from fixture import Fixture, in_netns  # noqa: E402

from sockscope.exporter.runner import ExporterRunner  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sockets", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--max-series", type=int, default=5000)
    args = p.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    with Fixture(n=args.sockets) as fx:
        ns = fx.netns_name
        print(f"fixture: {fx.count()} sockets in {ns}, built in {fx.build_seconds:.1f}s")
        runner = ExporterRunner(lambda: [(ns, ns)], max_series=args.max_series, watch=[("tcp", 8080), ("tcp", 9999)])
        start = time.perf_counter()
        runner.collect_once()
        cold = time.perf_counter() - start
        cycles: list[float] = []
        ss: list[float] = []
        parts: dict[str, list[float]] = {}
        fams = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            subprocess.run(in_netns(ns, "ss", "-tan"), stdout=subprocess.DEVNULL, check=True)
            ss.append(time.perf_counter() - start)
            start = time.perf_counter()
            fams = runner.collect_once()
            cycles.append(time.perf_counter() - start)
            for f in fams:
                if f.name == "sockscope_collector_duration_seconds":
                    for labels, value in f.samples:
                        parts.setdefault(labels[1], []).append(value)
        runner.close()
        cyc, sst = statistics.median(cycles), statistics.median(ss)
        print(f"date {time.strftime('%Y-%m-%d')}, kernel {platform.release()}, {os.cpu_count()} cores (shared), "
              f"{args.rounds} rounds, alternating")
        print(f"first cycle (cold: every owner and option read)  {cold:7.3f} s  {cold / sst:6.2f} x ss -tan")
        print(f"warm cycle (median)                              {cyc:7.3f} s  {cyc / sst:6.2f} x ss -tan")
        print(f"ss -tan (median)                                 {sst:7.3f} s")
        for name, values in parts.items():
            print(f"  part {name:10} median {statistics.median(values):.3f} s")
        used = sum(len(f.samples) for f in fams if not f.meta)
        dropped = {lv[0]: v for f in fams if f.name == "sockscope_series_dropped" for lv, v in f.samples}
        print(f"series written {used} (budget {args.max_series}); dropped {int(sum(dropped.values()))}: {dropped}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
