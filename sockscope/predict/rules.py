"""The kernel's bind()-conflict rules over possible worlds (shared/kernel-bind-rules.md §3-§5).

Each existing socket's unreadable options (SO_REUSEADDR, SO_REUSEPORT, IPV6_V6ONLY) are
expanded into the set of values they could have, narrowed by what the kernel itself
guarantees about sockets that coexist on a port. A rule is then evaluated in every
possible world: the same answer in all of them is definite, otherwise it is unknown and
we can say exactly which option it hangs on.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import Literal

from sockscope.model import SocketRecord

from .addresses import BindAddr, bind_addr, rcv_saddr_equal, tcp_overlap, udp_overlap

# (reuseaddr, reuseport, v6only, timewait) of an existing socket. `timewait` varies only for
# an orphan in FIN-WAIT-1/CLOSING/FIN-WAIT-2, which the kernel turns into a timewait socket
# any moment (and then stops comparing its uid).
World = tuple[bool, bool, bool, bool]
UdpOutcome = Literal["skip", "allow", "block"]
ATTRS = ("reuseaddr", "reuseport", "v6only", "timewait")
ORPHAN_TO_TIMEWAIT = frozenset({"FIN-WAIT-1", "CLOSING", "FIN-WAIT-2"})

# Request sockets (TCP_NEW_SYN_RECV) are not in the bind tables: their listener is.
NOT_IN_BIND_TABLES = frozenset({"SYN-RECV"})


@dataclass(slots=True)
class Me:
    """The candidate socket, normalised."""

    proto: str
    addr: BindAddr
    port: int
    reuseaddr: bool
    reuseport: bool
    v6only: bool
    ifindex: int
    uid: int


@dataclass(slots=True)
class Other:
    """An existing socket of the port as the bind tables see it."""

    rec: SocketRecord
    addr: BindAddr
    worlds: list[World]
    inferred: bool = False  # worlds narrowed by inference (not read, not remembered)

    @property
    def listening(self) -> bool:
        return self.rec.state == "LISTEN"

    @property
    def timewait(self) -> bool:
        """Is (or may become) a timewait socket."""
        return any(w[3] for w in self.worlds)

    def known(self, attr: str) -> bool | None:
        i = ATTRS.index(attr)
        values = {w[i] for w in self.worlds}
        return values.pop() if len(values) == 1 else None


def _choices(value: bool | None) -> tuple[bool, ...]:
    return (value,) if value is not None else (False, True)


def make_other(rec: SocketRecord) -> Other:
    addr = bind_addr(rec.family, rec.local_addr)
    v6: tuple[bool, ...]
    if rec.family == 4:
        v6 = (False,)
    elif addr.kind == "mapped":
        v6 = (False,)  # the kernel refuses a v4-mapped bind on a V6ONLY socket
    else:
        v6 = _choices(rec.v6only)
    if rec.timewait:
        tw: tuple[bool, ...] = (True,)
    elif rec.proto == "tcp" and rec.state in ORPHAN_TO_TIMEWAIT and not rec.inode:
        tw = (False, True)
    else:
        tw = (False,)
    worlds = [w for w in product(_choices(rec.reuseaddr), _choices(rec.reuseport), v6, tw)]
    return Other(rec, addr, worlds)


def devices_compatible(a: int, b: int) -> bool:
    return not a or not b or a == b


def overlap_certain(a: Other, b: Other) -> bool:
    """Do two existing sockets overlap whatever their unknown V6ONLY values are?"""
    for wa in a.worlds:
        for wb in b.worlds:
            if not (rcv_saddr_equal(a.addr, b.addr, wa[2], wb[2]) and rcv_saddr_equal(b.addr, a.addr, wb[2], wa[2])):
                return False
    return True


def infer_from_listeners(others: list[Other]) -> None:
    """Narrow the options of sockets that share a TCP port with a live listener.

    Two overlapping sockets coexist on a port only if the later bind passed the check
    against the earlier one (both SO_REUSEADDR, or both SO_REUSEPORT), or if one is the
    other's accepted child, which copies the listener's options. So a TIME_WAIT or
    connected socket beside a listener L with known options has L's options, or shares
    SO_REUSEADDR or SO_REUSEPORT with it. The kernel's per-port caches (§6) can bend this,
    which the predictor reports separately.
    """
    listeners = [o for o in others if o.listening and o.known("reuseaddr") is not None and o.known("reuseport") is not None]
    if not listeners:
        return
    for o in others:
        if o.listening or (o.known("reuseaddr") is not None and o.known("reuseport") is not None):
            continue
        for lst in listeners:
            if not devices_compatible(o.rec.ifindex, lst.rec.ifindex) or not overlap_certain(o, lst):
                continue
            lra, lrp = lst.known("reuseaddr"), lst.known("reuseport")
            kept = [w for w in o.worlds if (w[0], w[1]) == (lra, lrp) or (w[0] and lra) or (w[1] and lrp)]
            if kept and len(kept) < len(o.worlds):
                o.worlds = kept
                o.inferred = True


def tcp_blocks(me: Me, o: Other, w: World) -> bool:
    """inet_bind_conflict() plus the address test, in one world."""
    ra2, rp2, v6only2, tw2 = w
    if not devices_compatible(me.ifindex, o.rec.ifindex):
        return False
    if not tcp_overlap(me.addr, o.addr, me.v6only, v6only2):
        return False
    if me.reuseaddr and ra2 and not o.listening:
        return False
    if me.reuseport and rp2 and (tw2 or me.uid == o.rec.uid):
        return False
    return True


def udp_outcome(me: Me, o: Other, w: World) -> UdpOutcome:
    """One step of udp_lib_lport_inuse(): skip, or the first match decides."""
    ra2, rp2, v6only2, _ = w
    if me.reuseaddr and ra2:
        return "skip"
    if not devices_compatible(me.ifindex, o.rec.ifindex):
        return "skip"
    if not udp_overlap(me.addr, o.addr, me.v6only, v6only2):
        return "skip"
    if rp2 and me.reuseport and me.uid == o.rec.uid:
        return "allow"
    return "block"


def tcp_rule(me: Me, o: Other, w: World) -> str:
    """The short code for why `o` blocks `me` in world `w` (which must block)."""
    ra2, rp2, _, tw2 = w
    if me.reuseport and rp2 and not tw2 and me.uid != o.rec.uid:
        return "reuseport-uid"
    if me.reuseaddr and ra2 and o.listening:
        return "listener"
    if me.reuseaddr and not ra2:
        return "old-without-reuseaddr"
    if ra2 and not me.reuseaddr and not o.listening:
        return "new-without-reuseaddr"
    if me.reuseport != rp2:
        return "reuseport-one-side"
    return "in-use"


def udp_rule(me: Me, o: Other, w: World) -> str:
    ra2, rp2, _, _ = w
    if me.reuseport and rp2 and me.uid != o.rec.uid:
        return "reuseport-uid"
    if me.reuseaddr != ra2:
        return "old-without-reuseaddr" if me.reuseaddr else "new-without-reuseaddr"
    if me.reuseport != rp2:
        return "reuseport-one-side"
    return "in-use"


def fast_reuseport_may_admit(me: Me, others: list[Other]) -> Other | None:
    """§6: the port's SO_REUSEPORT fast path admits an SO_REUSEPORT bind without the full
    check when the last socket bound there had SO_REUSEPORT, the candidate's uid, and an
    address covering the candidate's. Which socket bound last is not visible, and a
    connected socket may have been bound to a wildcard before connect() narrowed its
    address, so any such socket that *may* match is reported."""
    if me.proto != "tcp" or not me.reuseport:
        return None
    # A listener without SO_REUSEPORT reset the fast path when it listened, and no socket
    # overlapping it could bind afterwards: such sockets cannot have set it.
    resetters = [o for o in others if o.listening and o.known("reuseport") is False]
    for o in others:
        if not any(w[1] for w in o.worlds):
            continue
        if not (o.timewait or o.rec.uid == me.uid):
            continue
        if not devices_compatible(me.ifindex, o.rec.ifindex):
            continue
        origins = [o.addr]
        if o.rec.state not in ("LISTEN", "UNCONN"):
            origins.append(bind_addr(o.rec.family, "0.0.0.0" if o.rec.family == 4 else "::"))
        for w in o.worlds:
            if not w[1]:
                continue
            for origin in origins:
                if any(_blocked_by_listener(origin, w[2], o, lst) for lst in resetters):
                    continue
                if rcv_saddr_equal(origin, me.addr, w[2], me.v6only, match_sk2_wildcard=False):
                    return o
    return None


def _blocked_by_listener(origin: BindAddr, v6only: bool, o: Other, lst: Other) -> bool:
    """Could a socket bound at `origin` never have been bound while `lst` listened?"""
    if lst is o or not devices_compatible(o.rec.ifindex, lst.rec.ifindex):
        return False
    return all(tcp_overlap(origin, lst.addr, v6only, lw[2]) for lw in lst.worlds)
