"""Which container a process belongs to, from its cgroup path and the runtimes' state on disk.

Read-only and API-free: no Docker socket, no CRI call. A container id is the last
64-hex-digit token of a cgroup path (`/docker/ID`, `/system.slice/docker-ID.scope`,
`/kubepods/.../cri-containerd-ID.scope`, `/machine.slice/libpod-ID.scope`, ...). The id is
then looked up in the state each runtime keeps on disk:

- Docker: DOCKER_ROOT/containers/ID/config.v2.json (`Name`, `Config.Hostname`)
- containerd (also under Kubernetes' CRI): CONTAINERD_ROOT/NAMESPACE/ID/config.json, the
  OCI spec, whose annotations carry `io.kubernetes.cri.sandbox-name`,
  `io.kubernetes.cri.sandbox-namespace` and `io.kubernetes.cri.container-name`
  (`nerdctl/name` for nerdctl containers)
- Podman: PODMAN_ROOT/overlay-containers/containers.json (`id`, `names`)

A runtime that is absent, or a file that cannot be read or parsed, yields no name: the
namespace is then named after its main process.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

DOCKER_ROOTS = ("/var/lib/docker",)
CONTAINERD_ROOTS = ("/run/containerd/io.containerd.runtime.v2.task",)
PODMAN_ROOTS = ("/var/lib/containers/storage", "/run/containers/storage")
MAX_STATE_BYTES = 4 << 20  # a runtime's state file larger than this is not read
MAX_CACHED = 4096  # container ids remembered (found or not), per index

_ID = re.compile(r"(?<![0-9a-f])([0-9a-f]{64})(?![0-9a-f])")


@dataclass(slots=True, frozen=True)
class RuntimeRoots:
    """Where each runtime keeps its state; tests point these at a temporary directory."""

    docker: tuple[str, ...] = DOCKER_ROOTS
    containerd: tuple[str, ...] = CONTAINERD_ROOTS
    podman: tuple[str, ...] = PODMAN_ROOTS


@dataclass(slots=True, frozen=True)
class Container:
    id: str
    name: str  # what a person calls it: the container name, or NAMESPACE/POD for a pod
    runtime: str  # "docker", "containerd", "podman"
    hostname: str | None = None
    pod: str | None = None
    pod_namespace: str | None = None
    container: str | None = None  # the Kubernetes container name within the pod
    aliases: tuple[str, ...] = field(default=())  # other names it answers to (--netns)


def container_id_from_cgroup(text: str) -> str | None:
    """The container id named by a /proc/PID/cgroup text, or None."""
    found: str | None = None
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        ids = _ID.findall(path)
        if ids:
            found = ids[-1]
            if line.startswith("0::"):
                break  # the unified hierarchy is authoritative when present
    return found


def _load_json(path: str) -> object | None:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_STATE_BYTES + 1)
    except OSError:
        return None
    if len(data) > MAX_STATE_BYTES:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


class ContainerIndex:
    """container id -> Container, read lazily from the runtimes' state and cached (bounded)."""

    def __init__(self, roots: RuntimeRoots | None = None) -> None:
        self.roots = roots or RuntimeRoots()
        self._cache: dict[str, Container | None] = {}
        self._podman: dict[str, tuple[float, dict[str, list[str]]]] = {}  # file -> (mtime, id -> names)

    def lookup(self, cid: str) -> Container | None:
        if cid in self._cache:
            hit = self._cache[cid]
            if hit is not None or not self._podman_changed():
                return hit
        found = self._docker(cid) or self._containerd(cid) or self._podman_lookup(cid)
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        self._cache[cid] = found
        return found

    def for_pid(self, pid: int, proc: str = "/proc") -> Container | None:
        try:
            with open(f"{proc}/{pid}/cgroup", "rb") as f:
                text = f.read(65536).decode(errors="replace")
        except OSError:
            return None
        cid = container_id_from_cgroup(text)
        return self.lookup(cid) if cid else None

    def all_known(self) -> list[Container]:
        """Every container whose state is on disk (for `--netns NAME` lookups)."""
        ids: set[str] = set()
        for root in self.roots.docker:
            ids.update(_listdir(os.path.join(root, "containers")))
        for root in self.roots.containerd:
            for ns in _listdir(root):
                ids.update(_listdir(os.path.join(root, ns)))
        for path in self._podman_files():
            ids.update(self._podman_table(path))
        out = []
        for cid in sorted(ids):
            if _ID.fullmatch(cid):
                c = self.lookup(cid)
                if c is not None:
                    out.append(c)
        return out

    # ---------------------------------------------------------------- Docker
    def _docker(self, cid: str) -> Container | None:
        for root in self.roots.docker:
            data = _load_json(os.path.join(root, "containers", cid, "config.v2.json"))
            if not isinstance(data, dict):
                continue
            name = (_text(data.get("Name")) or "").lstrip("/")
            config = data.get("Config")
            hostname = _text(config.get("Hostname")) if isinstance(config, dict) else None
            return Container(cid, name or cid[:12], "docker", hostname=hostname)
        return None

    # ---------------------------------------------------------------- containerd / CRI
    def _containerd(self, cid: str) -> Container | None:
        for root in self.roots.containerd:
            for ns in _listdir(root):
                data = _load_json(os.path.join(root, ns, cid, "config.json"))
                if not isinstance(data, dict):
                    continue
                ann = data.get("annotations")
                ann = ann if isinstance(ann, dict) else {}
                pod = _text(ann.get("io.kubernetes.cri.sandbox-name"))
                pod_ns = _text(ann.get("io.kubernetes.cri.sandbox-namespace"))
                cname = _text(ann.get("io.kubernetes.cri.container-name"))
                hostname = _text(data.get("hostname"))
                if pod:
                    name = f"{pod_ns}/{pod}" if pod_ns else pod
                    aliases = tuple(a for a in (pod, cname and f"{name}/{cname}") if a)
                    return Container(cid, name, "containerd", hostname=hostname, pod=pod,
                                     pod_namespace=pod_ns, container=cname, aliases=aliases)
                name = _text(ann.get("nerdctl/name")) or cid[:12]
                return Container(cid, name, "containerd", hostname=hostname)
        return None

    # ---------------------------------------------------------------- Podman
    def _podman_files(self) -> list[str]:
        return [os.path.join(root, "overlay-containers", "containers.json") for root in self.roots.podman]

    def _podman_changed(self) -> bool:
        for path in self._podman_files():
            old = self._podman.get(path)
            try:
                mtime = os.stat(path).st_mtime
            except OSError:
                mtime = -1.0
            if old is None or old[0] != mtime:
                return True
        return False

    def _podman_table(self, path: str) -> dict[str, list[str]]:
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            self._podman.pop(path, None)
            return {}
        old = self._podman.get(path)
        if old is not None and old[0] == mtime:
            return old[1]
        table: dict[str, list[str]] = {}
        data = _load_json(path)
        if isinstance(data, list):
            for entry in data:
                if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                    names = entry.get("names")
                    table[entry["id"]] = [n for n in names if isinstance(n, str)] if isinstance(names, list) else []
        self._podman[path] = (mtime, table)
        return table

    def _podman_lookup(self, cid: str) -> Container | None:
        for path in self._podman_files():
            names = self._podman_table(path).get(cid)
            if names is not None:
                return Container(cid, names[0] if names else cid[:12], "podman", aliases=tuple(names[1:]))
        return None


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []
