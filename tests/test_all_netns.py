"""Every network namespace at once: discovery, names, collection, `--all-netns`, `--netns SPEC`.

Real namespaces of the three kinds (an `ip netns` name, one held only by a process made
with `unshare --net`, one held only by a bind mount), real sockets, `ss` run inside each
namespace as the reference, and runtime state laid out on disk as Docker, containerd/CRI
and Podman keep it, with processes moved into cgroups whose paths name the containers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from kit import Holder, Netns
from kit.netns import run as run_cmd

from sockscope.collectors.containers import RuntimeRoots
from sockscope.collectors.multi import MultiCollector
from sockscope.collectors.namespaces import Discovery, NamespaceError
from sockscope.collectors.snapshotter import Collector, CollectorError

pytestmark = pytest.mark.root

SOCKSCOPE = [sys.executable, "-m", "sockscope"]
PORT = 18480


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SOCKSCOPE, *args], capture_output=True, text=True, timeout=60)


class Unshared:
    """A namespace kept alive only by a process made with `unshare --net` (no name)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(["unshare", "--net", "sleep", "300"])
        path = f"/proc/{self.proc.pid}/ns/net"
        deadline = time.monotonic() + 5
        host = os.stat("/proc/self/ns/net").st_ino
        while os.stat(path).st_ino == host:  # until unshare has made it and exec'd sleep
            if time.monotonic() > deadline:
                raise RuntimeError("unshare --net did not start")
            time.sleep(0.01)
        subprocess.run(["nsenter", f"--net={path}", "ip", "link", "set", "lo", "up"], check=True)
        self.path = path
        self.pid = self.proc.pid
        self.ino = os.stat(path).st_ino

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)


@pytest.fixture
def unshared() -> Iterator[Unshared]:
    u = Unshared()
    try:
        yield u
    finally:
        u.stop()


@pytest.fixture
def cleanup() -> Iterator[list]:
    """Callables run at teardown, last first."""
    todo: list = []
    yield todo
    for fn in reversed(todo):
        try:
            fn()
        except Exception:  # noqa: BLE001 - teardown goes on
            pass


def listener(h: Holder, addr: str = "127.0.0.1", port: int = PORT, proto: str = "tcp") -> int:
    sid = h.socket(proto, 4)
    assert h.bind(sid, addr, port) is None
    if proto == "tcp":
        assert h.listen(sid) is None
    return sid


def by_ns(snap) -> dict[int, list]:
    out: dict[int, list] = {}
    for r in snap.sockets:
        out.setdefault(r.netns.inode, []).append(r)
    return out


def test_three_kinds_found_named_and_read_with_the_same_port_in_each(netns, unshared, cleanup):
    h1 = Holder(netns)
    cleanup.append(h1.stop)
    h2 = Holder(unshared.path)
    cleanup.append(h2.stop)
    # A namespace held only by a bind mount: made by a process that then exits.
    mounted = Unshared()
    cleanup.append(mounted.stop)
    target = tempfile.NamedTemporaryFile(prefix="sscns", delete=False)
    target.close()
    cleanup.append(lambda: os.unlink(target.name))
    run_cmd("mount", "--bind", mounted.path, target.name)
    cleanup.append(lambda: run_cmd("umount", target.name, check=False))
    h3 = Holder(target.name)
    cleanup.append(h3.stop)
    s1, s2, s3 = listener(h1), listener(h2), listener(h3)
    mounted.stop()  # now the bind mount (and h3) keep it alive

    ns_ino = os.stat(netns.path).st_ino
    with MultiCollector() as multi:
        snap = multi.snapshot()
        refs = {v.ref.inode: v.ref for v in snap.namespaces.values()}
        assert refs[ns_ino].name == netns.name and refs[ns_ino].kind == "netns"
        assert refs[unshared.ino].kind == "process"
        assert refs[unshared.ino].name == f"sleep/{unshared.pid}"
        mount_ino = os.stat(target.name).st_ino
        assert refs[mount_ino].kind == "process"  # h3 is in it
        host = [v.ref for v in snap.namespaces.values() if v.ref.kind == "host"]
        assert len(host) == 1 and host[0].name == "host"
        # the same address and port in three namespaces: three sockets, each in its own
        groups = by_ns(snap)
        for ino, h, sid in ((ns_ino, h1, s1), (unshared.ino, h2, s2), (mount_ino, h3, s3)):
            mine = [r for r in groups[ino] if r.local_port == PORT]
            assert [(r.state, r.local_addr, r.inode) for r in mine] == [("LISTEN", "127.0.0.1", h.inode(sid))]
            assert mine[0].owners and mine[0].owners[0].pid == h.pid  # owners resolved host-wide
            assert mine[0].reuseaddr is False  # options read too
        # each namespace carries its own facts: the loopback is all these have
        assert set(snap.namespaces[ns_ino].facts.interfaces.values()) == {"lo"}
        sub = snap.for_netns(unshared.ino)
        assert {r.netns.inode for r in sub.sockets} == {unshared.ino}

        h3.stop()  # only the bind mount is left: a namespace without processes
        snap = multi.snapshot()
        ref = snap.namespaces[mount_ino].ref
        assert (ref.kind, ref.name) == ("mount", target.name)
        assert not by_ns(snap).get(mount_ino)


