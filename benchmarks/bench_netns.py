"""Many namespaces against one: what watching 50 namespaces with a few sockets each costs.

Builds N namespaces (`ip netns add`), each with one holder process and a few sockets (two
TCP listeners, one established pair, one UDP socket), and one more namespace holding the
same sockets with the same number of processes. Then, alternating round by round:

- warm refresh, one namespace: `Collector(netns=ONE).snapshot()` (the TUI's full dump)
- warm refresh, N namespaces: `MultiCollector(only=those N).snapshot()`
- warm refresh, the whole host: `MultiCollector().snapshot()` (N + the host + others)
- `ss -tanH` + `ss -uanH` in the one namespace, and in every one of the N (nsenter)
- cold, as a user runs it: `sockscope list --json --netns ONE` and `sockscope list --all-netns --json`

    sudo .venv/bin/python benchmarks/bench_netns.py [--namespaces 50] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from kit import Holder, Netns  # noqa: E402

from sockscope.collectors.multi import MultiCollector  # noqa: E402
from sockscope.collectors.snapshotter import Collector  # noqa: E402

VENV_BIN = os.path.dirname(sys.executable)
SOCKSCOPE = os.path.join(VENV_BIN, "sockscope")


def populate(h: Holder, base: int) -> None:
    """Two listeners, an established pair (client + accepted), a UDP socket: 5 sockets."""
    for port in (base, base + 1):
        s = h.socket("tcp", 4)
        h.bind(s, "127.0.0.1", port)
        h.listen(s)
    c = h.socket("tcp", 4)
    h.connect(c, "127.0.0.1", base)
    u = h.socket("udp", 4)
    h.bind(u, "127.0.0.1", base)


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def ss_in(paths: list[str]) -> None:
    for p in paths:
        for flag in ("-tanH", "-uanH"):
            subprocess.run(["nsenter", f"--net={p}", "ss", flag], check=True, stdout=subprocess.DEVNULL)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--namespaces", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    n = args.namespaces
    spaces: list[Netns] = []
    holders: list[Holder] = []
    try:
        one = Netns("sscbone")
        one.__enter__()
        spaces.append(one)
        for i in range(n):
            h = Holder(one)
            holders.append(h)
            populate(h, 20000 + 2 * i)
        many: list[Netns] = []
        for _ in range(n):
            ns = Netns("sscbmany")
            ns.__enter__()
            spaces.append(ns)
            many.append(ns)
            h = Holder(ns)
            holders.append(h)
            populate(h, 20000)
        keys = set()
        for ns in many:
            st = os.stat(ns.path)
            keys.add((st.st_dev, st.st_ino))
        times: dict[str, list[float]] = {k: [] for k in (
            "one", "many", "host", "ss_one", "ss_many", "cold_one", "cold_all")}
        with Collector(netns=one.name) as c1, MultiCollector(only=keys) as cm, MultiCollector() as ch:
            s1, sm, sh = c1.snapshot(), cm.snapshot(), ch.snapshot()  # cold: owners and options read once
            counts = (len(s1.sockets), len(sm.sockets), len(sm.namespaces or {}), len(sh.sockets),
                      len(sh.namespaces or {}))
            for _ in range(args.rounds):
                times["one"].append(timed(c1.snapshot))
                times["many"].append(timed(cm.snapshot))
                times["host"].append(timed(ch.snapshot))
                times["ss_one"].append(timed(lambda: ss_in([one.path])))
                times["ss_many"].append(timed(lambda: ss_in([ns.path for ns in many])))
                times["cold_one"].append(timed(lambda: subprocess.run(
                    [SOCKSCOPE, "list", "--json", "--netns", one.name], check=True, capture_output=True)))
                times["cold_all"].append(timed(lambda: subprocess.run(
                    [SOCKSCOPE, "list", "--json", "--all-netns"], check=True, capture_output=True)))
            discover = cm.discover_seconds
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"# kernel {platform.release()}, {os.cpu_count()} cores (shared with other work), "
              f"{args.rounds} rounds, medians")
        print(f"# one namespace: {counts[0]} sockets, {n} processes; {counts[2]} namespaces: {counts[1]} sockets, "
              f"{n} processes; whole host: {counts[4]} namespaces, {counts[3]} sockets")
        print(f"# discovery (stat /proc/*/ns/net, /run/netns, mountinfo): {discover * 1000:.1f} ms")
        rows = [
            ("warm refresh, 1 namespace (Collector)", "one", "ss_one"),
            (f"warm refresh, {n} namespaces (MultiCollector)", "many", "ss_many"),
            ("warm refresh, whole host (MultiCollector)", "host", None),
            ("`ss -tanH` + `ss -uanH` in the 1 namespace", "ss_one", "ss_one"),
            (f"`ss -tanH` + `ss -uanH` in each of the {n}", "ss_many", "ss_many"),
            ("cold `sockscope list --json --netns ONE`", "cold_one", "ss_one"),
            ("cold `sockscope list --json --all-netns` (whole host)", "cold_all", None),
        ]
        print("| what | median ms | vs ss in the same namespaces |")
        print("|---|---:|---:|")
        for label, key, ref in rows:
            ratio = f"{med[key] / med[ref]:.2f}" if ref else "n/a (every namespace of the host)"
            print(f"| {label} | {med[key] * 1000:.1f} | {ratio} |")
        per_ns = (med["many"] - med["one"]) / n
        print(f"# per-namespace overhead of a warm refresh: {per_ns * 1000:.2f} ms "
              f"({n} namespaces {med['many'] * 1000:.1f} ms vs 1 namespace {med['one'] * 1000:.1f} ms)")
    finally:
        for h in holders:
            h.stop()
        for ns in spaces:
            ns.delete()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
