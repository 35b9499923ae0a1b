"""check(snapshot, candidate): would bind() (and listen()) succeed? A pure function.

Order of checks follows inet_bind()/inet6_bind() (kernel-bind-rules §1): the address
must be local (EADDRNOTAVAIL), low ports need privilege (EACCES), a v4-mapped address on
a V6ONLY socket is invalid (EINVAL), then the port check against every socket of the port
(EADDRINUSE), for TCP by inet_bind_conflict() and for UDP by udp_lib_lport_inuse().

listen() repeats the TCP port check with the socket now listening. For a new socket that
passed bind()'s full check it cannot fail against the same sockets: inet_bind_conflict()
looks only at the *other* socket's state, and an SO_REUSEPORT socket takes the port's fast
path it set itself at bind(). A socket that bind() let through on the port's fast path
(fastpath.py) without SO_REUSEPORT does meet the full check at listen(). What listen() does
change is the others' future: a socket that is bound
with SO_REUSEADDR but not yet listening will then fail its own listen(), which the
verdict says.
"""

from __future__ import annotations

import ipaddress

from sockscope.model import HostFacts, Snapshot
from sockscope.sanitize import host_text

from .addresses import EndpointError, bind_addr, format_endpoint
from .ephemeral import check_ephemeral
from .explain import ERRNO_TEXT, candidate_text, describe, settled_rule, unknown_reason
from .fastpath import FastPath, bucket_unread_reason, tcp_fast_path
from .rules import (
    NOT_IN_BIND_TABLES,
    Me,
    Other,
    fast_reuseport_may_admit,
    infer_from_listeners,
    make_other,
    tcp_blocks,
    tcp_rule,
)
from .types import Blocker, Candidate, Verdict
from .udpchain import udp_chain

class CandidateError(ValueError):
    """The candidate cannot be asked about (unknown device, address of the wrong family)."""


def normalise(snapshot: Snapshot, cand: Candidate) -> tuple[Me, str | None]:
    facts = snapshot.facts
    try:
        addr = bind_addr(cand.family, cand.addr)
    except (EndpointError, ValueError) as exc:
        raise CandidateError(str(exc)) from None
    ifindex = 0
    if cand.device:
        found = facts.ifindex(cand.device)
        if found is None:
            known = ", ".join(host_text(n) for n in sorted(facts.interfaces.values())) or "none"
            raise CandidateError(f"no interface {host_text(cand.device)!r} in this network namespace (interfaces: {known})")
        ifindex = found
    v6only = facts.bindv6only if cand.v6only is None else cand.v6only
    if cand.family == 4:
        v6only = False
    elif addr.kind == "specific":
        # inet6_bind(): binding a specific non-mapped address makes the socket V6ONLY.
        v6only = True
    me = Me(cand.proto, addr, cand.port, cand.reuseaddr, cand.reuseport, v6only, ifindex, cand.uid)
    # A v4-mapped bind on a V6ONLY socket is EINVAL: remember the user's own setting for it.
    mapped_on_v6only = cand.family == 6 and addr.kind == "mapped" and (facts.bindv6only if cand.v6only is None else cand.v6only)
    return me, ("EINVAL" if mapped_on_v6only else None)


def _v4_is_local(facts: HostFacts, v4: int) -> bool:
    ip = ipaddress.IPv4Address(v4)
    if v4 == 0 or ip.is_multicast or v4 == 0xFFFFFFFF:
        return True
    return any(ip in ipaddress.IPv4Network(prefix, strict=False) for prefix in facts.local_v4)


def _v6_is_local(facts: HostFacts, text: str, device: str | None) -> bool:
    for addr, ifname, scoped, tentative in facts.v6_addrs:
        if addr == text and not tentative and (device is None or ifname == device or not scoped):
            return True
    return False


