"""Container names from runtime state laid out on disk as Docker, containerd/CRI and Podman
keep it (fake ids in a temporary directory), and container ids from cgroup paths."""

from __future__ import annotations

import json
import os

from sockscope.collectors.containers import ContainerIndex, RuntimeRoots, container_id_from_cgroup

DOCKER_ID = "a" * 63 + "1"
CRI_ID = "b" * 63 + "2"
CRI_APP_ID = "b" * 63 + "3"
PODMAN_ID = "c" * 63 + "4"


def make_state(root: str) -> RuntimeRoots:
    docker = os.path.join(root, "docker")
    os.makedirs(os.path.join(docker, "containers", DOCKER_ID))
    with open(os.path.join(docker, "containers", DOCKER_ID, "config.v2.json"), "w") as f:
        json.dump({"ID": DOCKER_ID, "Name": "/web-1", "Config": {"Hostname": "a1b2c3d4e5f6"}}, f)
    task = os.path.join(root, "containerd", "io.containerd.runtime.v2.task")
    for cid, ann in (
        (CRI_ID, {"io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-name": "api-7d9f",
                  "io.kubernetes.cri.sandbox-namespace": "prod"}),
        (CRI_APP_ID, {"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-name": "api-7d9f",
                      "io.kubernetes.cri.sandbox-namespace": "prod", "io.kubernetes.cri.container-name": "server"}),
    ):
        os.makedirs(os.path.join(task, "k8s.io", cid))
        with open(os.path.join(task, "k8s.io", cid, "config.json"), "w") as f:
            json.dump({"ociVersion": "1.1.0", "hostname": "api-7d9f", "annotations": ann}, f)
    podman = os.path.join(root, "podman")
    os.makedirs(os.path.join(podman, "overlay-containers"))
    with open(os.path.join(podman, "overlay-containers", "containers.json"), "w") as f:
        json.dump([{"id": PODMAN_ID, "names": ["cache", "redis"], "image": "x"}], f)
    return RuntimeRoots(docker=(docker,), containerd=(task,), podman=(podman,))


def test_docker_containerd_podman_names(tmp_path):
    idx = ContainerIndex(make_state(str(tmp_path)))
    d = idx.lookup(DOCKER_ID)
    assert d is not None and (d.name, d.runtime, d.hostname) == ("web-1", "docker", "a1b2c3d4e5f6")
    k = idx.lookup(CRI_APP_ID)
    assert k is not None and (k.name, k.runtime, k.pod, k.pod_namespace, k.container) == (
        "prod/api-7d9f", "containerd", "api-7d9f", "prod", "server")
    s = idx.lookup(CRI_ID)
    assert s is not None and s.name == "prod/api-7d9f" and s.container is None
    p = idx.lookup(PODMAN_ID)
    assert p is not None and (p.name, p.runtime, p.aliases) == ("cache", "podman", ("redis",))
    assert idx.lookup("d" * 64) is None
    assert {c.id for c in idx.all_known()} == {DOCKER_ID, CRI_ID, CRI_APP_ID, PODMAN_ID}


def test_absent_or_broken_runtime_state_gives_no_name(tmp_path):
    roots = RuntimeRoots(docker=(str(tmp_path / "none"),), containerd=(str(tmp_path / "none2"),),
                         podman=(str(tmp_path / "none3"),))
    assert ContainerIndex(roots).lookup(DOCKER_ID) is None
    os.makedirs(tmp_path / "d" / "containers" / DOCKER_ID)
    (tmp_path / "d" / "containers" / DOCKER_ID / "config.v2.json").write_text("{not json")
    assert ContainerIndex(RuntimeRoots(docker=(str(tmp_path / "d"),), containerd=(), podman=())).lookup(DOCKER_ID) is None


def test_podman_table_reread_when_it_changes(tmp_path):
    roots = make_state(str(tmp_path))
    idx = ContainerIndex(roots)
    new_id = "e" * 64
    assert idx.lookup(new_id) is None
    path = os.path.join(roots.podman[0], "overlay-containers", "containers.json")
    with open(path, "w") as f:
        json.dump([{"id": new_id, "names": ["late"]}], f)
    os.utime(path, (1, 1))
    got = idx.lookup(new_id)
    assert got is not None and got.name == "late"


def test_container_id_from_cgroup_paths():
    cid = "0123456789abcdef" * 4
    assert container_id_from_cgroup(f"0::/docker/{cid}\n") == cid
    assert container_id_from_cgroup(f"0::/system.slice/docker-{cid}.scope\n") == cid
    assert container_id_from_cgroup(
        f"0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234.slice/cri-containerd-{cid}.scope\n"
    ) == cid
    assert container_id_from_cgroup(f"12:pids:/machine.slice/libpod-{cid}.scope\n0::/\n") == cid
    assert container_id_from_cgroup("0::/user.slice/user-1000.slice/session-2.scope\n") is None
    assert container_id_from_cgroup(f"0::/x/{cid}0\n") is None  # 65 hex digits: not an id


def test_nsfs_mounts_from_mountinfo(tmp_path):
    from sockscope.collectors.namespaces import nsfs_mounts

    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
        "601 25 0:4 net:[4026532288] /run/netns/web rw - nsfs nsfs rw\n"
        "602 25 0:4 net:[4026532290] /tmp/with\\040space rw - nsfs nsfs rw\n"
        "603 25 0:4 mnt:[4026532291] /tmp/mntns rw - nsfs nsfs rw\n"
        "garbage line\n"
    )
    assert nsfs_mounts(str(info)) == ["/run/netns/web", "/tmp/with space"]
    assert nsfs_mounts(str(tmp_path / "missing")) == []
