"""Collection benchmark at ~100,000 TCP sockets: sockscope against ss and psutil, in one run.

Every command runs in the fixture's namespace through the same wrapper
(`nsenter --net=/run/netns/NAME ...`), alternating round by round so that the machine's
noise hits all of them alike. Prints medians, minimums, ratios to ss, and peak memory.

Not `ip netns exec`: it also enters a new mount namespace with /sys remounted and no
cgroup2 mount, where `ss -e` fails to resolve each socket's cgroup and prints "Failed to
find cgroup2 mount" once per socket, which made `ss -tanpe` 2-3 times slower than on the
host (5.3 s against 1.8-3.0 s at 100,000 sockets). Figures taken that way before
2026-11-26 flattered every ratio to `ss -tanpe`.

    sudo .venv/bin/python benchmarks/bench_list.py [--sockets 100000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from fixture import Fixture, in_netns  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
VENV_BIN = os.path.dirname(sys.executable)
SOCKSCOPE = os.path.join(VENV_BIN, "sockscope")

PSUTIL_SNIPPET = "import psutil; psutil.net_connections(kind='tcp')"
WARM_SNIPPET = """
import sys, time, resource
from sockscope.collectors.snapshotter import Collector
rounds = int(sys.argv[1])
with Collector() as c:
    t = time.perf_counter(); s = c.snapshot(); cold = time.perf_counter() - t
    warm = []
    for _ in range(rounds):
        t = time.perf_counter(); s = c.snapshot(); warm.append(time.perf_counter() - t)
print(len(s.sockets), cold, *warm, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def run_timed(cmd: list[str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (KiB) of this command's process (nsenter execs it), stdout."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    out = proc.stdout.read()
    # wait4: this child's own rusage (RUSAGE_CHILDREN would be the largest child so far)
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    proc.stdout.close()
    return wall, usage.ru_maxrss, out.decode(errors="replace")


def busiest_port(ns: str) -> int:
    """The local port with the most TCP sockets in the namespace."""
    out = subprocess.run(in_netns(ns, "ss", "-tanH"), capture_output=True, text=True, check=True).stdout
    counts: dict[int, int] = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 4:
            port = int(fields[3].rsplit(":", 1)[1])
            counts[port] = counts.get(port, 0) + 1
    return max(counts, key=lambda p: counts[p])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sockets", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    # Byte-compiled first, as `pip install .` leaves it: run from a checkout with
    # PYTHONDONTWRITEBYTECODE set, every start would compile each module again (~30 ms).
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(HERE, "..", "sockscope")], check=False,
                   stdout=subprocess.DEVNULL)
    with Fixture(n=args.sockets) as fx:
        ns = fx.netns_name
        count = fx.count()
        print(f"fixture: {count} sockets in {ns}, built in {fx.build_seconds:.1f}s")
        busiest = busiest_port(ns)
        commands = {
            "sockscope list --json": in_netns(ns, SOCKSCOPE, "list", "--json"),
            "ss -tanpe": in_netns(ns, "ss", "-tanpe"),
            "ss -tan": in_netns(ns, "ss", "-tan"),
            "psutil.net_connections": in_netns(ns, sys.executable, "-c", PSUTIL_SNIPPET),
            # `check` reads one port (the busiest: its sockets are all decoded), ss shows it
            f"sockscope check (port {busiest})": in_netns(ns, SOCKSCOPE, "check", "tcp", f"127.0.0.1:{busiest}"),
            f"ss -tanpe sport = :{busiest}": in_netns(ns, "ss", "-tanpe", "sport", "=", f":{busiest}"),
        }
        times: dict[str, list[float]] = {k: [] for k in commands}
        sizes: dict[str, int] = {}
        warm: list[float] = []
        warm_cold: list[float] = []
        warm_rss = 0
        for _ in range(args.rounds):
            for name, cmd in commands.items():
                wall, _rss, out = run_timed(cmd)
                times[name].append(wall)
                sizes[name] = len(out)
            _w, _r, out = run_timed(in_netns(ns, sys.executable, "-c", WARM_SNIPPET, "3"))
            fields = out.split()
            warm_cold.append(float(fields[1]))
            warm.extend(float(x) for x in fields[2:-1])
            warm_rss = max(warm_rss, int(fields[-1]))
        # Peak memory of one cold `sockscope list --json`, and of `ss -tanpe`.
        _w, list_rss, _o = run_timed(commands["sockscope list --json"])
        _w, ss_rss, _o = run_timed(commands["ss -tanpe"])
        ss_tan = statistics.median(times["ss -tan"])
        ss_tanpe = statistics.median(times["ss -tanpe"])
        print()
        print(f"date {time.strftime('%Y-%m-%d')}, kernel {platform.release()}, {os.cpu_count()} cores, "
              f"{args.rounds} rounds, alternating")
        print(f"{'what':34} {'median s':>9} {'min s':>8} {'/ss -tanpe':>10} {'/ss -tan':>9}")
        for name, ts in times.items():
            med = statistics.median(ts)
            print(f"{name:34} {med:9.3f} {min(ts):8.3f} {med / ss_tanpe:10.2f} {med / ss_tan:9.2f}")
        wmed = statistics.median(warm)
        print(f"{'warm refresh (in-process)':34} {wmed:9.3f} {min(warm):8.3f} {wmed / ss_tanpe:10.2f} {wmed / ss_tan:9.2f}")
        cmed = statistics.median(warm_cold)
        print(f"{'first snapshot (in-process)':34} {cmed:9.3f} {min(warm_cold):8.3f} {cmed / ss_tanpe:10.2f} {cmed / ss_tan:9.2f}")
        print()
        print(f"peak RSS: sockscope list --json {list_rss / 1024:.0f} MiB, ss -tanpe {ss_rss / 1024:.0f} MiB,"
              f" in-process collector after 4 snapshots {warm_rss / 1024:.0f} MiB")
        print(f"goals (issue 11): cold list --json <= 0.3 x ss -tanpe: "
              f"{statistics.median(times['sockscope list --json']) / ss_tanpe:.2f};"
              f" warm refresh <= 1.0 x ss -tan: {wmed / ss_tan:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
