"""Columns of the socket panes: what each cell says and how each column sorts.

Pure functions of a row (a `SocketRecord`, or a `GroupRow` in the grouped TIME_WAIT
view) and a `RenderContext`; no Textual here, so the view builder thread can use the
sort keys and the table widget can render cells lazily, only for visible rows.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sockscope.formatting import endpoint, options_text, owner_text
from sockscope.model import SocketRecord, first_owner
from sockscope.sanitize import host_text

Ident = tuple


def ident(rec: Any) -> Ident:
    """A row's identity across refreshes: (proto, cookie); the 4-tuple when the cookie is
    unknown (the /proc/net collector); group rows carry their own."""
    cookie = getattr(rec, "cookie", None)
    if cookie:
        return (rec.proto, cookie)
    if isinstance(rec, SocketRecord):
        return rec.key
    return rec.identity


GroupKey = tuple[str, str, int, int]  # proto, local address, port, namespace inode (0: one namespace)


@dataclass(slots=True)
class GroupRow:
    """One line of the grouped TIME_WAIT view: the TIME_WAITs of one local port or one peer."""

    by: str  # "port" or "peer"
    value: str  # ":9000" or "127.0.0.1"
    count: int
    distinct: int  # peers of a port, or local ports of a peer
    min_left: float  # seconds, at the snapshot's time
    max_left: float
    filter_text: str  # the filter that shows exactly these sockets
    sort_value: Any = 0

    @property
    def identity(self) -> Ident:
        return ("group", self.by, self.value)


@dataclass(slots=True)
class RenderContext:
    """What cell functions need besides the row."""

    now: float = 0.0  # the clock, for TIME_WAIT seconds left
    full_taken_at: float = 0.0  # when the records' timers were read
    groups: dict[GroupKey, int] = field(default_factory=dict)  # reuseport groups
    rows: list[Any] = field(default_factory=list)
    index: int = 0  # the row being rendered


@dataclass(slots=True, frozen=True)
class Column:
    key: str
    label: str
    width: int  # minimum width
    text: Callable[[Any, RenderContext], str]
    sort: Callable[[Any], Any] | None = None
    flex: int = 0  # share of the room left over
    align: str = "left"
    priority: int = 0  # columns with a higher number are dropped first when narrow
    shorten: str = "end"  # "end" or "middle" (addresses: keep the port)
    max_width: int = 0  # 0 = no maximum


# ---------------------------------------------------------------- cell text


def local_text(r: SocketRecord, ctx: RenderContext | None = None) -> str:
    return endpoint(r.local_addr, r.local_port, r.family, r.device)


def peer_text(r: SocketRecord, ctx: RenderContext | None = None) -> str:
    return endpoint(r.peer_addr, r.peer_port, r.family, peer=True)


def owner_cell(r: SocketRecord, ctx: RenderContext | None = None) -> str:
    return owner_text(r)


def user_text(r: SocketRecord, ctx: RenderContext | None = None) -> str:
    for o in r.owners:
        if o.user:
            return host_text(o.user)
    return str(r.uid)


def net_text(r: SocketRecord, ctx: RenderContext | None = None) -> str:
    return f"{r.proto}{r.family}"


def seconds_left(r: SocketRecord, ctx: RenderContext) -> float | None:
    if r.timer is None:
        return None
    return max(0.0, r.timer.expires_ms / 1000.0 - max(0.0, ctx.now - ctx.full_taken_at))


def left_text(r: SocketRecord, ctx: RenderContext) -> str:
    left = seconds_left(r, ctx)
    return "" if left is None else f"{left:.0f}s"


def timer_text(r: SocketRecord, ctx: RenderContext) -> str:
    if r.timer is None:
        return ""
    left = seconds_left(r, ctx)
    return f"{r.timer.kind} {left:.1f}s"


def group_key(r: SocketRecord) -> GroupKey:
    """Sockets that share protocol, address and port in one network namespace: a
    SO_REUSEPORT group (the same address and port in two namespaces is two sockets apart)."""
    return (r.proto, r.local_addr, r.local_port, r.netns.inode if r.netns is not None else 0)


def group_text(r: SocketRecord, ctx: RenderContext) -> str:
    key = group_key(r)
    n = ctx.groups.get(key, 1)
    if n < 2:
        return ""
    rows, i = ctx.rows, ctx.index

    def same(j: int) -> bool:
        if 0 <= j < len(rows):
            o = rows[j]
            return isinstance(o, SocketRecord) and group_key(o) == key
        return False

    up, down = same(i - 1), same(i + 1)
    glyph = "┌" if down and not up else "│" if up and down else "└" if up else "×"
    return f"{glyph}{n}"


def count(n: int) -> str:
    return f"{n:,}"


# ---------------------------------------------------------------- sort keys


def addr_key(addr: str, _pton: Callable[[int, str], bytes] = socket.inet_pton,
             _from: Callable[..., int] = int.from_bytes) -> int:
    """The address's version and value in one int, (version << 128) | address: it sorts as
    (version, address) would, and compares in one step. (Sorting runs in C and holds the
    GIL throughout: with 100,000 rows, keys of nested tuples kept the UI waiting 40-50 ms.)
    Without a cache: inet_pton costs ~0.4 µs, and a memo held every peer ever seen (this
    was an lru_cache of 65,536: ~10 MB kept after churn, and ~7 µs a lookup once the peers
    outnumbered it). An unparsable address sorts last."""
    try:
        if ":" in addr:
            return (6 << 128) | _from(_pton(socket.AF_INET6, addr), "big")
        return (4 << 128) | _from(_pton(socket.AF_INET, addr), "big")
    except (OSError, ValueError):
        return 9 << 128


# Sort keys of several fields are one int too, each field in its own bits: addr_key() is
# below 2**132, ports below 2**16.


def local_key(r: SocketRecord) -> int:
    return (addr_key(r.local_addr) << 16) | r.local_port


def peer_key(r: SocketRecord) -> int:
    return (addr_key(r.peer_addr) << 16) | r.peer_port


def port_key(r: SocketRecord) -> int:
    """Port, then address, then protocol (TCP before UDP)."""
    return (((r.local_port << 132) | addr_key(r.local_addr)) << 1) | (r.proto == "udp")


def group_sort_key(r: SocketRecord) -> int:
    """Protocol (TCP first), then address, then port."""
    return ((r.proto == "udp") << 148) | (addr_key(r.local_addr) << 16) | r.local_port


def owner_key(r: SocketRecord) -> tuple:
    o = first_owner(r.owners)
    if o is None:
        return ("\uffff", 0)
    return (o.process, o.pid)


def user_key(r: SocketRecord) -> str:
    return user_text(r)


def expires_key(r: SocketRecord) -> int:
    return r.timer.expires_ms if r.timer is not None else -1


def attr(name: str) -> Callable[[Any], Any]:
    def key(r: Any) -> Any:
        return getattr(r, name)

    return key


# ---------------------------------------------------------------- the panes' columns

NET = Column("net", "Net", 4, net_text, lambda r: (r.proto, r.family))
STATE = Column("state", "State", 10, lambda r, c: r.state, attr("state"), max_width=10)
LOCAL = Column("local", "Local", 18, local_text, local_key, flex=3, shorten="middle")
PEER = Column("peer", "Peer", 18, peer_text, peer_key, flex=3, shorten="middle")
OPT = Column("opt", "Opt", 3, lambda r, c: options_text(r), options_text)
OWNER = Column("owner", "Owner", 12, owner_cell, owner_key, flex=2)
USER = Column("user", "User", 8, user_text, user_key, priority=1, max_width=12)
RECVQ = Column("recv_q", "Recv-Q", 6, lambda r, c: str(r.recv_q), attr("recv_q"), align="right", priority=1)
SENDQ = Column("send_q", "Send-Q", 6, lambda r, c: str(r.send_q), attr("send_q"), align="right", priority=1)
BACKLOG = Column("backlog", "Queue", 9, lambda r, c: f"{r.recv_q}/{r.send_q}" if r.proto == "tcp" else str(r.recv_q),
                 attr("recv_q"), align="right", priority=3)
TIMER = Column("timer", "Timer", 12, timer_text, expires_key, priority=2)
LEFT = Column("left", "Left", 5, left_text, expires_key, align="right")
UID = Column("uid", "UID", 6, lambda r, c: str(r.uid), attr("uid"), align="right", priority=4)
INODE = Column("inode", "Inode", 9, lambda r, c: str(r.inode), attr("inode"), align="right", priority=5)
COOKIE = Column("cookie", "Cookie", 10, lambda r, c: str(r.cookie), attr("cookie"), align="right", priority=6)
GROUP = Column("group", "Grp", 3, group_text, group_sort_key)
STATE6 = Column("state", "State", 6, STATE.text, STATE.sort)
LOCAL_BY_PORT = Column("local", "Local", 18, local_text, port_key, flex=3, shorten="middle")

NETNS = Column("netns", "Netns", 12, lambda r, c: host_text(r.netns.name) if r.netns is not None else "",
               lambda r: (r.netns.name, r.netns.inode) if r.netns is not None else ("", 0), max_width=20)

LISTENING = (GROUP, NET, STATE6, LOCAL_BY_PORT, OPT, OWNER, USER, BACKLOG, UID, INODE, COOKIE)
ESTABLISHED = (NET, LOCAL, PEER, RECVQ, SENDQ, OWNER, USER, OPT, TIMER, UID, INODE, COOKIE)
TIMEWAIT = (NET, LOCAL, PEER, LEFT, OPT, COOKIE)
OTHER = (NET, STATE, LOCAL, PEER, RECVQ, SENDQ, TIMER, OWNER, USER, UID, COOKIE)


def _left_range(g: GroupRow, ctx: RenderContext) -> str:
    gone = max(0.0, ctx.now - ctx.full_taken_at)
    lo, hi = max(0.0, g.min_left - gone), max(0.0, g.max_left - gone)
    return f"{lo:.0f}-{hi:.0f}s"


TW_GROUPS = (
    Column("by", "By", 4, lambda g, c: g.by, attr("by")),
    Column("value", "Local port / peer address", 20, lambda g, c: g.value, attr("sort_value"), flex=3,
           shorten="middle"),
    Column("count", "TIME_WAITs", 10, lambda g, c: count(g.count), attr("count"), align="right"),
    Column("distinct", "Spread", 12,
           lambda g, c: f"{g.distinct:,} {'peer' if g.by == 'port' else 'port'}{'' if g.distinct == 1 else 's'}", attr("distinct"), align="right"),
    Column("left", "Left", 9, _left_range, attr("min_left"), align="right"),
)

PANES: tuple[str, ...] = ("listening", "established", "timewait", "other")
PANE_TITLES = {"listening": "Listening", "established": "Established", "timewait": "TIME_WAIT", "other": "Other"}
PANE_COLUMNS: dict[str, tuple[Column, ...]] = {
    "listening": LISTENING,
    "established": ESTABLISHED,
    "timewait": TIMEWAIT,
    "other": OTHER,
    "timewait-groups": TW_GROUPS,
}
# Default sort per pane: (column key, reverse)
DEFAULT_SORT: dict[str, tuple[str, bool]] = {
    "listening": ("local", False),
    "established": ("local", False),
    "timewait": ("left", False),
    "other": ("state", False),
    "timewait-groups": ("count", True),
}
LISTEN_STATES = frozenset({"LISTEN", "UNCONN"})


def pane_of(rec: SocketRecord) -> str:
    state = rec.state
    if state in LISTEN_STATES:
        return "listening"
    if state == "ESTAB":
        return "established" if rec.proto == "tcp" else "other"
    if state == "TIME-WAIT":
        return "timewait"
    return "other"


def with_netns(columns: tuple[Column, ...], show: bool) -> tuple[Column, ...]:
    """A pane's columns, with the namespace first when several namespaces are watched."""
    return (NETNS, *columns) if show and columns is not TW_GROUPS else columns


def column(columns: tuple[Column, ...], key: str) -> Column:
    if key == "netns":
        return NETNS
    for c in columns:
        if c.key == key:
            return c
    return columns[0]
