"""A lab for predictor tests: real sockets as several uids in one private namespace, the
real collector, and the real kernel's answer to a candidate bind()/listen()."""

from __future__ import annotations

from dataclasses import dataclass, field

from kit import Holder, Netns
from predict_cases import agrees  # noqa: F401 - re-exported for the differential test

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

    @classmethod
    def open(cls, ns: Netns, make_holder) -> "Lab":
        ns.add_dummy(DEV, f"{DEV_V4}/24", f"{DEV_V6}/64")
        holders = {uid: make_holder(uid) for uid in UIDS}
        return cls(ns, holders, Collector(netns=ns.name))

    def close(self) -> None:
        self.collector.close()

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

    def accept(self, listener: Sock, timeout: float = 0.5) -> Sock | None:
        try:
            sid = listener.holder.call("accept", listener.sid, timeout)
        except Exception:
            return None  # a reuseport sibling got the connection: it stays in that queue
        s = Sock(listener.holder, sid, f"child of {listener.desc}")
        self.live.append(s)
        return s

    # -- the question and the kernel's answer ------------------------------------------
    def snapshot(self) -> Snapshot:
        return self.collector.snapshot()

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
