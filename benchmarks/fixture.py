"""A private network namespace holding about N TCP sockets, for benchmarks and the
screenshot scenario.

One process may hold 20,000 fds here, so the sockets are spread over pairs of
holder processes: a server that accepts and a client that connects, over loopback
inside the namespace. Also: a SO_REUSEPORT group, SO_REUSEADDR listeners, IPv6,
some TIME-WAIT and CLOSE-WAIT, UDP, and a second uid.

    with Fixture(n=100_000) as fx:
        print(fx.netns_name)

    python benchmarks/fixture.py --sockets 100000 --hold 600
"""

from __future__ import annotations

import argparse
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from kit.netns import Netns, setns  # noqa: E402

PER_PROCESS = 19_000  # below the 20,000-fd limit, with room for the interpreter's own fds
SO_REUSEPORT = getattr(socket, "SO_REUSEPORT", 15)


def in_netns(name: str, *cmd: str) -> list[str]:
    """`cmd` run in the namespace `name`: only the network namespace is entered. Not
    `ip netns exec`, whose fresh mount namespace has no cgroup2 mount: `ss -e` then prints
    an error per socket and runs 2-3 times slower (bench_list.py)."""
    return ["nsenter", f"--net=/run/netns/{name}", *cmd]


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, PER_PROCESS + 200) if hard != resource.RLIM_INFINITY else PER_PROCESS + 200
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def _child(netns_path: str, uid: int, work, ready_w: int) -> None:
    """Runs `work()` in the namespace as `uid`, reports on `ready_w`, then holds until killed."""
    code = 0
    try:
        setns(netns_path)
        _raise_nofile()
        if uid:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        keep = work()
        os.write(ready_w, f"ok {len(keep)}\n".encode())
        deadline = time.monotonic() + 24 * 3600
        while time.monotonic() < deadline:
            time.sleep(3600)
    except BaseException as exc:  # report, then die: the parent must never hang
        try:
            os.write(ready_w, f"error {type(exc).__name__}: {exc}\n".encode())
        except OSError:
            pass
        code = 1
    finally:
        os._exit(code)


def _server(addr: str, port: int, n: int, family: int = socket.AF_INET):
    def work():
        lst = socket.socket(family, socket.SOCK_STREAM)
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lst.bind((addr, port))
        lst.listen(4096)
        lst.settimeout(30)
        conns = [lst]
        for _ in range(n):
            c, _ = lst.accept()
            conns.append(c)
        return conns

    return work


def _client(addr: str, port: int, n: int, family: int = socket.AF_INET):
    def work():
        conns = []
        deadline = time.monotonic() + 30
        while True:  # the server may not be listening yet
            probe = socket.socket(family, socket.SOCK_STREAM)
            try:
                probe.connect((addr, port))
                conns.append(probe)
                break
            except ConnectionRefusedError:
                probe.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        for _ in range(n - 1):
            c = socket.socket(family, socket.SOCK_STREAM)
            c.connect((addr, port))
            conns.append(c)
        return conns

    return work


def _extras(n_tw: int, n_udp: int):
    """Listeners of every flavour, TIME-WAIT and CLOSE-WAIT sockets, UDP."""

    def work():
        keep = []
        for i in range(4):  # a SO_REUSEPORT group
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, SO_REUSEPORT, 1)
            s.bind(("0.0.0.0", 8443))
            s.listen(128)
            keep.append(s)
        for port, v6only in ((80, True), (8080, False)):
            s = socket.socket(socket.AF_INET6)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if v6only else 0)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("::", port))
            s.listen(128)
            keep.append(s)
        tw = socket.socket()
        tw.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tw.bind(("127.0.0.1", 9000))
        tw.listen(4096)
        keep.append(tw)
        for _ in range(n_tw):  # the server side closes first: it ends in TIME-WAIT
            c = socket.socket()
            c.connect(("127.0.0.1", 9000))
            a, _ = tw.accept()
            a.close()
            c.close()
        for _ in range(min(50, n_tw)):  # the server closes, the client does not: CLOSE-WAIT
            c = socket.socket()
            c.connect(("127.0.0.1", 9000))
            a, _ = tw.accept()
            a.close()
            keep.append(c)
        for i in range(n_udp):
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.bind(("127.0.0.1", 20000 + i))
            keep.append(u)
        return keep

    return work


class Fixture:
    """About `n` TCP sockets in a fresh namespace; everything is removed on exit."""

    def __init__(self, n: int = 100_000, timewait: int = 2000, udp: int = 500) -> None:
        self.n = n
        self.timewait = timewait
        self.udp = udp
        self.ns = Netns(prefix="ssbench")
        self.pids: list[int] = []
        self.build_seconds = 0.0
        self.held = 0

    @property
    def netns_name(self) -> str:
        return self.ns.name

    def _spawn(self, uid: int, work) -> int:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            _child(self.ns.path, uid, work, w)
        os.close(w)
        self.pids.append(pid)
        return r

    def _wait_ready(self, fds: list[int], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        pending = set(fds)
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("fixture holders did not get ready in time")
            ready, _, _ = select.select(list(pending), [], [], left)
            for fd in ready:
                line = os.read(fd, 4096).decode().strip()
                pending.discard(fd)
                os.close(fd)
                if not line.startswith("ok"):
                    raise RuntimeError(f"fixture holder failed: {line or 'died'}")
                self.held += int(line.split()[1])

    def __enter__(self) -> "Fixture":
        start = time.monotonic()
        self.ns.__enter__()
        try:
            self.ns.sysctl("net.ipv4.ip_local_port_range", "10000 65000")
            self.ns.sysctl("net.ipv4.tcp_max_tw_buckets", "262144")
            extras = self.timewait + self.udp + 60
            pairs = max(1, -(-max(self.n - extras, 0) // (2 * PER_PROCESS)))
            per_pair = max(0, (self.n - extras) // (2 * pairs))
            fds = [self._spawn(0, _extras(self.timewait, self.udp))]
            for i in range(pairs):
                port = 10_000 + i
                addr = f"127.0.0.{i + 1}"
                fds.append(self._spawn(0, _server(addr, port, per_pair)))
                # Every other client runs as another uid, as on a real host.
                fds.append(self._spawn(1001 if i % 2 else 0, _client(addr, port, per_pair)))
            self._wait_ready(fds)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        self.build_seconds = time.monotonic() - start
        return self

    def __exit__(self, *exc: object) -> None:
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in self.pids:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        self.pids.clear()
        self.ns.delete()

    def count(self) -> int:
        out = subprocess.run(in_netns(self.ns.name, "ss", "-tuanH"), capture_output=True,
                             text=True, check=True).stdout
        return out.count("\n")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sockets", type=int, default=100_000)
    p.add_argument("--hold", type=float, default=3600, help="seconds to hold before cleaning up (Ctrl-C ends sooner)")
    args = p.parse_args()

    def stop(signum: int, frame: object) -> None:
        # SIGTERM cleans up like Ctrl-C: no namespace left behind. A second one (`pkill -f`
        # signals a `timeout` wrapper too, which passes it on) must not cut the cleanup short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    with Fixture(n=args.sockets) as fx:
        print(f"namespace {fx.netns_name}: {fx.count()} sockets (ss), built in {fx.build_seconds:.1f}s", flush=True)
        print(f"try: sockscope --netns {fx.netns_name}", flush=True)
        try:
            time.sleep(args.hold)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
