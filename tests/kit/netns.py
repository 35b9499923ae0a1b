"""Private network namespaces for tests: created with `ip netns add`, always deleted."""

from __future__ import annotations

import ctypes
import itertools
import os
import subprocess

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_counter = itertools.count()


def setns(path: str) -> None:
    """Move the calling thread into the network namespace at `path`."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def run(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = list(args)
    if netns is not None:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=60)


class Netns:
    """A named network namespace with loopback up and optional dummy interfaces.

    Only addresses inside it ever receive traffic. Use as a context manager.
    """

    def __init__(self, prefix: str = "ssc") -> None:
        self.name = f"{prefix}{os.getpid()}_{next(_counter)}"
        self.path = f"/run/netns/{self.name}"
        self.created = False

    def __enter__(self) -> "Netns":
        run("ip", "netns", "add", self.name)
        self.created = True
        self.ip("link", "set", "lo", "up")
        return self

    def __exit__(self, *exc: object) -> None:
        self.delete()

    def delete(self) -> None:
        if self.created:
            run("ip", "netns", "del", self.name, check=False)
            self.created = False

    def ip(self, *args: str) -> str:
        return run("ip", *args, netns=self.name).stdout

    def exec(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(*args, netns=self.name, check=check)

    def add_dummy(self, name: str, *addrs: str) -> int:
        """Add an interface with addresses (CIDR) that only this namespace can reach;
        returns its ifindex. This kernel has no dummy driver, so it is one end of a veth
        pair whose other end (NAME + "p") stays in the namespace too."""
        self.ip("link", "add", name, "type", "veth", "peer", "name", name + "p")
        self.ip("link", "set", name + "p", "up")
        for addr in addrs:
            extra = ["nodad"] if ":" in addr else []
            self.ip("addr", "add", addr, "dev", name, *extra)
        self.ip("link", "set", name, "up")
        out = self.ip("-o", "link", "show", name)
        return int(out.split(":", 1)[0])

    def sysctl(self, key: str, value: str) -> None:
        self.exec("sysctl", "-q", "-w", f"{key}={value}")

    def ss(self, *args: str) -> str:
        return self.exec("ss", *args).stdout
