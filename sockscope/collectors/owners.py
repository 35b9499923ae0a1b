"""inode -> the processes (and fds) holding each socket, by scanning /proc/*/fd.

What `ss -p` does, cached across refreshes. Process details (name, user, command line)
are re-validated, not trusted for a pid's life: a process may exec another program or
change its uid (setuid, then exec) under the same pid and start time. Every scan reads
/proc/PID/stat (start time, comm: a reused pid, most execs); every META_INTERVAL seconds
the processes that hold sockets are checked deeper: /proc/PID/status (effective uid), the
exe link and the command line. Any change re-reads the details. (The deep check costs
about three times the stat read, so it is not done for every process on every scan.)
"""

from __future__ import annotations

import os
import pwd
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass

from sockscope.model import Owner, owner_order

PROC = "/proc"
FULL_INTERVAL = 30.0
MIN_FULL_INTERVAL = 5.0
# A full rescan to resolve new sockets is allowed once this many times its own cost has
# passed: every few hundred ms on an ordinary host, every MIN_FULL_INTERVAL on a huge one.
FULL_COST_FACTOR = 10.0
META_INTERVAL = 2.0  # seconds between re-validations of the known owners' details
MAX_USERS = 4096  # uid -> user name cache bound


@dataclass(slots=True)
class ProcessInfo:
    start: int  # field 22 of /proc/PID/stat, clock ticks since boot: tells a reused pid
    name: str
    user: str | None
    uid: int | None  # effective uid (/proc/PID/status), None when unreadable
    cmdline: list[str]
    exe: str | None = None  # the /proc/PID/exe link (None: unreadable, or a kernel thread)
    raw_cmdline: str = ""  # as read, to notice an exec of the same program with other arguments


def parse_status_uid(text: str) -> int | None:
    """The effective uid from /proc/PID/status ("Uid:\treal\teffective\tsaved\tfs")."""
    for line in text.splitlines():
        if line.startswith("Uid:"):
            fields = line.split()
            try:
                return int(fields[2])
            except (IndexError, ValueError):
                return None
    return None


