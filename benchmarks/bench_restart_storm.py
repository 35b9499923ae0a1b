"""Restart storm: does watching with sockscope make a server's close() + re-bind fail?

A server in a private namespace closes and re-creates one listener (SO_REUSEADDR,
127.0.0.1:PORT) in a tight loop, bounded by time, counting EADDRINUSE. Meanwhile a
watcher refreshes a Collector in that namespace as fast as it can (the worst case; the TUI
refreshes about once a second). A pidfd_getfd duplicate held across the server's close()
keeps the old listener bound, which is the failure counted (issue 9 item 5).

Watchers: none; pidfd-eager (today's reading before issue 9: a socket is duplicated as
soon as it is seen); pidfd (read only what survived one refresh); bpf-sockets (socket
iterators: no duplicate for any socket they walk; owners from /proc/*/fd); bpf (socket
iterators and owners from the task-file iterator).

    sudo .venv/bin/python benchmarks/bench_restart_storm.py [--seconds 15]
"""

from __future__ import annotations

import argparse
import errno
import os
import platform
import signal
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from kit.netns import Netns, setns

PORT = 8080


def server(path: str, seconds: float, w: int) -> None:
    setns(path)
    restarts = fails = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for _ in range(100):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", PORT))
                s.listen(16)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                fails += 1
            finally:
                s.close()
            restarts += 1
    os.write(w, f"{restarts} {fails}\n".encode())


def watcher(path: str, mode: str, w: int) -> None:
    from sockscope.collectors.snapshotter import Collector

    setns(path)
    refreshes = 0
    stop = False

    def on_term(*_a: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    with Collector(use_bpf=mode.startswith("bpf")) as c:
        if mode == "bpf-sockets" and c._owners is not None:
            c._owners.fd_source = None  # owners from the /proc/*/fd scan, not the task-file iterator
        while not stop:
            if mode == "pidfd-eager" and c._options is not None:
                c._options._previous = None  # read every socket as soon as it is seen
            c.snapshot()
            refreshes += 1
        reads = c._options.read_count if c._options else 0
    os.write(w, f"{refreshes} {reads}\n".encode())


def fork(fn, *args) -> tuple[int, int]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            fn(*args, w)
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    return pid, r


def read_line(fd: int) -> list[int]:
    data = b""
    while chunk := os.read(fd, 4096):
        data += chunk
    os.close(fd)
    return [int(x) for x in data.split()]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--modes", default="none,pidfd-eager,pidfd,bpf")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    print(f"date {time.strftime('%Y-%m-%d %H:%M')}, kernel {platform.release()}, {os.cpu_count()} cores "
          f"(shared with other jobs), {args.seconds:.0f} s per mode")
    print(f"{'watcher':12} {'restarts':>9} {'EADDRINUSE':>10} {'per million':>11} {'refreshes':>9}")
    with Netns(prefix="ssstorm") as ns:
        for mode in args.modes.split(","):
            wpid = wfd = None
            if mode != "none":
                wpid, wfd = fork(watcher, ns.path, mode)
                time.sleep(1.0)  # let it load and take its first snapshot
            spid, sfd = fork(server, ns.path, args.seconds)
            restarts, fails = read_line(sfd)
            os.waitpid(spid, 0)
            refreshes = 0
            if wpid is not None and wfd is not None:
                os.kill(wpid, signal.SIGTERM)
                got = read_line(wfd)
                os.waitpid(wpid, 0)
                refreshes = got[0] if got else 0
            print(f"{mode:12} {restarts:9d} {fails:10d} {fails * 1e6 / max(restarts, 1):11.1f} {refreshes:9d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