def precheck(snapshot: Snapshot, cand: Candidate, me: Me, einval_mapped: str | None) -> tuple[str, str] | None:
    """The errors bind() returns before it looks at the port: (errno, sentence) or None."""
    facts = snapshot.facts
    ip = ipaddress.ip_address(cand.addr)
    needs_cap = cand.port != 0 and cand.port < facts.ip_unprivileged_port_start and cand.uid != 0
    eacces = (
        "EACCES",
        f"port {cand.port} is below net.ipv4.ip_unprivileged_port_start ({facts.ip_unprivileged_port_start}) "
        f"and uid {cand.uid} is not root (a process with CAP_NET_BIND_SERVICE could bind it)",
    )
    if cand.family == 4:
        if facts.complete and not facts.ip_nonlocal_bind and not _v4_is_local(facts, me.addr.v4):
            return "EADDRNOTAVAIL", f"{cand.addr} is not an address of this network namespace (net.ipv4.ip_nonlocal_bind is 0)"
        if needs_cap:
            return eacces
        return None
    if ip.is_multicast and cand.proto == "tcp":
        return "EINVAL", "a TCP socket cannot bind a multicast address"
    if needs_cap:
        return eacces
    if me.addr.kind == "mapped":
        if einval_mapped:
            return "EINVAL", f"{cand.addr} is a v4-mapped address and the socket is IPV6_V6ONLY"
        if facts.complete and not facts.ip_nonlocal_bind and not _v4_is_local(facts, me.addr.v4):
            return "EADDRNOTAVAIL", f"{ipaddress.IPv4Address(me.addr.v4)} is not an address of this network namespace"
        return None
    if me.addr.kind == "specific":
        if ip.is_link_local and not cand.device:
            return "EINVAL", f"{cand.addr} is link-local: binding it needs an interface (a %scope or --device)"
        if facts.complete and not ip.is_multicast and not facts.ipv6_nonlocal_bind and not _v6_is_local(facts, str(ip), cand.device):
            where = f" on {host_text(cand.device)}" if cand.device else ""
            return "EADDRNOTAVAIL", f"{cand.addr} is not a usable address{where} in this network namespace (absent, or still tentative)"
    return None


def _others(snapshot: Snapshot, me: Me, port: int) -> list[Other]:
    return [make_other(r) for r in snapshot.on_port(me.proto, port) if r.state not in NOT_IN_BIND_TABLES or me.proto == "udp"]


def _alike(others: list[Other]) -> list[Other]:
    """For each socket, the first socket of the port alike in everything the TCP rules,
    the inference from listeners and their sentences read: address, state (listening,
    timewait, orphan), options, device and uid. A port with 16,000 connections from one
    listener has a handful of such kinds, and every candidate a check tries (suggestions
    included) meets each kind once instead of each socket."""
    firsts: dict[tuple, Other] = {}
    out: list[Other] = []
    for o in others:
        r = o.rec
        key = (o.addr, r.state, r.timewait, not r.inode, r.reuseaddr, r.reuseport, r.v6only, r.ifindex, r.uid)
        out.append(firsts.setdefault(key, o))
    return out


def _tcp_outcome(me: Me, o: Other) -> tuple[bool, str, str] | None:
    """Whether `o` blocks `me` in every world, in some or in none: (definite, rule,
    sentence), None when it never blocks."""
    results = [(w, tcp_blocks(me, o, w)) for w in o.worlds]
    blocking = [w for w, b in results if b]
    free = [w for w, b in results if not b]
    if not blocking:
        return None
    if not free:
        rule, because = settled_rule(me, o, [(w, tcp_rule(me, o, w)) for w in blocking])
        if o.inferred:
            because += " (its options inferred from the listener it shares the port with)"
        return True, rule, because
    rule, text = settled_rule(me, o, [(w, tcp_rule(me, o, w)) for w in blocking], every_world=False)
    return False, rule, unknown_reason(o, rule, free, text)


