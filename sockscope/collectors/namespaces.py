"""Every network namespace on the host, each with a name a person recognises.

A namespace's identity is its nsfs inode (with the nsfs device): a name under /run/netns
can be deleted and re-created for another namespace, and a pid can be reused. Three ways
keep a namespace alive, and all three are looked at:

- a process in it: /proc/PID/ns/net (one stat per process, the cost of discovery);
- an `ip netns` name: a bind mount at /run/netns/NAME;
- any other bind mount of an nsfs file: the nsfs lines of /proc/self/mountinfo.

(A namespace held only by an open descriptor, or only by a thread other than a process's
main thread, is not found.)

Names, in this order: the `ip netns` name (kind "netns"); the container its processes
belong to (kind "container", see containers.py); the bind-mount path (kind "mount"); the
main (lowest) process as COMM/PID (kind "process"). The namespace of pid 1 is "host".
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from sockscope.model import NetnsRef

from .containers import Container, ContainerIndex, RuntimeRoots
from .netns import NETNS_RUN_DIR

PROC = "/proc"
MOUNTINFO = "/proc/self/mountinfo"
MAX_NAMED = 8192  # namespaces whose container/process name is remembered between discoveries


class NamespaceError(Exception):
    """A --netns spec that names no namespace, or several (one sentence for the user)."""


@dataclass(slots=True)
class Namespace:
    """One network namespace found on the host."""

    dev: int
    ino: int
    ref: NetnsRef
    path: str  # a path that opens it now: /run/netns/NAME, /proc/PID/ns/net or a bind mount
    pids: list[int] = field(default_factory=list)  # processes whose main thread is in it
    names: list[str] = field(default_factory=list)  # its `ip netns` names
    mounts: list[str] = field(default_factory=list)  # other bind mounts of it
    container: Container | None = None
    main_pid: int | None = None

    @property
    def key(self) -> tuple[int, int]:
        return (self.dev, self.ino)


def _unescape_mount(path: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    if "\\" not in path:
        return path
    out, i = [], 0
    while i < len(path):
        if path[i] == "\\" and path[i + 1 : i + 4].isdigit() and len(path[i + 1 : i + 4]) == 3:
            out.append(chr(int(path[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(path[i])
            i += 1
    return "".join(out)


def nsfs_mounts(mountinfo: str = MOUNTINFO) -> list[str]:
    """Mount points of network namespace files (`ip netns` names and other bind mounts)."""
    try:
        with open(mountinfo, "rb") as f:
            text = f.read().decode(errors="surrogateescape")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fstype = right.split(" ", 1)[0]
        parts = left.split(" ")
        if len(parts) < 5:
            continue
        # field 4 is the root within the filesystem: "net:[4026532288]" for a netns
        if fstype == "nsfs" and parts[3].startswith("net:["):
            out.append(_unescape_mount(parts[4]))
    return out


def _comm(proc: str, pid: int) -> str:
    try:
        with open(f"{proc}/{pid}/comm", "rb") as f:
            return f.read().decode(errors="replace").rstrip("\n") or "?"
    except OSError:
        return "?"


class Discovery:
    """Finds the namespaces; keeps names between calls so a refresh re-reads only new ones."""

    def __init__(
        self,
        proc: str = PROC,
        run_dir: str = NETNS_RUN_DIR,
        mountinfo: str = MOUNTINFO,
        roots: RuntimeRoots | None = None,
    ) -> None:
        self.proc = proc
        self.run_dir = run_dir
        self.mountinfo = mountinfo
        self.containers = ContainerIndex(roots)
        # (dev, ino) -> (container, main pid, its comm): what naming one namespace cost
        self._named: dict[tuple[int, int], tuple[Container | None, int | None, str]] = {}

    def host_key(self) -> tuple[int, int] | None:
        """The namespace of pid 1; ours when pid 1's cannot be read (some sandboxes)."""
        for path in (f"{self.proc}/1/ns/net", "/proc/self/ns/net"):
            try:
                st = os.stat(path)
            except OSError:
                continue
            return (st.st_dev, st.st_ino)
        return None

    def discover(self) -> list[Namespace]:
        """Every namespace now, the host's first, then by kind and name."""
        found: dict[tuple[int, int], Namespace] = {}
        me = os.getpid()
        stat = os.stat
        proc = self.proc
        try:
            pids = sorted(int(n) for n in os.listdir(proc) if n.isdigit())
        except OSError:
            pids = []
        for pid in pids:
            if pid == me:
                continue  # our own threads may be inside another namespace for a moment
            path = f"{proc}/{pid}/ns/net"
            try:
                st = stat(path)
            except OSError:
                continue  # exited, or a kernel thread / no permission
            key = (st.st_dev, st.st_ino)
            ns = found.get(key)
            if ns is None:
                found[key] = Namespace(st.st_dev, st.st_ino, NetnsRef(st.st_ino, "", ""), path, pids=[pid])
            else:
                ns.pids.append(pid)
        try:
            nsfs_dev = stat("/proc/self/ns/net").st_dev
        except OSError:
            nsfs_dev = -1
        try:
            names = sorted(os.listdir(self.run_dir))
        except OSError:
            names = []
        run_paths = set()
        for name in names:
            path = os.path.join(self.run_dir, name)
            run_paths.add(path)
            try:
                st = stat(path)
            except OSError:
                continue
            if st.st_dev != nsfs_dev:
                continue  # a leftover file of a failed `ip netns add`, not a namespace
            key = (st.st_dev, st.st_ino)
            ns = found.get(key)
            if ns is None:
                ns = found[key] = Namespace(st.st_dev, st.st_ino, NetnsRef(st.st_ino, "", ""), path)
            ns.names.append(name)
            ns.path = path
        for mount in nsfs_mounts(self.mountinfo):
            if mount in run_paths:
                continue
            try:
                st = stat(mount)
            except OSError:
                continue
            if st.st_dev != nsfs_dev:
                continue  # something else is mounted over it now
            key = (st.st_dev, st.st_ino)
            ns = found.get(key)
            if ns is None:
                ns = found[key] = Namespace(st.st_dev, st.st_ino, NetnsRef(st.st_ino, "", ""), mount)
            ns.mounts.append(mount)
        host = self.host_key()
        for key, ns in found.items():
            self._name(ns, key == host)
        # Forget the names of namespaces that are gone (the cache stays bounded).
        if len(self._named) > len(found) + 64 or len(self._named) > MAX_NAMED:
            self._named = {k: v for k, v in self._named.items() if k in found}
        order = {"host": 0, "netns": 1, "container": 2, "process": 3, "mount": 4}
        return sorted(found.values(), key=lambda n: (order.get(n.ref.kind, 9), n.ref.name, n.ino))

    def _name(self, ns: Namespace, is_host: bool) -> None:
        ns.main_pid = ns.pids[0] if ns.pids else None
        if is_host:
            ns.ref = NetnsRef(ns.ino, "host", "host")
            return
        cached = self._named.get(ns.key)
        if cached is None or cached[1] != ns.main_pid:
            container = None
            for pid in ns.pids[:16]:  # a container's processes agree; a few are enough
                container = self.containers.for_pid(pid, self.proc)
                if container is not None:
                    break
            comm = _comm(self.proc, ns.main_pid) if ns.main_pid is not None else ""
            cached = (container, ns.main_pid, comm)
            self._named[ns.key] = cached
        container, main_pid, comm = cached
        ns.container = container
        if ns.names:
            ns.ref = NetnsRef(ns.ino, ns.names[0], "netns")
        elif container is not None:
            ns.ref = NetnsRef(ns.ino, container.name, "container")
        elif main_pid is not None:
            ns.ref = NetnsRef(ns.ino, f"{comm}/{main_pid}", "process")
        elif ns.mounts:
            ns.ref = NetnsRef(ns.ino, ns.mounts[0], "mount")
        else:
            ns.ref = NetnsRef(ns.ino, f"netns:[{ns.ino}]", "mount")

    # ------------------------------------------------------------------ --netns SPEC
    def resolve(self, spec: str) -> Namespace:
        """The one namespace `spec` names: an `ip netns` name, `pid:PID`, a path to a
        namespace file, "host", the name shown for it, or a container's name or id (a
        unique prefix of at least 4 hex digits)."""
        spec = spec.strip()
        if not spec:
            raise NamespaceError("empty network namespace name")
        spaces = self.discover()
        by_key = {n.key: n for n in spaces}
        if spec.startswith("pid:"):
            text = spec[4:]
            if not (text.isascii() and text.isdigit()) or int(text) <= 0:
                raise NamespaceError(f"bad pid in {spec!r}: expected pid:NUMBER")
            return self._by_path(f"{self.proc}/{int(text)}/ns/net", by_key, f"no process {int(text)}")
        if spec.startswith("/"):
            return self._by_path(spec, by_key, f"{spec} does not exist")
        for ns in spaces:
            if spec in ns.names:
                return ns
        matches = [n for n in spaces if n.ref.name == spec]
        if not matches:
            matches = [n for n in spaces if n.container is not None and (
                spec == n.container.id[: len(spec)] and len(spec) >= 4 or spec in n.container.aliases
                or spec == n.container.hostname)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            shown = ", ".join(sorted(n.ref.name for n in matches)[:5])
            raise NamespaceError(f"{spec!r} names {len(matches)} network namespaces ({shown}): be more specific")
        if "/" not in spec and spec not in (".", ".."):
            path = os.path.join(self.run_dir, spec)
            if os.path.exists(path):
                return self._by_path(path, by_key, f"{path} does not exist")
        raise NamespaceError(
            f"no network namespace {spec!r}: not an `ip netns` name, container or pid:PID "
            "(`sockscope list --all-netns` shows them all)"
        )

    def _by_path(self, path: str, by_key: dict[tuple[int, int], Namespace], missing: str) -> Namespace:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise NamespaceError(f"no network namespace: {missing}") from None
        except OSError as exc:
            raise NamespaceError(f"cannot open network namespace {path}: {exc.strerror}") from None
        ns = by_key.get((st.st_dev, st.st_ino))
        if ns is not None:
            ns.path = path
            return ns
        # A namespace file that discovery did not see (e.g. in another mount namespace).
        return Namespace(st.st_dev, st.st_ino, NetnsRef(st.st_ino, path, "mount"), path)