def _read_exe(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:  # kernel thread, gone, or no ptrace rights (not root)
        return None


def read_text(path: str) -> str | None:
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
        self.denied = 0  # processes whose fds could not be read in the last scan
        self.unresolved = 0  # wanted inodes without a known owner after the last lookup
        self._fds: dict[int, dict[str, int]] = {}  # pid -> fd name -> socket inode (0: not a socket)
        self._starts: dict[int, int] = {}  # pid -> start time of the process _fds describes
        # pid -> the Owner records built from its unchanged fd table, reused as they are
        self._owned: dict[int, list[tuple[int, Owner]]] = {}
        self._owned_info: dict[int, ProcessInfo] = {}  # pid -> the details _owned was built from
        self._meta_at = 0.0
        self._by_inode: dict[int, list[Owner]] = {}
        self._scanned = False
        self._full_at = 0.0
        self._full_cost = 0.0
        self._last_wanted: set[int] | frozenset[int] = frozenset()
        # Moves whenever an owner list may have changed (a scan, a re-validation that made
        # new Owner records): callers may skip sockets they resolved at the same version.
        self.version = 0
        # Inodes that left the dump since the last fd scan: their fd numbers may hold new
        # sockets now. Kept until a scan reads those fds again (a lookup that finds every
        # socket it wants does not scan, and must not forget them).
        self._stale: set[int] = set()
        # Optional faster source for full scans (the BPF task-file iterator,
        # collectors/bpf/task_files.py): pid -> {fd: socket inode} for every process;
        # None to fall back to the scan.
        self.fd_source: Callable[[], dict[int, dict[int, int]] | None] | None = None

    def user_name(self, uid: int) -> str:
        name = self._users.get(uid)
        if name is None:
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                name = str(uid)
            if len(self._users) >= MAX_USERS:
                self._users.clear()  # bounded; user names are cheap to look up again
            self._users[uid] = name
        return name

    def process(self, pid: int, deep: bool = True) -> ProcessInfo | None:
        """Details of a live pid: the cached object while the process is the same program
        under the same uid, a new one after a reused pid, an exec or a uid change. Not
        `deep`: only the start time and comm are compared (one read)."""
        base = f"{self.proc}/{pid}"
        stat = read_text(f"{base}/stat")
        if stat is None:
            self._procs.pop(pid, None)
            return None
        try:
            comm, start = parse_stat(stat)
        except (ValueError, IndexError):
            return None
        info = self._procs.get(pid)
        if not deep and info is not None and info.start == start and info.name == comm:
            return info
        status = read_text(f"{base}/status")
        uid = parse_status_uid(status) if status is not None else None
        if uid is None:
            try:
                uid = os.stat(base).st_uid
            except OSError:
                uid = None
        exe = _read_exe(f"{base}/exe")
        raw = read_text(f"{base}/cmdline") or ""
        if (
            info is not None
            and info.start == start
            and info.name == comm
            and info.uid == uid
            and info.exe == exe
            and info.raw_cmdline == raw
        ):
            return info
        cmdline = [a for a in raw.split("\0") if a] if raw else []
        info = ProcessInfo(start, comm, self.user_name(uid) if uid is not None else None, uid, cmdline, exe, raw)
        self._procs[pid] = info
        return info

    def forget_except(self, alive: Collection[int]) -> None:
        """Drop cached details of processes not in `alive` (for fd sources)."""
        for pid in [p for p in self._procs if p not in alive]:
            del self._procs[pid]
            self._starts.pop(pid, None)

    def _revalidate(self) -> None:
        """Re-read the details of every process that holds a known socket; where they
        changed (exec, setuid), its sockets get new Owner records. New lists, never
        mutated ones: earlier snapshots may still be read by another thread."""
        by_inode = self._by_inode
        for pid, owned in list(self._owned.items()):
            if not owned:  # holds no socket: its details are shown nowhere
                continue
            old = self._owned_info.get(pid)
            info = self.process(pid, deep=True)
            if info is None or info is old:
                continue
            fresh: list[tuple[int, Owner]] = []
            replaced: dict[int, Owner] = {}
            for inode, owner in owned:
                new = Owner(pid, owner.fd, info.name, info.user, info.cmdline)
                fresh.append((inode, new))
                replaced[id(owner)] = new
            for inode, _owner in owned:
                owners = by_inode.get(inode)
                if owners is not None:
                    by_inode[inode] = [replaced.get(id(o), o) for o in owners]
            self.version += 1
            self._owned[pid] = fresh
            self._owned_info[pid] = info

    def lookup(self, inodes: Collection[int], incremental: bool = False, only: bool = False) -> Mapping[int, list[Owner]]:
        """Every (pid, fd) holding one of `inodes`, with process details: a read-only
        mapping that may hold other sockets' owners too (the index itself, so that a
        refresh of 100,000 sockets builds no second 100,000-entry dict).

        `only` (a one-port snapshot, see Collector.snapshot): before any scan, the owners
        of `inodes` alone are built from one fd-source read, and nothing is kept (the next
        lookup scans in full).

        A full lookup readlinks every fd of every process, as `ss -p` does (~100,000
        syscalls on a busy host). An incremental one (for live refreshes) keeps the
        owners of sockets seen before and readlinks only fds that are new since the last
        scan; if that leaves new sockets unresolved (an fd number was reused), it falls
        back to a full scan, at most every FULL_COST_FACTOR times the cost of the last one
        (MIN_FULL_INTERVAL seconds at most), and does one every
        FULL_INTERVAL seconds regardless, so an owner change (an fd passed to another
        process) shows within that time.
        """
        wanted: set[int] | frozenset[int] = inodes if isinstance(inodes, (set, frozenset)) else set(inodes)
        now = time.monotonic()
        if only and not self._scanned and self.fd_source is not None:
            found = self._only(wanted)
            if found is not None:
                return found
        if not incremental or not self._scanned or now - self._full_at > FULL_INTERVAL:
            return self._full(wanted, now)
        if now - self._meta_at >= META_INTERVAL:
            self._meta_at = now
            self._revalidate()
        # Sockets that left the dump since last time: the fd numbers that held them may now
        # hold new sockets (fd numbers are reused), so those fds are read again.
        gone = self._last_wanted - wanted
        if gone:
            self._stale |= gone
        self._last_wanted = wanted  # never mutated: no copy of 100,000 inodes
        if not wanted - self._by_inode.keys():
            self.unresolved = 0
            return self._by_inode
        stale, self._stale = self._stale - wanted, set()
        self._scan(incremental=True, stale=stale)
        self.unresolved = len(wanted - self._by_inode.keys())
        if self.unresolved and now - self._full_at > min(MIN_FULL_INTERVAL, FULL_COST_FACTOR * self._full_cost):
            return self._full(wanted, now)
        return self._by_inode

    def _only(self, wanted: set[int] | frozenset[int]) -> dict[int, list[Owner]] | None:
        """The owners of `wanted` from one fd-source read (None: the source failed). Only
        the processes holding one of them are looked at: a check of one port on a host
        with 100,000 sockets builds a few Owners, not 100,000."""
        assert self.fd_source is not None
        table = self.fd_source()
        if table is None:
            return None
        owned: list[tuple[int, Owner]] = []
        for pid, fds in table.items():
            hits = [(fd, inode) for fd, inode in fds.items() if inode in wanted]
            if not hits:
                continue
            info = self.process(pid)
            if info is None:
                continue  # exited meanwhile
            owned += [(inode, Owner(pid, fd, info.name, info.user, info.cmdline)) for fd, inode in hits]
        by_inode = _by_inode(owned)
        self.unresolved = len(wanted - by_inode.keys())
        self.denied, self.limitation = 0, None
        return by_inode

    def _full(self, wanted: set[int] | frozenset[int], now: float) -> Mapping[int, list[Owner]]:
        self._last_wanted = wanted
        self._stale = set()
        self._scan(incremental=False)
        self._full_cost = time.monotonic() - now
        self._full_at = now
        self.unresolved = len(wanted - self._by_inode.keys())
        return self._by_inode

    def _scan(self, incremental: bool, stale: set[int] | frozenset[int] = frozenset()) -> None:
        """Rebuild inode -> owners from /proc/*/fd; when incremental, trust the inode
        remembered for an fd number seen in the last scan of the same process."""
        if self.fd_source is not None and not incremental:
            # Full scans only: an incremental one readlinks just the new fds, which holds
            # fewer file references than any full walk (bench_restart_storm.py).
            table = self.fd_source()
            if table is not None:
                self._adopt(table)
                return
        proc = self.proc
        readlink = os.readlink
        denied = 0
        old_fds = self._fds if incremental else {}
        new_fds: dict[int, dict[str, int]] = {}
        new_owned: dict[int, list[tuple[int, Owner]]] = {}
        new_info: dict[int, ProcessInfo] = {}
        old_owned = self._owned if incremental else {}
        try:
            pids = [int(n) for n in os.listdir(proc) if n.isdigit()]
        except OSError as exc:
            raise OSError(exc.errno, f"cannot list {proc}: {exc.strerror}") from None
        alive = set(pids)
        for pid in pids:
            fddir = f"{proc}/{pid}/fd/"
            try:
                names = os.listdir(fddir)
            except PermissionError:
                denied += 1
                continue
            except OSError:  # the process exited meanwhile
                continue
            info = self.process(pid, deep=False)
            if info is None:
                continue
            before = old_fds.get(pid)
            if before is not None and self._starts.get(pid) != info.start:
                before = None  # a new process under a reused pid
            if (
                before is not None
                and pid in old_owned
                and self._owned_info.get(pid) is info  # same program, same uid: same details
                and len(names) == len(before)
                and before.keys() >= set(names)
                and not (stale and any(inode in stale for inode, _ in old_owned[pid]))
            ):
                # Same fd table as last time (the common case on a busy, steady host):
                # reuse its Owner records instead of building 100,000 new ones.
                owned = old_owned[pid]
                sockets = before
            else:
                sockets = {}
                owned = []
                for fd in names:
                    inode = before.get(fd, -1) if before is not None else -1
                    if inode == -1 or inode in stale:
                        try:
                            link = readlink(fddir + fd)
                        except OSError:
                            continue  # closed meanwhile
                        # "socket:[12345]"; other fds are remembered as 0 so they are not re-read
                        inode = int(link[8:-1]) if link.startswith("socket:[") else 0
                    sockets[fd] = inode
                    if inode:
                        owned.append((inode, Owner(pid, int(fd), info.name, info.user, info.cmdline)))
            new_owned[pid] = owned
            new_info[pid] = info
            new_fds[pid] = sockets
            self._starts[pid] = info.start
        self.forget_except(alive)
        self._install(new_fds, new_owned, new_info)
        self.denied = denied
        self.limitation = (
            f"not root: owners of sockets in {denied} processes of other users are unknown"
            if denied
            else None
        )

    def _adopt(self, table: dict[int, dict[int, int]]) -> None:
        """The index from an fd source's read: pid -> {fd: socket inode}, every process."""
        new_fds: dict[int, dict[str, int]] = {}
        new_owned: dict[int, list[tuple[int, Owner]]] = {}
        new_info: dict[int, ProcessInfo] = {}
        for pid, fds in table.items():
            info = self.process(pid)
            if info is None:
                continue  # exited meanwhile
            new_owned[pid] = [(inode, Owner(pid, fd, info.name, info.user, info.cmdline)) for fd, inode in fds.items()]
            new_fds[pid] = {str(fd): inode for fd, inode in fds.items()}
            new_info[pid] = info
            self._starts[pid] = info.start
        self.forget_except(table.keys())
        self._install(new_fds, new_owned, new_info)
        self.denied, self.limitation = 0, None

    def _install(self, fds: dict[int, dict[str, int]], owned: dict[int, list[tuple[int, Owner]]],
                 infos: dict[int, ProcessInfo]) -> None:
        """Make a scan's per-process results the index: inode -> owners, by (pid, fd)."""
        by_inode = _by_inode(pair for pairs in owned.values() for pair in pairs)
        self._fds, self._owned, self._owned_info, self._by_inode = fds, owned, infos, by_inode
        self.version += 1
        self._scanned = True


def _by_inode(owned: Iterable[tuple[int, Owner]]) -> dict[int, list[Owner]]:
    """inode -> its owners in owner_order, from (inode, owner) pairs."""
    by_inode: dict[int, list[Owner]] = {}
    for inode, owner in owned:
        owners = by_inode.get(inode)
        if owners is None:
            by_inode[inode] = [owner]
        else:
            owners.append(owner)
    for owners in by_inode.values():
        if len(owners) > 1:
            owners.sort(key=owner_order)
    return by_inode
