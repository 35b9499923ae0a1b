"""Sentences for people: who blocks, by which rule, and what to do instead."""

from __future__ import annotations

from sockscope.formatting import endpoint
from sockscope.model import SocketRecord, first_owner
from sockscope.sanitize import host_text

from .addresses import format_endpoint
from .rules import ATTRS, Me, Other, World

OPTION_NAMES = {"reuseaddr": "SO_REUSEADDR", "reuseport": "SO_REUSEPORT", "v6only": "IPV6_V6ONLY", "timewait": ""}

ERRNO_TEXT = {
    "EADDRINUSE": "Address already in use",
    "EADDRNOTAVAIL": "Cannot assign requested address",
    "EACCES": "Permission denied",
    "EINVAL": "Invalid argument",
}

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


def local_text(rec: SocketRecord) -> str:
    """"TCP TIME-WAIT 127.0.0.1:8080": protocol, state and local endpoint (device after the
    address, as `ss` and `list` write it)."""
    local = endpoint(rec.local_addr, rec.local_port, rec.family, host_text(rec.device) if rec.device else None)
    return f"{rec.proto.upper()} {rec.state} {local}"


def owner_parts(rec: SocketRecord) -> list[str]:
    """["pid 812 nginx", "user www"], sanitized: process and user names come from the host."""
    who: list[str] = []
    first = first_owner(rec.owners)
    if first is not None:
        who.append(f"pid {first.pid} {host_text(first.process)}")
        others = len({o.pid for o in rec.owners}) - 1
        if others:
            who.append(f"+{others} more processes")
        if first.user:
            who.append(f"user {host_text(first.user)}")
    elif not rec.timewait:
        who.append(f"uid {rec.uid}, no process found")
    return who


def describe(rec: SocketRecord) -> str:
    """"TCP TIME-WAIT 127.0.0.1:8080 -> 127.0.0.1:51234 (SO_REUSEADDR on, ..., 41 s left)"."""
    text = local_text(rec)
    if rec.peer_port:
        text += f" -> {endpoint(rec.peer_addr, rec.peer_port, rec.family)}"
    who = owner_parts(rec)
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


def _condition(worlds: list[World], among: list[World]) -> str:
    """What the worlds in `worlds` share that the rest of `among` does not: "has SO_REUSEADDR"."""
    parts: list[str] = []
    for i, attr in enumerate(ATTRS):
        values = {w[i] for w in worlds}
        if len(values) == 1 and len({w[i] for w in among}) > 1:
            value = values.pop()
            if attr == "timewait":
                parts.append("turns into a TIME_WAIT socket first" if value else "stays as it is")
            else:
                parts.append(f"{'has' if value else 'lacks'} {OPTION_NAMES[attr]}")
    return " and ".join(parts)


def _rule_holds(rule: str, me: Me, o: Other, w: World) -> bool:
    """Is RULE_TEXT[rule] a true sentence about `o` in world `w`?"""
    ra2, rp2, _, _ = w
    if rule == "in-use":
        return not (me.reuseaddr and ra2) and not (me.reuseport and rp2)
    if rule == "listener":
        return me.reuseaddr and o.listening
    return False


def settled_rule(me: Me, o: Other, ruled: list[tuple[World, str]], every_world: bool = True) -> tuple[str, str]:
    """(rule, sentence) for why `o` blocks `me` in every world of `ruled`. A rule is stated
    as fact only when its sentence holds in every possible world; otherwise the sentence
    says which rule applies in which case ("if it has SO_REUSEADDR, ...")."""
    rules = list(dict.fromkeys(rule for _, rule in ruled))
    if len(rules) == 1:
        return rules[0], RULE_TEXT.get(rules[0], rules[0])
    for rule in ("in-use", "listener"):
        if all(_rule_holds(rule, me, o, w) for w, _ in ruled):
            return rule, RULE_TEXT[rule]
    among = [w for w, _ in ruled]
    cases = []
    for rule in rules:
        cond = _condition([w for w, r in ruled if r == rule], among)
        cases.append(f"if it {cond}, {RULE_TEXT.get(rule, rule)}" if cond else f"otherwise {RULE_TEXT.get(rule, rule)}")
    if not every_world:
        return rules[0], "which rule applies hangs on its unreadable options: " + "; ".join(cases)
    return rules[0], (
        f"it blocks whatever its unreadable options are ({options_text(o.rec)}), "
        "but the reason hangs on them: " + "; ".join(cases)
    )


def unknown_reason(o: Other, rule: str, free: list[World], rule_text: str | None = None) -> str:
    if o.rec.timewait:
        why = "TIME_WAIT sockets have no descriptor to read"
    elif o.timewait:
        why = "it is closing and may become a TIME_WAIT socket before your bind"
    else:
        why = "its options could not be read"
    return f"may block ({why}): it blocks {unless_clause(o, free)}; if it blocks, {rule_text or RULE_TEXT.get(rule, rule)}"


def candidate_text(me: Me, listen: bool, device: str | None = None) -> str:
    opts = [name for attr, name in (("reuseaddr", "SO_REUSEADDR"), ("reuseport", "SO_REUSEPORT")) if getattr(me, attr)]
    if me.addr.family == 6 and me.v6only:
        opts.append("IPV6_V6ONLY")
    what = "listener" if (listen and me.proto == "tcp") else "socket"
    text = f"a {me.proto.upper()} {what} on {format_endpoint(me.addr.family, me.addr.text, me.port, device)}"
    if opts:
        text += " with " + " and ".join(opts)
    return text + f" as uid {me.uid}"
