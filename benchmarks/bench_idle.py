"""The cost of watching, at ~100,000 sockets: the TUI's CPU while nothing changes, and under
a churn of short connections (with a check that every one of them is counted), against
`ss -tan` run once a second (what `watch -n1 ss -tan` costs) in the same run.

The app runs headless (Textual's run_test) in this process with its real threads; its
CPU is this process's user+system time over the window (the fixture's holders and the
churn generator are other processes). The churn generator is a separate process in the
fixture's namespace: it connects to its own listener and closes both ends with an RST
(SO_LINGER 0, so no TIME-WAIT piles up), `--rate` connections a second, and reports how
many it made. Sockets born and gone between two refreshes are counted from sock_diag's
destroy events; the check compares the counts of the listener's port with that number.

    sudo .venv/bin/python benchmarks/bench_idle.py [--sockets 100000] [--idle 60] [--churn 20] [--rate 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from fixture import Fixture  # noqa: E402
from kit.netns import setns  # noqa: E402

from sockscope.tui import SockscopeApp  # noqa: E402

CHURN_PORT = 7777
CHURN = r"""
import socket, struct, sys, time
rate, seconds, port = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port)); srv.listen(4096)
print("ready", flush=True); sys.stdin.readline()
linger = struct.pack("ii", 1, 0)
n = 0; start = time.monotonic(); end = start + seconds
while time.monotonic() < end:
    for _ in range(50):
        c = socket.socket(); c.connect(("127.0.0.1", port)); a, _ = srv.accept()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger); c.close(); a.close(); n += 1
    ahead = start + n / rate - time.monotonic()
    if ahead > 0:
        time.sleep(ahead)
srv.close()
print(n, time.monotonic() - start, flush=True)
"""


def cpu_self() -> float:
    t = os.times()
    return t.user + t.system


def ss_per_second(ns_path: str, rounds: int = 10) -> tuple[float, float]:
    """CPU seconds and wall seconds of one `ss -tan` in the namespace (median-free mean)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    for _ in range(rounds):
        subprocess.run(["ss", "-tan"], stdout=subprocess.DEVNULL, check=True, preexec_fn=lambda: setns(ns_path))
    wall = (time.perf_counter() - t) / rounds
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) / rounds
    return cpu, wall