def test_vanishing_namespace_is_dropped_without_error(netns, unshared):
    h = Holder(unshared.path)
    try:
        listener(h)
        with MultiCollector() as multi:
            snap = multi.snapshot()
            assert unshared.ino in snap.namespaces
            h.stop()
            unshared.stop()
            ns_ino = os.stat(netns.path).st_ino
            netns.delete()
            snap = multi.snapshot()
            assert unshared.ino not in snap.namespaces and ns_ino not in snap.namespaces
            assert all(r.netns.inode not in (unshared.ino, ns_ino) for r in snap.sockets)
            assert any("is gone" in e for e in multi.events)
            # Nothing of ours keeps it alive: its collector (and sock_diag socket) are closed.
            assert all(k[1] not in (unshared.ino, ns_ino) for k in multi._children)
    finally:
        h.stop()


def test_list_all_netns_matches_ss_in_every_namespace(netns, unshared, cleanup):
    hs = [Holder(netns), Holder(unshared.path)]
    for h in hs:
        cleanup.append(h.stop)
        listener(h)
        listener(h, "0.0.0.0", PORT + 1)
        listener(h, "127.0.0.1", PORT + 2, proto="udp")
        c = h.socket("tcp", 4)
        h.connect(c, "127.0.0.1", PORT)  # an established pair (the accepted end stays queued)
    r = cli("list", "--all-netns", "--json")
    assert r.returncode == 0, r.stderr
    records = json.loads(r.stdout)
    mine = {os.stat(netns.path).st_ino: netns.path, unshared.ino: unshared.path}
    for ino, path in mine.items():
        got = Counter(
            (x["proto"], x["state"], f'{x["local_addr"]}:{x["local_port"]}', f'{x["peer_addr"]}:{x["peer_port"]}')
            for x in records if x["netns"]["inode"] == ino
        )
        want: Counter = Counter()
        for proto, flag in (("tcp", "-tanH"), ("udp", "-uanH")):
            out = subprocess.run(["nsenter", f"--net={path}", "ss", flag], capture_output=True, text=True,
                                 check=True).stdout
            for line in out.splitlines():
                f = line.split()
                peer = f[4].replace("*", "0") if f[4].endswith(":*") else f[4]
                want[(proto, f[0], f[3], peer.replace("0.0.0.0:0", "0.0.0.0:0"))] += 1
        assert got == want, (path, got, want)
    kinds = {x["netns"]["kind"] for x in records}
    assert {"host", "netns", "process"} <= kinds
    # every record of the contract, plus netns
    assert all(list(x)[-2:] == ["option_source", "netns"] and len(x) == 22 for x in records)
    # the text table has the column and the names
    r = cli("list", "--all-netns", "-p", str(PORT))
    assert r.returncode == 0 and r.stdout.startswith("Netns ") and netns.name[:15] in r.stdout


def test_check_netns_pid_agrees_with_a_real_bind(unshared, cleanup):
    h = Holder(unshared.path)
    cleanup.append(h.stop)
    listener(h, "0.0.0.0", PORT)
    probe = Holder(unshared.path)
    cleanup.append(probe.stop)
    for addr, port, expect_exit in (("0.0.0.0", PORT, 1), ("127.0.0.1", PORT, 1), ("127.0.0.1", PORT + 5, 0)):
        r = cli("check", "tcp", f"{addr}:{port}", "--netns", f"pid:{unshared.pid}", "--json")
        assert r.returncode == expect_exit, (r.stdout, r.stderr)
        sid = probe.socket("tcp", 4)
        err = probe.bind(sid, addr, port) or probe.listen(sid)
        probe.close(sid)
        assert (err is None) == (expect_exit == 0), err
    r = cli("why", str(PORT), "--netns", f"pid:{unshared.pid}")
    assert r.returncode == 0 and "LISTEN 0.0.0.0:%d" % PORT in r.stdout


