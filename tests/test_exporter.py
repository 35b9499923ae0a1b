"""The exporter scraped by a real Prometheus server (Debian package `prometheus`), whose
query API must return the series and values that `sockscope signals --json` computes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

pytestmark = pytest.mark.root
PROMETHEUS = shutil.which("prometheus")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query(base: str, expr: str) -> list[dict]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.load(resp)
    assert body["status"] == "success", body
    return body["data"]["result"]


def wait_value(base: str, expr: str, timeout: float = 40.0) -> float:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = query(base, expr)
        except OSError:
            result = []
        if result:
            assert len(result) == 1, result
            return float(result[0]["value"][1])
        if time.monotonic() > deadline:
            raise AssertionError(f"Prometheus has no {expr} after {timeout:.0f} s")
        time.sleep(0.5)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_prometheus_scrapes_the_exporter(netns, holders, tmp_path):
    if PROMETHEUS is None:
        pytest.fail("prometheus is not installed (apt-get install -y prometheus; .ci/run installs it)")
    server, client = holders(), holders()
    ls = server.socket("tcp", 4)
    assert server.bind(ls, "127.0.0.1", 8080) is None
    assert server.listen(ls, 1) is None  # holds 2
    for _ in range(2):
        s = client.socket("tcp", 4, nonblock=True)
        client.call("connect", s, "127.0.0.1", 8080)
    leak = server.socket("tcp", 4)
    assert server.bind(leak, "127.0.0.1", 7000) is None
    assert server.listen(leak, 16) is None
    for _ in range(3):
        s = client.socket("tcp", 4)
        client.connect(s, "127.0.0.1", 7000)
        server.accept(leak)
        client.close(s)
    time.sleep(0.2)

    exporter_port, prom_port = free_port(), free_port()
    textfile = tmp_path / "sockscope.prom"
    exporter = subprocess.Popen(
        [sys.executable, "-m", "sockscope", "exporter", "--netns", netns.name,
         "--listen", f"127.0.0.1:{exporter_port}", "--interval", "1", "--watch-port", "8080",
         "--watch-port", "8090", "--textfile", str(textfile)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: sockscope\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{exporter_port}']\n")
    prom = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{prom_port}"
    try:
        assert wait_value(base, 'up{job="sockscope"} == 1') == 1
        q = f'{{job="sockscope",netns="{netns.name}"'
        assert wait_value(base, 'sockscope_listen_queue_length' + q + ',port="8080"}') == 2
        assert wait_value(base, 'sockscope_listen_queue_capacity' + q + ',port="8080"}') == 2
        assert wait_value(base, 'sockscope_listen_queue_fill_ratio' + q + ',port="8080"}') == 1
        assert wait_value(base, 'sockscope_listener_port_sockets' + q + ',port="8080",state="LISTEN"}') == 1
        assert wait_value(base, 'sockscope_listener_port_sockets' + q + ',port="8080",state="ESTAB"}') == 2
        assert wait_value(base, 'sockscope_close_wait_sockets' + q + ',port="7000"}') == 3
        assert wait_value(base, 'sockscope_bind_verdict' + q + ',port="8080",verdict="conflict"}') == 1
        assert wait_value(base, 'sockscope_bind_verdict' + q + ',port="8090",verdict="ok"}') == 1
        assert wait_value(base, 'sockscope_collector_success' + q + ',collector="sockets"}') == 1
        assert wait_value(base, 'sockscope_collector_success' + q + ',collector="netstat"}') == 1
        to_7000 = wait_value(base, 'sockscope_ephemeral_ports_in_use' + q + ',dst="127.0.0.1",dport="7000"}')
        left_7000 = wait_value(base, 'sockscope_ephemeral_ports_left' + q + ',dst="127.0.0.1",dport="7000"}')
        assert wait_value(base, 'sockscope_tcpext_listen_overflows_total' + q + '}') >= 0
        budget = wait_value(base, 'sockscope_series_budget{job="sockscope"}')
        series = wait_value(base, 'sockscope_series{job="sockscope"}')
        assert 0 < series <= budget
        # the same values as `sockscope signals --json`
        out = subprocess.run([sys.executable, "-m", "sockscope", "signals", "--json", "--samples", "1",
                              "--netns", netns.name], capture_output=True, text=True, timeout=60, check=True)
        report = json.loads(out.stdout)
        lst = next(h for h in report["listeners"] if h["local_port"] == 8080)
        assert (lst["recv_q"], lst["capacity"], lst["fill"], lst["full"]) == (2, 2, 1.0, True)
        dest = next(d for d in report["ephemeral"] if d["dst"] == "127.0.0.1" and d["dport"] == 7000)
        assert (dest["in_use"], dest["ports_left"]) == (to_7000, left_7000) == (3, dest["usable"] - 3)
        cw = next(g for g in report["close_wait"] if g["pid"] == server.pid)
        assert cw["count"] == 3
        # the textfile for node_exporter holds the same families
        text = textfile.read_text()
        assert 'sockscope_listen_queue_length{addr="127.0.0.1",netns="%s",port="8080"} 2.0' % netns.name in text
        assert not list(tmp_path.glob("sockscope.prom.*"))  # written aside, renamed into place
    finally:
        stop(prom)
        stop(exporter)


def test_readme_alert_rules_are_valid(tmp_path):
    """The example alert rules in the README load in Prometheus (promtool check rules)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed (it comes with the prometheus package)")
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md")).read()
    start = readme.index("groups:\n  - name: sockscope")
    rules = tmp_path / "rules.yml"
    rules.write_text(readme[start:readme.index("```", start)])
    out = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_all_netns_exports_every_namespace_with_its_label(netns, holders, tmp_path):
    """`exporter --all-netns`: the listeners of two private namespaces (one `ip netns`, one
    held only by an `unshare --net` process) appear under their own netns labels, and the
    host's under "host"; `--netns pid:PID` reads just that process's namespace."""
    from kit import Netns

    with Netns() as second:
        a = holders(0)  # in the `netns` fixture's namespace
        la = a.socket("tcp", 4)
        assert a.bind(la, "127.0.0.1", 7811) is None and a.listen(la) is None
        # A namespace no name leads to: a process made with unshare --net, a listener in it.
        code = ("import socket,time; s=socket.socket(); s.bind(('127.0.0.1',7812)); s.listen(); "
                "print('ready', flush=True); time.sleep(120)")
        held = subprocess.Popen(["unshare", "--net", "sh", "-c", f"ip link set lo up && exec {sys.executable} -c \"{code}\""],
                                stdout=subprocess.PIPE, text=True)
        try:
            assert held.stdout is not None and held.stdout.readline().strip() == "ready"
            second.ip("link", "set", "lo", "up")
            out = subprocess.run([sys.executable, "-m", "sockscope", "exporter", "--all-netns", "--once"],
                                 capture_output=True, text=True, timeout=120)
            assert out.returncode == 0, out.stderr
            text = out.stdout
            labels = {line.split('netns="', 1)[1].split('"', 1)[0] for line in text.splitlines()
                      if 'netns="' in line and not line.startswith("#")}
            assert "host" in labels and second.name in labels, sorted(labels)
            assert netns.name in labels
            assert any(name.startswith("python") and name.endswith(f"/{held.pid}") or str(held.pid) in name
                       for name in labels), sorted(labels)
            one = subprocess.run([sys.executable, "-m", "sockscope", "exporter", "--netns", f"pid:{held.pid}",
                                  "--once"], capture_output=True, text=True, timeout=120)
            assert one.returncode == 0, one.stderr
            assert 'port="7812"' in one.stdout and 'port="7811"' not in one.stdout
            bad = subprocess.run([sys.executable, "-m", "sockscope", "exporter", "--all-netns", "--netns", "x",
                                  "--once"], capture_output=True, text=True, timeout=60)
            assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1
        finally:
            held.kill()
            held.wait(timeout=10)