def _port_blocked(me: Me, others: list[Other], explain: bool = True,
                  alike: list[Other] | None = None) -> tuple[list[Blocker], list[Blocker], list[str]]:
    """The port check: (definite blockers, possible blockers, notes). Without `explain`,
    a blocker's reason is its rule's sentence alone (see evaluate). `alike` (TCP): each
    socket's first look-alike (_alike), whose outcome it shares."""
    definite: list[Blocker] = []
    possible: list[Blocker] = []
    notes: list[str] = []
    if me.proto == "tcp":
        outcomes: dict[int, tuple[bool, str, str] | None] = {}
        for o, first in zip(others, alike if alike is not None else others):
            key = id(first)
            if key in outcomes:
                outcome = outcomes[key]
            else:
                outcome = outcomes[key] = _tcp_outcome(me, first)
            if outcome is None:
                continue
            sure, rule, because = outcome
            (definite if sure else possible).append(
                Blocker(o.rec, rule, f"{describe(o.rec)}: {because}" if explain else because, sure, because))
        return definite, possible, notes
    return udp_chain(me, others, explain)


def evaluate(snapshot: Snapshot, cand: Candidate, explain: bool = True) -> Verdict:
    """Predict bind() (and for a TCP server, listen()) of `cand` against `snapshot`: the
    verdict, blockers and explanation, without suggestions (answer.check() adds those).
    `explain=False` is for callers that want the verdict alone (a suggestion checked,
    a time to wait): blockers then carry their rule's sentence without the socket's
    description, which on a port with 16,000 connections is most of the cost."""
    me, einval_mapped = normalise(snapshot, cand)
    label = candidate_text(me, cand.listen, cand.device)
    early = precheck(snapshot, cand, me, einval_mapped)
    if early is not None:
        errno, sentence = early
        return Verdict(
            "conflict",
            errno,
            "bind",
            explanation=f"bind() of {label} would fail with {errno} ({ERRNO_TEXT[errno]}): {sentence}.",
        )
    if cand.port == 0:
        return check_ephemeral(snapshot, me, label)

    others = _others(snapshot, me, cand.port)
    alike: list[Other] | None = None
    if me.proto == "tcp":
        # Look-alikes are narrowed alike: infer once per kind, then share the result.
        alike = _alike(others)
        kinds = list({id(o): o for o in alike}.values())
        infer_from_listeners(kinds)
        for o, first in zip(others, alike):
            if o is not first:
                o.worlds, o.inferred = first.worlds, first.inferred
    else:
        infer_from_listeners(others)
    definite, possible, notes = _port_blocked(me, others, explain, alike)
    endpoint = format_endpoint(me.addr.family, me.addr.text, me.port, cand.device)
    bucket_path = tcp_fast_path(snapshot.tcp_buckets, me, bool(others))
    if bucket_path is not None:
        return _with_bucket(snapshot, cand, me, bucket_path, definite, possible, label, notes, others)
    if definite:
        fast = fast_reuseport_may_admit(me, others)
        if fast is not None:
            notes.append(
                "The kernel keeps a per-port SO_REUSEPORT fast path (kernel-bind-rules §6): because "
                f"{describe(fast.rec)} has the same uid and an address covering {endpoint}, the kernel may "
                "admit this bind without checking the sockets above, so the outcome is not certain"
                + bucket_unread_reason(snapshot.tcp_buckets)
            )
            return _finish(snapshot, cand, me, "unknown", None, [], definite + possible, label, notes)
        return _finish(snapshot, cand, me, "conflict", "EADDRINUSE", definite, possible, label, notes)
    if possible:
        return _finish(snapshot, cand, me, "unknown", None, [], possible, label, notes)
    return _finish(snapshot, cand, me, "ok", None, [], [], label, notes, others=others)