@pytest.mark.parametrize("spec, message", [
    ("pid:abc", "bad pid"),
    ("pid:999999999", "no process"),
    ("no-such-ns-xyz", "no network namespace"),
    ("../etc", "no network namespace"),
])
def test_bad_netns_specs_are_one_line_and_status_2(spec, message):
    for cmd in (["list"], ["check", "tcp", "127.0.0.1:1"], ["why", "80"], ["tui"]):
        r = cli(*cmd, "--netns", spec)
        assert r.returncode == 2 and message in r.stderr and r.stderr.count("\n") == 1, (cmd, r.stderr)
    r = cli("list", "--all-netns", "--netns", "host")
    assert r.returncode == 2 and "exclude" in r.stderr


def _named_with_listener(cleanup: list) -> tuple[Netns, Holder]:
    """An `ip netns` namespace the test deletes and re-creates itself (not the fixture's),
    with a holder listening on PORT."""
    ns = Netns()
    ns.__enter__()
    cleanup.append(ns.delete)
    h = Holder(ns)
    cleanup.append(h.stop)
    listener(h, port=PORT)
    return ns, h


def test_a_recreated_namespace_is_read_with_the_bpf_iterators_again(cleanup):
    """Re-entering a re-created namespace closes the collector's own iterators; they are
    loaded again, not left closed (flags silently from pidfd_getfd, TIME-WAIT unknown)."""
    ns, h = _named_with_listener(cleanup)
    with Collector(netns=ns.name) as c:
        first = [r for r in c.snapshot().sockets if r.local_port == PORT][0]
        assert dict(first.option_source or {})["reuseaddr"] == "kernel"
        h.stop()
        ns.delete()
        ns.__enter__()
        _h, _lst, _client = _kernel_scene(cleanup, ns.path)
        snap = c.snapshot()
        assert snap.limitation and "re-created" in snap.limitation
        got = {r.state: (r.reuseaddr, r.reuseport, dict(r.option_source or {}).get("reuseaddr"))
               for r in snap.sockets if PORT in (r.local_port, r.peer_port)}
        assert got == {"LISTEN": (True, False, "kernel"), "TIME-WAIT": (False, True, "kernel")}, got
        assert [o.pid for r in snap.sockets if r.state == "LISTEN" for o in r.owners] == [_h.pid]
        assert c._task_files is not None and c._task_files.unavailable is None


def test_recreated_namespace_is_detected_and_reentered(cleanup):
    ns, h = _named_with_listener(cleanup)
    with Collector(netns=ns.name) as c, MultiCollector() as multi:
        first = c.snapshot()
        multi.snapshot()
        old = c.netns_inode
        assert [r.local_port for r in first.sockets] == [PORT]
        h.stop()
        ns.delete()
        ns.__enter__()  # the same name, a new namespace
        h2 = Holder(ns)
        cleanup.append(h2.stop)
        listener(h2, port=PORT + 9)
        second = c.snapshot()
        assert c.netns_inode != old and c.netns_inode == os.stat(ns.path).st_ino
        assert [r.local_port for r in second.sockets] == [PORT + 9]
        assert second.limitation and "re-created" in second.limitation
        snap = multi.snapshot()
        assert old not in snap.namespaces and c.netns_inode in snap.namespaces
        assert any("re-created" in e and ns.name in e for e in multi.events)
        assert snap.limitation and "re-created" in snap.limitation  # announced (the TUI's notice line)
    with Collector(netns=ns.name) as c3:
        ns.delete()  # deleted while watched: an error that says so, not the old data
        with pytest.raises(CollectorError, match="no longer exists"):
            c3.snapshot()
        assert c3._ns_fd is None and c3._sockdiag is None  # nothing of ours keeps it alive
        ns.__enter__()  # the name comes back: read again, and said so
        assert c3.snapshot().limitation and c3.netns_inode == os.stat(ns.path).st_ino


# ---------------------------------------------------------------- containers

CGROUP_ROOT = "/sys/fs/cgroup/unified"


def _cgroup_root() -> str:
    for root in (CGROUP_ROOT, "/sys/fs/cgroup"):
        if os.path.exists(os.path.join(root, "cgroup.procs")):
            return root
    pytest.fail("no writable cgroup2 hierarchy to place a fake container's process in")


