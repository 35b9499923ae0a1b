"""A lab for predictor tests: real sockets as several uids in one private namespace, the
real collector, and the real kernel's answer to a candidate bind()/listen()."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field

from kit import Holder, Netns
from predict_cases import agrees  # noqa: F401 - re-exported for the differential test

from sockscope.collectors.owners import OwnerIndex
from sockscope.collectors.snapshotter import Collector
from sockscope.model import Snapshot
from sockscope.predict import Candidate, Verdict, check

UIDS = (0, 1001, 1002)
DEV = "vt0"
DEV_V4 = "10.9.0.1"
DEV_V6 = "fd00:9::1"


@dataclass
class Sock:
    holder: Holder
    sid: int
    desc: str


@dataclass
class Lab:
    ns: Netns
    holders: dict[int, Holder]
    collector: Collector
    live: list[Sock] = field(default_factory=list)

    proc_view: str | None = None

    @classmethod
    def open(cls, ns: Netns, make_holder) -> "Lab":
        ns.add_dummy(DEV, f"{DEV_V4}/24", f"{DEV_V6}/64")
        holders = {uid: make_holder(uid) for uid in UIDS}
        collector = Collector(netns=ns.name)
        # Only the holders own sockets in this namespace, so the owner lookup reads only
        # their /proc entries: on a machine shared with benchmarks that hold 100,000
        # sockets, a whole-/proc fd scan per case would dominate the run. (The collector's
        # own discovery over all of /proc is tested in test_sockdiag.py.)
        view = tempfile.mkdtemp(prefix="sockscope-lab-proc-")
        for h in holders.values():
            os.symlink(f"/proc/{h.pid}", f"{view}/{h.pid}")
        collector._owners = OwnerIndex(proc=view)
        return cls(ns, holders, collector, proc_view=view)

    def close(self) -> None:
        self.collector.close()
        if self.proc_view:
            shutil.rmtree(self.proc_view, ignore_errors=True)

    # -- building scenarios ------------------------------------------------------------
    def socket(
        self,
        uid: int,
        proto: str,
        family: int,
        addr: str,
        port: int,
        reuseaddr: bool = False,
        reuseport: bool = False,
        v6only: bool | None = None,
        device: str | None = None,
        listen: bool = False,
    ) -> Sock | None:
        """A bound (and maybe listening) socket, or None if the kernel refused it."""
        h = self.holders[uid]
        sid = h.socket(proto, family, reuseaddr=reuseaddr, reuseport=reuseport, v6only=v6only, device=device)
        desc = f"uid{uid} {proto}{family} {addr}:{port} ra={int(reuseaddr)} rp={int(reuseport)} v6only={v6only} dev={device}"
        if h.bind(sid, addr, port) is not None or (listen and h.listen(sid) is not None):
            h.close(sid)
            return None
        s = Sock(h, sid, desc + (" LISTEN" if listen else ""))
        self.live.append(s)
        return s

    def listen(self, s: Sock) -> str | None:
        """listen() on a socket bound earlier: None, or the errno (the socket stays bound)."""
        err = s.holder.listen(s.sid)
        if err is None:
            s.desc += " LISTEN(late)"
        return err

    def close_sock(self, s: Sock) -> None:
        if s in self.live:
            self.live.remove(s)
            s.holder.close(s.sid)

    def close_all(self) -> None:
        for s in list(self.live):
            self.close_sock(s)

    def connect(self, uid: int, family: int, addr: str, port: int, bind: tuple[str, int] | None = None, **opts) -> Sock | None:
        h = self.holders[uid]
        sid = h.socket("tcp", family, **opts)
        if bind is not None and h.bind(sid, *bind) is not None:
            h.close(sid)
            return None
        if h.attempt("connect", sid, addr, port) is not None:
            h.close(sid)
            return None
        s = Sock(h, sid, f"client uid{uid} -> {addr}:{port}")
        self.live.append(s)
        return s

    def accept(self, listener: Sock, timeout: float = 0.5, as_uid: int | None = None) -> Sock | None:
        """Accept one connection; with `as_uid` (root listeners only) the accepting process
        runs with that fsuid, so the child belongs to another uid than its listener."""
        try:
            if as_uid is None:
                sid = listener.holder.call("accept", listener.sid, timeout)
            else:
                sid = listener.holder.call("accept_as", listener.sid, as_uid, timeout)
        except Exception:
            return None  # a reuseport sibling got the connection: it stays in that queue
        owner = "" if as_uid is None else f" accepted as uid{as_uid}"
        s = Sock(listener.holder, sid, f"child{owner} of {listener.desc}")
        self.live.append(s)
        return s

    # -- the question and the kernel's answer ------------------------------------------
    def snapshot(self) -> Snapshot:
        return self.collector.snapshot(fresh=True)

    def settle(self, port: int, timeout: float = 0.2) -> Snapshot:
        """A snapshot once no socket of `port` is mid-close (FIN-WAIT-1, CLOSING, LAST-ACK):
        on loopback those finish within microseconds, and a snapshot caught inside that
        window can only say "unknown" (the orphan may have become a TIME_WAIT socket by the
        time of the bind). Bounded: after `timeout` the last snapshot is returned as it is."""
        deadline = time.monotonic() + timeout
        while True:
            snap = self.snapshot()
            busy = any(r.proto == "tcp" and r.state in ("FIN-WAIT-1", "CLOSING", "LAST-ACK") for r in snap.on_port("tcp", port))
            if not busy or time.monotonic() > deadline:
                return snap
            time.sleep(0.002)

    def predict(self, cand: Candidate, snapshot: Snapshot | None = None) -> Verdict:
        return check(snapshot or self.snapshot(), cand)

    def really(self, cand: Candidate) -> tuple[str | None, str | None]:
        """Try the candidate as its uid: (stage, errno) of the first failure, or (None, None)."""
        h = self.holders[cand.uid]
        sid = h.socket(cand.proto, cand.family, reuseaddr=cand.reuseaddr, reuseport=cand.reuseport, v6only=cand.v6only, device=cand.device)
        try:
            err = h.attempt("bind", sid, cand.addr, cand.port)
            if err is not None:
                return "bind", err
            if cand.proto == "tcp" and cand.listen:
                err = h.attempt("listen", sid)
                if err is not None:
                    return "listen", err
            return None, None
        finally:
            h.close(sid)
