"""Sentences for people: who blocks, by which rule, and what to do instead."""

from __future__ import annotations

from sockscope.model import SocketRecord
from sockscope.sanitize import host_text

from .addresses import format_endpoint
from .rules import ATTRS, Me, Other, World

OPTION_NAMES = {"reuseaddr": "SO_REUSEADDR", "reuseport": "SO_REUSEPORT", "v6only": "IPV6_V6ONLY", "timewait": ""}

RULE_TEXT = {
    "in-use": "it already uses this address and port, and neither SO_REUSEADDR nor SO_REUSEPORT is set on both sockets",
    "listener": (
        "it is listening: on Linux SO_REUSEADDR never lets a second socket bind an address a "
        "listener uses (SO_REUSEPORT on both, under one uid, does)"
    ),
    "old-without-reuseaddr": (
        "it was opened without SO_REUSEADDR, and Linux needs the option on both sockets, "
        "the old one included (BSD and macOS only look at the new one)"
    ),
    "new-without-reuseaddr": "it has SO_REUSEADDR and is not listening, so SO_REUSEADDR on the new socket too would let both bind",
    "reuseport-one-side": "SO_REUSEPORT shares a port only when every socket of the group sets it, and here only one side does",
    "reuseport-uid": "both set SO_REUSEPORT, but a reuseport group needs one owner uid and they differ",
}


def describe(rec: SocketRecord) -> str:
    """"TIME-WAIT 127.0.0.1:8080 -> 127.0.0.1:51234 (pid 812 nginx, user www, A P)"."""
    local = format_endpoint(rec.family, rec.local_addr, rec.local_port)
    if rec.device:
        local += f"%{host_text(rec.device)}"
    text = f"{rec.proto.upper()} {rec.state} {local}"
    if rec.peer_port:
        text += f" -> {format_endpoint(rec.family, rec.peer_addr, rec.peer_port)}"
    who: list[str] = []
    if rec.owners:
        first = rec.owners[0]
        who.append(f"pid {first.pid} {host_text(first.process)}")
        if len(rec.owners) > 1:
            who.append(f"+{len(rec.owners) - 1} more processes")
        if first.user:
            who.append(f"user {host_text(first.user)}")
    elif not rec.timewait:
        who.append(f"uid {rec.uid}, no process found")
    who.append(options_text(rec))
    if rec.timewait and rec.timer is not None:
        who.append(f"{rec.timer.expires_ms / 1000:.0f} s left")
    return f"{text} ({', '.join(who)})"


def options_text(rec: SocketRecord) -> str:
    parts = []
    for attr, name in (("reuseaddr", "SO_REUSEADDR"), ("reuseport", "SO_REUSEPORT")):
        value = getattr(rec, attr)
        parts.append(f"{name} {'on' if value else 'off' if value is False else 'unknown'}")
    if rec.family == 6:
        parts.append(f"V6ONLY {'on' if rec.v6only else 'off' if rec.v6only is False else 'unknown'}")
    return ", ".join(parts)


def unless_clause(o: Other, free: list[World]) -> str:
    """What unknown option value would make `o` harmless: "unless it has SO_REUSEADDR"."""
    clauses: list[str] = []
    for i, attr in enumerate(ATTRS):
        for value in (True, False):
            matching = [w for w in o.worlds if w[i] == value]
            if matching and len(matching) < len(o.worlds) and all(w in free for w in matching):
                if attr == "timewait":
                    if value:
                        clauses.append("turns into a TIME_WAIT socket first (an orphan closing), whose uid no longer counts")
                    continue
                clauses.append(f"{'has' if value else 'lacks'} {OPTION_NAMES[attr]}")
    origin = "came from a socket that " if o.rec.timewait else ""
    if not clauses:
        return f"depending on options that could not be read ({options_text(o.rec)})"
    return f"unless it {origin}{' or '.join(clauses)}"


def unknown_reason(o: Other, rule: str, free: list[World]) -> str:
    if o.rec.timewait:
        why = "TIME_WAIT sockets have no descriptor to read"
    elif o.timewait:
        why = "it is closing and may become a TIME_WAIT socket before your bind"
    else:
        why = "its options could not be read"
    return f"may block ({why}): it blocks {unless_clause(o, free)}; if it blocks, {RULE_TEXT.get(rule, rule)}"


def candidate_text(me: Me, listen: bool) -> str:
    opts = [name for attr, name in (("reuseaddr", "SO_REUSEADDR"), ("reuseport", "SO_REUSEPORT")) if getattr(me, attr)]
    if me.addr.family == 6 and me.v6only:
        opts.append("IPV6_V6ONLY")
    what = "listener" if (listen and me.proto == "tcp") else "socket"
    text = f"a {me.proto.upper()} {what} on {format_endpoint(me.addr.family, me.addr.text, me.port)}"
    if opts:
        text += " with " + " and ".join(opts)
    return text + f" as uid {me.uid}"