def _state(root: str, runtime: str, cid: str) -> tuple[RuntimeRoots, str, str]:
    """Runtime state on disk for container `cid`; returns (roots, cgroup path, expected name)."""
    docker, task, podman = (os.path.join(root, x) for x in ("docker", "task", "podman"))
    if runtime == "docker":
        d = os.path.join(docker, "containers", cid)
        os.makedirs(d)
        with open(os.path.join(d, "config.v2.json"), "w") as f:
            json.dump({"ID": cid, "Name": "/shop-web-1", "Config": {"Hostname": cid[:12]}}, f)
        cg, name = f"sscdocker/docker-{cid}.scope", "shop-web-1"
    elif runtime == "containerd":
        d = os.path.join(task, "k8s.io", cid)
        os.makedirs(d)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump({"hostname": "api-5c8", "annotations": {
                "io.kubernetes.cri.container-type": "sandbox",
                "io.kubernetes.cri.sandbox-name": "api-5c8",
                "io.kubernetes.cri.sandbox-namespace": "shop"}}, f)
        cg, name = f"ssckubepods/pod1234/cri-containerd-{cid}.scope", "shop/api-5c8"
    else:
        os.makedirs(os.path.join(podman, "overlay-containers"))
        with open(os.path.join(podman, "overlay-containers", "containers.json"), "w") as f:
            json.dump([{"id": cid, "names": ["cache-redis"]}], f)
        cg, name = f"sscmachine/libpod-{cid}.scope", "cache-redis"
    return RuntimeRoots(docker=(docker,), containerd=(task,), podman=(podman,)), cg, name


@pytest.mark.parametrize("runtime", ["docker", "containerd", "podman"])
def test_container_names_from_cgroup_and_runtime_state(runtime, unshared, cleanup, tmp_path):
    cid = os.urandom(32).hex()
    roots, cg, name = _state(str(tmp_path), runtime, cid)
    root = _cgroup_root()
    path = os.path.join(root, cg)
    os.makedirs(path)
    top = os.path.join(root, cg.split("/")[0])

    def remove_cgroup() -> None:
        with open(os.path.join(root, "cgroup.procs"), "w") as f:
            f.write(str(unshared.pid))
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda t: -len(t[0])):
            os.rmdir(dirpath)

    cleanup.append(remove_cgroup)
    with open(os.path.join(path, "cgroup.procs"), "w") as f:
        f.write(str(unshared.pid))
    disc = Discovery(roots=roots)
    found = {n.ino: n for n in disc.discover()}
    ns = found[unshared.ino]
    assert (ns.ref.kind, ns.ref.name) == ("container", name)
    assert ns.container is not None and ns.container.id == cid and ns.container.runtime == runtime
    assert disc.resolve(name).ino == unshared.ino
    assert disc.resolve(cid[:10]).ino == unshared.ino
    with pytest.raises(NamespaceError):
        disc.resolve("nonexistent-container")
    # the same process outside any container: named after itself
    remove_cgroup()
    cleanup.remove(remove_cgroup)
    plain = {n.ino: n for n in Discovery(roots=roots).discover()}[unshared.ino]
    assert (plain.ref.kind, plain.ref.name) == ("process", f"sleep/{unshared.pid}")


def test_restarted_container_is_announced(cleanup, tmp_path):
    """A container restarted gets a new network namespace under the same name."""
    cid = os.urandom(32).hex()
    roots, cg, name = _state(str(tmp_path), "docker", cid)
    root = _cgroup_root()
    path = os.path.join(root, cg)
    os.makedirs(path)
    first = Unshared()
    cleanup.append(first.stop)
    second: list[Unshared] = []

    def remove_cgroup() -> None:
        for u in [first, *second]:
            u.stop()
        for dirpath, _dirs, _files in sorted(os.walk(os.path.join(root, cg.split("/")[0])), key=lambda t: -len(t[0])):
            os.rmdir(dirpath)

    cleanup.append(remove_cgroup)
    with open(os.path.join(path, "cgroup.procs"), "w") as f:
        f.write(str(first.pid))
    with MultiCollector(roots=roots) as multi:
        snap = multi.snapshot()
        assert snap.namespaces[first.ino].ref.name == name
        first.stop()
        again = Unshared()
        second.append(again)
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(again.pid))
        snap = multi.snapshot()
        assert first.ino not in snap.namespaces and snap.namespaces[again.ino].ref.name == name
        assert any(e.startswith(f"container {name}: its network namespace was deleted and re-created")
                   for e in multi.events)
        assert "re-created" in (snap.limitation or "")


