"""Where a cold `sockscope list --json` spends its time at ~100,000 sockets, phase by phase,
in one process: the kernel dump alone (bytes read, nothing decoded), the decoder, the owner
scan, the option reads, the JSON text; then a warm refresh. `ss -tan` and `ss -tanpe` are
timed in the same run for the ratios.

    sudo .venv/bin/python benchmarks/bench_phases.py [--sockets 100000]
"""

from __future__ import annotations

import argparse
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

PHASES = r"""
import sys, time, resource
from sockscope.collectors.snapshotter import Collector
from sockscope.collectors.inet_diag import AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP, build_request, states_mask
from sockscope.collectors.netlink import open_sock_diag
from sockscope.serialize import records_to_json

def raw_dump():
    from sockscope.collectors.netlink import NLMSGHDR
    s = open_sock_diag(); n = 0
    for proto in (IPPROTO_TCP, IPPROTO_UDP):
        for fam in (AF_INET, AF_INET6):
            req = build_request(fam, proto, states_mask(None), 1)
            s.send(req)
            while True:
                data = s.recv(1 << 20)
                n += len(data)
                # the last message of a dump is NLMSG_DONE (type 3)
                off = 0; done = False
                while off < len(data):
                    length, mtype = NLMSGHDR.unpack_from(data, off)[:2]
                    if mtype in (2, 3): done = True
                    off += (length + 3) & ~3
                if done: break
    s.close()
    return n

t = time.perf_counter(); nbytes = raw_dump(); t_raw = time.perf_counter() - t
c = Collector()
facts = c._host_facts(time.monotonic())
t = time.perf_counter(); recs = c._collect(("tcp", "udp"), None, facts); t_dec = time.perf_counter() - t
t = time.perf_counter()
owners = c._owners.lookup({r.inode for r in recs if r.inode})
for r in recs:
    o = owners.get(r.inode)
    if o: r.owners = o
t_own = time.perf_counter() - t
t = time.perf_counter(); c._options.apply(recs); t_opt = time.perf_counter() - t
t = time.perf_counter(); text = records_to_json(recs); t_json = time.perf_counter() - t
t = time.perf_counter(); s2 = c.snapshot(); t_warm = time.perf_counter() - t
t = time.perf_counter(); s3 = c.snapshot(); t_warm2 = time.perf_counter() - t
print(len(recs), nbytes, t_raw, t_dec, t_own, t_opt, t_json, t_warm, t_warm2,
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def timed(cmd: list[str], ns_path: str) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   preexec_fn=lambda: setns(ns_path))
    return time.perf_counter() - t


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sockets", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    with Fixture(n=args.sockets) as fx:
        path = f"/run/netns/{fx.netns_name}"
        rows = []
        ss_tan: list[float] = []
        ss_tanpe: list[float] = []
        listing: list[float] = []
        list_rss = 0
        for _ in range(args.rounds):
            ss_tan.append(timed(["ss", "-tan"], path))
            ss_tanpe.append(timed(["ss", "-tanpe"], path))
            out = subprocess.run([sys.executable, "-c", PHASES], capture_output=True, text=True, check=True,
                                 preexec_fn=lambda: setns(path)).stdout.split()
            rows.append([float(x) for x in out])
            # A cold `sockscope list --json` of its own, and its peak RSS (a fresh parent
            # per run, so RUSAGE_CHILDREN is that run's alone).
            probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
                     "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True); "
                     "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
            got = subprocess.run([sys.executable, "-c", probe, os.path.join(os.path.dirname(sys.executable), "sockscope"),
                                  "list", "--json"], capture_output=True, text=True, check=True,
                                 preexec_fn=lambda: setns(path)).stdout.split()
            listing.append(float(got[0]))
            list_rss = max(list_rss, int(got[1]))
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    tan, tanpe = med(ss_tan), med(ss_tanpe)
    print(f"date {time.strftime('%Y-%m-%d %H:%M')}, kernel {platform.release()}, {os.cpu_count()} cores "
          f"(shared with other jobs), {args.rounds} rounds, medians")
    print(f"{int(rows[0][0])} sockets, {rows[0][1] / 1e6:.1f} MB of sock_diag replies")
    print(f"ss -tan {tan:.3f}s, ss -tanpe {tanpe:.3f}s")
    names = ["kernel dump, nothing decoded", "dump + decode (cold)", "owners (/proc scan)", "options (pidfd_getfd)",
             "JSON text", "warm refresh", "warm refresh again"]
    for i, name in enumerate(names, start=2):
        v = med([r[i] for r in rows])
        print(f"  {name:32} {v:7.3f}s  {v / tan:5.2f} x ss -tan  {v / tanpe:5.2f} x ss -tanpe")
    lst = med(listing)
    print(f"  {'sockscope list --json (process)':32} {lst:7.3f}s  {lst / tan:5.2f} x ss -tan  {lst / tanpe:5.2f} x ss -tanpe")
    print(f"peak RSS: phases process {max(r[-1] for r in rows) / 1024:.0f} MiB, "
          f"sockscope list --json {list_rss / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
