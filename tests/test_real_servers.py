"""Reload and restart questions beside real servers, judged by the kernel.

nginx (2 reuseport workers, as nobody), haproxy, redis (as uid 1002) and dnsmasq run in a
private namespace with traffic on loopback (tests/real_servers.py). For each of their
endpoints the predictor is asked what an operator asks before a reload or a restart
("would another worker bind?", "would the restarted server come back?") with every
combination of SO_REUSEADDR / SO_REUSEPORT, as root, as the server's uid and as another
uid, and each answer is compared with really trying the bind (and listen) as that uid.
Then the servers are killed with clients connected (redis -9: the TIME_WAIT +
SO_REUSEADDR story) and the restart questions are asked again.

A fresh snapshot follows every trial bind that went through: it rewrote the port's bind
bucket (inet_csk_update_fastreuse), which is exactly what the next answer depends on (a
refused bind leaves the bucket as it was).
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from dataclasses import replace

import pytest

import real_servers as rs
from predict_lab import agrees
from test_predict_diff import unknown_cause

from sockscope.collectors.snapshotter import Collector
from sockscope.predict import Candidate, check

pytestmark = pytest.mark.root

# (proto, family, address, port, v6only) of what the servers use and their neighbours.
ENDPOINTS = [
    ("tcp", 4, "0.0.0.0", rs.NGINX_PORT, None),
    ("tcp", 4, "127.0.0.1", rs.NGINX_PORT, None),
    ("tcp", 6, "::", rs.NGINX_PORT, False),
    ("tcp", 4, "127.0.0.1", rs.HAPROXY_PORT, None),
    ("tcp", 4, "0.0.0.0", rs.HAPROXY_PORT, None),
    ("tcp", 4, "127.0.0.1", rs.REDIS_PORT, None),
    ("tcp", 4, "0.0.0.0", rs.REDIS_PORT, None),
    ("udp", 4, "0.0.0.0", rs.DNS_PORT, None),
    ("udp", 6, "::", rs.DNS_PORT, True),
    ("udp", 4, "127.0.0.1", rs.DNS_PORT, None),
    ("tcp", 4, "0.0.0.0", rs.DNS_PORT, None),
    ("tcp", 6, "::", rs.DNS_PORT, True),
]
UIDS = (0, rs.NOBODY, 1001, rs.REDIS_UID)
OPTIONS = ((False, False), (True, False), (False, True), (True, True))


def _really(holder, cand: Candidate) -> tuple[str | None, str | None]:
    sid = holder.socket(cand.proto, cand.family, reuseaddr=cand.reuseaddr, reuseport=cand.reuseport, v6only=cand.v6only)
    try:
        err = holder.attempt("bind", sid, cand.addr, cand.port)
        if err is not None:
            return "bind", err
        if cand.proto == "tcp" and cand.listen:
            err = holder.attempt("listen", sid)
            if err is not None:
                return "listen", err
        return None, None
    finally:
        holder.close(sid)


def _ask_all(collector: Collector, holders: dict[int, object], phase: str, stats: Counter[str], wrong: list[str]) -> None:
    snap = None
    for proto, family, addr, port, v6only in ENDPOINTS:
        for ra, rp in OPTIONS:
            for uid in UIDS:
                cand = Candidate(proto, family, addr, port, reuseaddr=ra, reuseport=rp, v6only=v6only, uid=uid, listen=proto == "tcp")  # type: ignore[arg-type]
                if snap is None:
                    snap = collector.snapshot(fresh=True)
                verdict = check(snap, cand)
                if check(replace(snap, tcp_buckets=None, _by_port=None), cand).verdict == "unknown":
                    stats["unknown if the bind bucket were not read"] += 1
                stage, errno = _really(holders[uid], cand)
                if stage != "bind":
                    snap = None  # the trial bind went through and rewrote the port's bucket
                ok = agrees(verdict, stage, errno)
                stats[f"{phase} {verdict.verdict}"] += 1
                if any("per-socket rule alone would refuse" in n for n in verdict.notes):
                    stats["decided by the port's fast path"] += 1
                stats["questions"] += 1
                if ok is False:
                    wrong.append(f"[{phase}] {cand}: predicted {verdict.verdict} {verdict.errno} {verdict.stage}: "
                                 f"{verdict.explanation}\n  kernel: {stage} {errno}")
                elif ok is None:
                    stats["unknown"] += 1
                    stats[f"unknown: {unknown_cause(verdict)}"] += 1


def test_reload_and_restart_questions_beside_real_servers(netns, holders) -> None:
    missing = rs.missing_programs()
    if missing:
        pytest.fail(f"missing programs {missing}: apt-get install nginx-light haproxy redis-server dnsmasq-base (.ci/run does)")
    servers = rs.open_servers(netns)
    collector = Collector(netns=netns.name)
    stats: Counter[str] = Counter()
    wrong: list[str] = []
    try:
        by_uid = {uid: holders(uid) for uid in UIDS}
        servers.start_all()
        servers.traffic()
        snap = collector.snapshot(fresh=True)
        assert snap.tcp_buckets is not None, f"the BPF iterator did not run: {snap.limitation}"
        kernel = sum(1 for r in snap.sockets if (r.option_source or {}).get("reuseport") == "kernel")
        assert kernel == len(snap.sockets), "every socket's flags should come from the kernel"
        _ask_all(collector, by_uid, "reload", stats, wrong)
        # Restart: every server dies with its clients still connected; redis by SIGKILL.
        servers.running["redis"].stop(signal.SIGKILL)
        servers.running["haproxy"].stop(signal.SIGKILL)
        servers.running["nginx"].stop(signal.SIGTERM)
        servers.running["dnsmasq"].stop(signal.SIGTERM)
        time.sleep(0.2)
        _ask_all(collector, by_uid, "restart (clients connected)", stats, wrong)
        servers.release_clients()
        time.sleep(0.2)
        _ask_all(collector, by_uid, "restart (clients gone)", stats, wrong)
    finally:
        collector.close()
        rs.cleanup(servers)
    n = stats["questions"]
    print(f"\nreal servers: {n} questions, {len(wrong)} wrong, {stats['unknown']} unknown ({100 * stats['unknown'] / max(n, 1):.1f}%)")
    for key in sorted(stats):
        if key not in ("questions", "unknown"):
            print(f"  {key}: {stats[key]}")
    assert not wrong, f"{len(wrong)} wrong definite verdicts:\n" + "\n".join(wrong[:10])
    assert stats["unknown"] <= n * 0.005, "more than 0.5% unknown: " + ", ".join(k for k in stats if k.startswith("unknown: "))