def test_namespaces_share_one_set_of_bpf_programs(netns, holders, monkeypatch):
    """Every target's Collector reads flags and buckets with the same loaded iterators
    (opened once) and owners with the same task-file iterator, each in its namespace."""
    from kit import Holder, Netns

    from sockscope.collectors.bpf import iterators as its_mod
    from sockscope.exporter.runner import ExporterRunner

    opened: list[object] = []
    real_open = its_mod.SocketIterators.open.__func__  # type: ignore[attr-defined]

    def counting_open(cls, *a, **kw):
        got = real_open(cls, *a, **kw)
        opened.append(got)
        return got

    monkeypatch.setattr(its_mod.SocketIterators, "open", classmethod(counting_open))
    with Netns() as second:
        h2 = Holder(second)
        try:
            for h, port in ((holders(0), 7821), (h2, 7822)):
                s = h.socket("tcp", 4, reuseaddr=True)
                assert h.bind(s, "127.0.0.1", port) is None and h.listen(s) is None
            runner = ExporterRunner(lambda: [(netns.name, "a"), (second.name, "b")], interval=60)
            try:
                runner.collect_once()
                runner.collect_once()
                targets = list(runner._targets.values())
                assert len(targets) == 2 and len(opened) == 1
                for t, port in zip(targets, (7821, 7822)):
                    c = t.collector
                    assert c._kernel._loader is runner._iterators and c._task_files is None
                    assert c._owners.fd_source is runner._task_files
                    snap = c.snapshot()
                    rec = [r for r in snap.sockets if r.local_port == port][0]
                    assert rec.reuseaddr is True and dict(rec.option_source or {})["reuseaddr"] == "kernel"
                    assert rec.owners
                # One namespace's collector closed (its namespace gone): the others read on
                # with the same programs, which stay open.
                targets[0].collector.close()
                rec = [r for r in targets[1].collector.snapshot().sockets if r.local_port == 7822][0]
                assert dict(rec.option_source or {})["reuseaddr"] == "kernel" and rec.owners
                assert runner._iterators.iterators is not None and len(opened) == 1
                assert runner._task_files.unavailable is None
            finally:
                runner.close()
            assert runner._iterators.iterators is None  # closed with the runner, once
        finally:
            h2.stop()
