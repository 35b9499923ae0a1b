"""A hand-built, deterministic Snapshot for the TUI's SVG snapshot tests and unit tests
(fixed pids, cookies and times: nothing depends on the machine)."""

from __future__ import annotations

from sockscope.model import HostFacts, Owner, Snapshot, SocketRecord, Timer

T0 = 1_700_000_000.0


def rec(proto, family, state, local, lport, peer, pport, *, uid=0, cookie, inode=0, owners=(), ra=None, rp=None,
        v6=None, dev=None, rq=0, sq=0, timer=None, src="read"):
    r = SocketRecord(proto, family, state, local, lport, peer, pport, uid, inode, cookie,
                     ifindex=3 if dev else 0, device=dev, v6only=v6, reuseaddr=ra, reuseport=rp,
                     owners=list(owners), recv_q=rq, send_q=sq, timer=timer)
    if ra is not None:
        r.option_source = {"reuseaddr": src, "reuseport": src}
        if v6 is not None:
            r.option_source["v6only"] = "diag"
    return r


def nginx(pid, fd=6):
    return Owner(pid, fd, "nginx", "www-data", ["nginx: worker process"])


def snapshot(limitation: str | None = None) -> Snapshot:
    socks = []
    # A SO_REUSEPORT group of three nginx workers, and the master's plain listener.
    for i, pid in enumerate((812, 813, 814)):
        socks.append(rec("tcp", 4, "LISTEN", "0.0.0.0", 443, "0.0.0.0", 0, uid=33, cookie=1000 + i, inode=5000 + i,
                         owners=[nginx(pid)], ra=True, rp=True, sq=511))
    socks.append(rec("tcp", 6, "LISTEN", "::", 80, "::", 0, cookie=1010, inode=5010,
                     owners=[Owner(901, 4, "httpd", "root", ["/usr/sbin/httpd", "-DFOREGROUND"])],
                     ra=True, rp=False, v6=True, sq=128))
    socks.append(rec("tcp", 4, "LISTEN", "127.0.0.1", 5432, "0.0.0.0", 0, uid=112, cookie=1011, inode=5011,
                     owners=[Owner(640, 7, "postgres", "postgres", None)], ra=True, rp=False, sq=244))
    socks.append(rec("tcp", 4, "LISTEN", "10.0.0.5", 8080, "0.0.0.0", 0, uid=1000, cookie=1012, inode=5012,
                     owners=[Owner(2001, 3, "python3", "alice", None)], ra=None, rp=None, sq=5, src="read"))
    socks.append(rec("udp", 4, "UNCONN", "127.0.0.53", 53, "0.0.0.0", 0, uid=101, cookie=1013, inode=5013,
                     owners=[Owner(377, 12, "systemd-resolve", "systemd-resolve", None)], ra=True, rp=False,
                     dev="lo"))
    socks.append(rec("udp", 6, "UNCONN", "::", 5353, "::", 0, cookie=1014, inode=5014,
                     owners=[Owner(420, 11, "avahi-daemon", "avahi", None)], ra=True, rp=True, v6=False))
    # Established: clients of nginx and postgres.
    for i in range(6):
        socks.append(rec("tcp", 4, "ESTAB", "10.0.0.5", 443, f"192.0.2.{10 + i}", 50000 + i, uid=33, cookie=2000 + i,
                         inode=6000 + i, owners=[nginx(812 + i % 3, 20 + i)], ra=True, rp=True,
                         rq=i * 10, sq=(5 - i) * 100, timer=Timer("keepalive", 7_000_000 - i * 1000)))
    socks.append(rec("tcp", 4, "ESTAB", "127.0.0.1", 5432, "127.0.0.1", 41000, uid=112, cookie=2010, inode=6010,
                     owners=[Owner(640, 9, "postgres", "postgres", None)], ra=False, rp=False))
    socks.append(rec("tcp", 4, "ESTAB", "127.0.0.1", 41000, "127.0.0.1", 5432, uid=1000, cookie=2011, inode=6011,
                     owners=[Owner(2001, 5, "python3", "alice", None)], ra=False, rp=False))
    # TIME_WAIT: many on :443 from a few peers, a few on :80.
    for i in range(40):
        socks.append(rec("tcp", 4, "TIME-WAIT", "10.0.0.5", 443, f"192.0.2.{20 + i % 4}", 40000 + i, cookie=3000 + i,
                         timer=Timer("timewait", 60_000 - i * 1000)))
    for i in range(5):
        socks.append(rec("tcp", 6, "TIME-WAIT", "2001:db8::5", 80, "2001:db8::99", 42000 + i, cookie=3100 + i,
                         timer=Timer("timewait", 30_000 - i * 2000)))
    # Other states.
    socks.append(rec("tcp", 4, "CLOSE-WAIT", "127.0.0.1", 41010, "127.0.0.1", 8080, uid=1000, cookie=4000,
                     inode=7000, owners=[Owner(2001, 8, "python3", "alice", None)], ra=False, rp=False, rq=1))
    socks.append(rec("tcp", 4, "FIN-WAIT-2", "127.0.0.1", 8080, "127.0.0.1", 41010, cookie=4001,
                     timer=Timer("timewait", 50_000)))
    socks.append(rec("tcp", 4, "SYN-SENT", "10.0.0.5", 39000, "198.51.100.7", 443, uid=1000, cookie=4002,
                     inode=7002, owners=[Owner(2002, 4, "curl", "alice", None)], ra=False, rp=False,
                     timer=Timer("on", 900)))
    socks.append(rec("udp", 6, "ESTAB", "2001:db8::5", 51000, "2001:db8::53", 53, uid=101, cookie=4003, inode=7003,
                     owners=[Owner(377, 14, "systemd-resolve", "systemd-resolve", None)], ra=False, rp=False,
                     v6=True))
    facts = HostFacts(interfaces={1: "lo", 3: "eth0"}, complete=True)
    return Snapshot(sockets=socks, taken_at=T0, netns="demo", facts=facts, collector="sockdiag",
                    limitation=limitation)


def signals_snapshot() -> Snapshot:
    """snapshot() plus what raises each kind of signal: a full accept queue, a destination
    near ephemeral exhaustion, a listener inside the ephemeral range."""
    snap = snapshot()
    socks = list(snap.sockets)
    socks.append(rec("tcp", 4, "LISTEN", "0.0.0.0", 9000, "0.0.0.0", 0, cookie=6000, inode=6000,
                     owners=[Owner(3001, 5, "api", "root", None)], ra=True, rp=False, rq=129, sq=128))
    socks.append(rec("tcp", 4, "LISTEN", "0.0.0.0", 40005, "0.0.0.0", 0, cookie=6001, inode=6001,
                     owners=[Owner(3002, 5, "cache", "root", None)], ra=True, rp=False, sq=64))
    for i in range(8):
        socks.append(rec("tcp", 4, "ESTAB" if i < 6 else "TIME-WAIT", "10.0.0.5", 40000 + i + (i >= 5),
                         "10.0.0.9", 5432, cookie=6100 + i, owners=[Owner(3003, 10 + i, "worker", "app", None)] if i < 6 else (),
                         timer=Timer("timewait", 41_000) if i >= 6 else None))
    facts = snap.facts
    facts.ip_local_port_range = (40000, 40009)
    return Snapshot(sockets=socks, taken_at=snap.taken_at, netns=snap.netns, facts=facts,
                    collector=snap.collector, limitation=snap.limitation)