def _kernel_scene(cleanup: list, path: str) -> tuple[Holder, int, int]:
    """In the namespace at `path`: a SO_REUSEADDR listener on PORT, and a client with
    SO_REUSEPORT that connected and closed first (TIME-WAIT: no descriptor to read)."""
    h = Holder(path)
    cleanup.append(h.stop)
    lst = h.socket("tcp", 4, reuseaddr=True)
    assert h.bind(lst, "127.0.0.1", PORT) is None and h.listen(lst) is None
    client = h.socket("tcp", 4, reuseport=True)
    h.connect(client, "127.0.0.1", PORT)
    served = h.accept(lst)
    h.close(client)  # the active close: the client's side waits in TIME-WAIT
    h.close(served)
    return h, lst, client


def test_every_namespace_reads_flags_buckets_and_owners_from_the_kernel(netns, unshared, cleanup):
    """--all-netns reads as one namespace does: flags of every socket (TIME-WAIT too) and
    the bind buckets from one set of BPF iterators, read inside each namespace; owners
    from the task-file iterator; nothing duplicated with pidfd_getfd."""
    scenes = {path: _kernel_scene(cleanup, path) for path in (netns.path, unshared.path)}
    keys = {(os.stat(p).st_dev, os.stat(p).st_ino) for p in scenes}
    with MultiCollector(only=keys) as multi:
        snap = multi.snapshot()
        assert multi._options is not None and multi._options.read_count == 0
        assert multi._owners is not None and multi._owners.fd_source is not None
        assert multi._task_files is not None and multi._task_files.unavailable is None
        again = multi.snapshot()  # a warm refresh reads the same
    groups = by_ns(snap)
    assert {r.netns.inode for r in again.sockets} == set(groups)
    for path, (h, lst, _client) in scenes.items():
        ino = os.stat(path).st_ino
        mine = [r for r in groups[ino] if PORT in (r.local_port, r.peer_port)]
        listen = [r for r in mine if r.state == "LISTEN"]
        waiting = [r for r in mine if r.state == "TIME-WAIT"]
        assert len(listen) == 1 and len(waiting) == 1, [(r.state, r.local_port, r.peer_port) for r in mine]
        assert (listen[0].reuseaddr, listen[0].reuseport) == (True, False)
        assert (waiting[0].reuseaddr, waiting[0].reuseport) == (False, True)  # kept from its socket
        for r in (listen[0], waiting[0]):
            assert dict(r.option_source or {}) == {"reuseaddr": "kernel", "reuseport": "kernel"}
        assert [o.pid for o in listen[0].owners] == [h.pid] and listen[0].inode == h.inode(lst)
        assert listen[0].bind_bucket is not None and listen[0].bind_bucket.port == PORT
        view = snap.namespaces[ino]
        assert view.tcp_buckets is not None and PORT in view.tcp_buckets
        # The same answers as a collector of that namespace alone.
        with Collector(netns=path) as one:
            alone = {r.cookie: (r.reuseaddr, r.reuseport, dict(r.option_source or {}), [o.pid for o in r.owners])
                     for r in one.snapshot().sockets}
        assert {r.cookie: (r.reuseaddr, r.reuseport, dict(r.option_source or {}), [o.pid for o in r.owners])
                for r in groups[ino]} == alone


def test_all_netns_without_bpf_reads_with_pidfd_and_says_time_wait_is_unknown(netns, cleanup):
    _kernel_scene(cleanup, netns.path)

    def rows(*extra: str) -> dict[str, dict]:
        out = cli("list", "--json", "--all-netns", *extra)
        assert out.returncode == 0, out.stderr
        mine = [r for r in json.loads(out.stdout)
                if r["netns"]["name"] == netns.name and PORT in (r["local_port"], r["peer_port"])]
        return {r["state"]: r for r in mine if r["state"] in ("LISTEN", "TIME-WAIT")}

    without = rows("--no-bpf")
    assert without["LISTEN"]["reuseaddr"] is True
    assert without["LISTEN"]["option_source"] == {"reuseaddr": "read", "reuseport": "read"}
    assert without["TIME-WAIT"]["reuseport"] is None and without["TIME-WAIT"]["option_source"] == {}
    with_bpf = rows()
    assert {k: (r["reuseaddr"], r["reuseport"], r["option_source"]["reuseaddr"]) for k, r in with_bpf.items()} == {
        "LISTEN": (True, False, "kernel"), "TIME-WAIT": (False, True, "kernel")}
