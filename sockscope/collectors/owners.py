"""inode -> the processes (and fds) holding each socket, by scanning /proc/*/fd.

What `ss -p` does, cached across refreshes: process details are kept per
(pid, start time), so a reused pid is noticed and re-read.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Collection
from dataclasses import dataclass

from sockscope.model import Owner

PROC = "/proc"


@dataclass(slots=True)
class ProcessInfo:
    start: int  # field 22 of /proc/PID/stat, clock ticks since boot: tells a reused pid
    name: str
    user: str | None
    uid: int | None
    cmdline: list[str]


def _read_text(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return None


def parse_stat(text: str) -> tuple[str, int]:
    """(comm, starttime) from /proc/PID/stat; comm may hold spaces and parentheses."""
    lpar = text.index("(")
    rpar = text.rindex(")")
    comm = text[lpar + 1 : rpar]
    fields = text[rpar + 2 :].split()
    # fields[0] is field 3 (state), so field 22 (starttime) is fields[19].
    return comm, int(fields[19])


class OwnerIndex:
    def __init__(self, proc: str = PROC) -> None:
        self.proc = proc
        self._procs: dict[int, ProcessInfo] = {}
        self._users: dict[int, str] = {}
        self.limitation: str | None = None
        self.denied = 0  # processes whose fds could not be read in the last lookup

    def user_name(self, uid: int) -> str:
        name = self._users.get(uid)
        if name is None:
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                name = str(uid)
            self._users[uid] = name
        return name

    def process(self, pid: int) -> ProcessInfo | None:
        """Details of a live pid, from cache unless the pid was reused."""
        stat = _read_text(f"{self.proc}/{pid}/stat")
        if stat is None:
            self._procs.pop(pid, None)
            return None
        try:
            comm, start = parse_stat(stat)
        except (ValueError, IndexError):
            return None
        info = self._procs.get(pid)
        if info is not None and info.start == start:
            return info
        try:
            uid: int | None = os.stat(f"{self.proc}/{pid}").st_uid
        except OSError:
            uid = None
        raw = _read_text(f"{self.proc}/{pid}/cmdline") or ""
        cmdline = [a for a in raw.split("\0") if a] if raw else []
        info = ProcessInfo(start, comm, self.user_name(uid) if uid is not None else None, uid, cmdline)
        self._procs[pid] = info
        return info

    def lookup(self, inodes: Collection[int]) -> dict[int, list[Owner]]:
        """Every (pid, fd) holding one of `inodes`, with process details."""
        wanted = inodes if isinstance(inodes, (set, frozenset)) else set(inodes)
        found: dict[int, list[Owner]] = {}
        if not wanted:
            return found
        proc = self.proc
        readlink = os.readlink
        denied = 0
        alive: set[int] = set()
        try:
            pids = [int(n) for n in os.listdir(proc) if n.isdigit()]
        except OSError as exc:
            raise OSError(exc.errno, f"cannot list {proc}: {exc.strerror}") from None
        for pid in pids:
            alive.add(pid)
            fddir = f"{proc}/{pid}/fd/"
            try:
                fds = os.listdir(fddir)
            except PermissionError:
                denied += 1
                continue
            except OSError:  # the process exited meanwhile
                continue
            hits: list[tuple[int, int]] = []
            for fd in fds:
                try:
                    link = readlink(fddir + fd)
                except OSError:
                    continue  # closed meanwhile
                # "socket:[12345]"
                if link.startswith("socket:["):
                    inode = int(link[8:-1])
                    if inode in wanted:
                        hits.append((inode, int(fd)))
            if not hits:
                continue
            info = self.process(pid)
            if info is None:
                continue
            for inode, fd in hits:
                found.setdefault(inode, []).append(Owner(pid, fd, info.name, info.user, info.cmdline))
        for owners in found.values():
            if len(owners) > 1:
                owners.sort(key=lambda o: (o.pid, o.fd))
        for pid in [p for p in self._procs if p not in alive]:
            del self._procs[pid]
        self.denied = denied
        self.limitation = (
            f"not root: owners of sockets in {denied} processes of other users are unknown"
            if denied
            else None
        )
        return found