def _with_bucket(
    snapshot: Snapshot,
    cand: Candidate,
    me: Me,
    fast: FastPath,
    definite: list[Blocker],
    possible: list[Blocker],
    label: str,
    notes: list[str],
    others: list[Other],
) -> Verdict:
    """The TCP verdict when the port's bind bucket was read: the kernel's fast path first
    (fastpath.py), then the per-socket rule for what it does not skip."""
    if fast.status == "admits":
        if definite or possible:
            notes.append(f"The per-socket rule alone would refuse this bind, but {fast.reason}")
        if not (cand.listen and (definite or possible)) or fast.listen_skips_check:
            result = _finish(snapshot, cand, me, "ok", None, [], [], label, notes, others=others)
            if definite or possible:
                first = (definite or possible)[0]
                calls = "bind() and listen()" if (cand.proto == "tcp" and cand.listen) else "bind()"
                result.explanation = (
                    f"{calls} of {label} would succeed: the port's bind bucket lets the kernel skip the "
                    f"conflict check, although by the per-socket rule this socket blocks it: {first.reason}."
                )
            return result
        # listen() runs the full check again, and only an SO_REUSEPORT socket skips it there.
        kind = "conflict" if definite else "unknown"
        return _finish(snapshot, cand, me, kind, "EADDRINUSE" if definite else None, definite, possible, label, notes, stage="listen")
    if fast.status == "unknown" and (definite or possible):
        notes.append(f"The kernel's per-port fast path may admit this bind without the check: {fast.reason}")
        return _finish(snapshot, cand, me, "unknown", None, [], definite + possible, label, notes)
    if definite:
        return _finish(snapshot, cand, me, "conflict", "EADDRINUSE", definite, possible, label, notes)
    if possible:
        return _finish(snapshot, cand, me, "unknown", None, [], possible, label, notes)
    return _finish(snapshot, cand, me, "ok", None, [], [], label, notes, others=others)


def _finish(
    snapshot: Snapshot,
    cand: Candidate,
    me: Me,
    verdict: str,
    errno: str | None,
    definite: list[Blocker],
    possible: list[Blocker],
    label: str,
    notes: list[str],
    others: list[Other] | None = None,
    stage: str = "bind",
) -> Verdict:
    blockers = definite + possible
    calls = "bind() and listen()" if (cand.proto == "tcp" and cand.listen) else "bind()"
    if verdict == "ok":
        n = len(others or [])
        if n:
            explanation = f"{calls} of {label} would succeed: none of the {n} socket(s) on port {cand.port} blocks it."
            pending = [
                o
                for o in (others or [])
                if o.rec.state == "UNCONN" and me.proto == "tcp" and o.known("reuseaddr") and not o.known("reuseport")
            ]
            if pending and cand.listen:
                notes.append(
                    "Once this socket listens, "
                    + "; ".join(describe(o.rec) for o in pending[:3])
                    + " will fail its own listen() with EADDRINUSE: SO_REUSEADDR never allows two listeners"
                )
        else:
            explanation = f"{calls} of {label} would succeed: no socket uses port {cand.port}."
    elif verdict == "conflict":
        if stage == "listen":
            head = f"bind() of {label} would succeed, then listen() would fail with EADDRINUSE ({ERRNO_TEXT['EADDRINUSE']})"
        else:
            head = f"bind() of {label} would fail with EADDRINUSE ({ERRNO_TEXT['EADDRINUSE']})"
        count = len(definite)
        explanation = f"{head}: blocked by {definite[0].reason}."
        if count > 1:
            explanation += f" {count - 1} more socket(s) block it too."
    else:
        head = f"{calls} of {label} may fail with EADDRINUSE: the answer hangs on what sockscope could not read."
        explanation = f"{head} {possible[0].reason[0].upper()}{possible[0].reason[1:]}."
        if len(possible) > 1:
            explanation += f" {len(possible) - 1} more socket(s) may block it too."
    result = Verdict(
        verdict,  # type: ignore[arg-type]
        errno,
        stage if verdict == "conflict" else None,  # type: ignore[arg-type]
        blockers=blockers,
        explanation=explanation,
        notes=notes,
    )
    if verdict != "ok":
        if cand.reuseaddr and any(b.rule in ("listener", "old-without-reuseaddr") for b in blockers):
            result.notes.append(
                "BSD and macOS differ: there SO_REUSEADDR on the new socket alone is enough after a restart, "
                "and a wildcard and a specific address may both listen on one port; Linux requires the "
                "option on both sockets and never lets SO_REUSEADDR create two overlapping listeners"
            )
    return result