async def bench(n: int, ns: str, ns_path: str, idle: float, churn: float, rate: float, budget: float) -> dict:
    app = SockscopeApp(netns=ns, interval=1.0, cpu_budget=budget)
    res: dict = {}
    fulls: list = []
    real_deliver = app.poller.deliver

    def deliver(frame):  # type: ignore[no-untyped-def]
        if frame.full:
            fulls.append(frame)
        return real_deliver(frame)

    app.poller.deliver = deliver  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)):
        t = time.perf_counter()
        await app.wait_for(lambda v: v.frame.full and v.frame.total > 0.8 * n, timeout=300)
        res["first_s"] = time.perf_counter() - t
        await asyncio.sleep(5)  # the warm-up refreshes after the cold one
        # ---- idle
        c0, w0, d0, s0 = cpu_self(), time.perf_counter(), app.poller.collections, app.poller.skipped
        await asyncio.sleep(idle)
        res["idle_cpu"] = (cpu_self() - c0) / (time.perf_counter() - w0)
        res["idle_dumps"] = app.poller.collections - d0
        res["idle_skipped"] = app.poller.skipped - s0
        res["idle_status"] = app._status()
        # ---- churn
        gen = subprocess.Popen([sys.executable, "-c", CHURN, str(rate), str(churn), str(CHURN_PORT)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               preexec_fn=lambda: setns(ns_path))
        assert gen.stdout is not None and gen.stdin is not None
        assert gen.stdout.readline().strip() == "ready"
        # The listener's creation lands in a full dump before the window.
        await asyncio.sleep(1.5)
        before = len(fulls)
        app.poller.request(full=True)
        while len(fulls) == before:
            await asyncio.sleep(0.1)
        first = len(fulls)
        c0, w0, d0 = cpu_self(), time.perf_counter(), app.poller.collections
        gen.stdin.write("go\n")
        gen.stdin.flush()
        made_s, took_s = (await asyncio.to_thread(gen.stdout.readline)).split()
        gen.wait(30)
        res["churn_cpu"] = (cpu_self() - c0) / (time.perf_counter() - w0)
        res["churn_dumps"] = app.poller.collections - d0
        res["made"] = int(made_s)
        res["rate"] = int(made_s) / float(took_s)
        await asyncio.sleep(2)  # the last destroy events come from a kernel work queue
        for _ in range(2):  # two forced full dumps after the churn (each bounded by 180 s)
            before = len(fulls)
            app.poller.request(full=True)
            end = time.monotonic() + 180
            while len(fulls) == before and time.monotonic() < end:
                await asyncio.sleep(0.1)
        churns = [f.churn for f in fulls[first:] if f.churn is not None]
        port = [0, 0]
        for c in churns:
            got = c.by_port.get(("tcp", CHURN_PORT), [0, 0])
            port[0] += got[0]
            port[1] += got[1]
        res["port_counts"] = port
        res["created"] = sum(c.created for c in churns)
        res["destroyed"] = sum(c.destroyed for c in churns)
        res["exact"] = all(c.exact for c in churns)
        await asyncio.sleep(1.5)  # the header catches up with the last frame
        res["churn_status"] = app._status()
        res["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        app.stop_threads()
    return res


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sockets", type=int, default=100_000)
    p.add_argument("--idle", type=float, default=60.0)
    p.add_argument("--churn", type=float, default=20.0)
    p.add_argument("--rate", type=float, default=5000.0)
    p.add_argument("--budget", type=float, default=5.0, help="--cpu-budget, %% of one core")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    with Fixture(n=args.sockets) as fx:
        ns = fx.netns_name
        ns_path = f"/run/netns/{ns}"
        print(f"fixture: {fx.count()} sockets in {ns}, built in {fx.build_seconds:.1f}s")
        ss_cpu, ss_wall = ss_per_second(ns_path)
        res = asyncio.run(bench(args.sockets, ns, ns_path, args.idle, args.churn, args.rate, args.budget / 100.0))
        ss_cpu2, ss_wall2 = ss_per_second(ns_path)
    ss_cpu = (ss_cpu + ss_cpu2) / 2
    print(f"date {time.strftime('%Y-%m-%d %H:%M')}, kernel {platform.release()}, {os.cpu_count()} cores "
          "(shared with other jobs), one run")
    print(f"ss -tan: {ss_wall * 1000:.0f} ms wall, {ss_cpu * 1000:.0f} ms CPU per run -> "
          f"`ss -tan` once a second costs {100 * ss_cpu:.1f} % of one core")
    print(f"first full view {res['first_s']:.1f}s")
    print(f"idle {args.idle:.0f}s: TUI process {100 * res['idle_cpu']:.1f} % of one core "
          f"({res['idle_cpu'] / ss_cpu:.2f} x ss -tan each second); {res['idle_dumps']} dumps, "
          f"{res['idle_skipped']} ticks skipped")
    print(f"   header: {res['idle_status']}")
    print(f"churn {args.churn:.0f}s at {res['rate']:.0f} connections/s ({res['made']} made): TUI process "
          f"{100 * res['churn_cpu']:.1f} % of one core, {res['churn_dumps']} dumps")
    print(f"   listener port {CHURN_PORT}: created {res['port_counts'][0]}, destroyed {res['port_counts'][1]} "
          f"(expected {res['made']} and {res['made'] + 1}: the connections' server ends, and the listener closed "
          f"at the end); all sockets: +{res['created']} / -{res['destroyed']} (expected {2 * res['made']} / "
          f"{2 * res['made'] + 1}, plus the fixture's own TIME-WAIT expiries), exact={res['exact']}")
    print(f"   header: {res['churn_status']}")
    print(f"peak RSS of the TUI process: {res['rss_mib']:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
