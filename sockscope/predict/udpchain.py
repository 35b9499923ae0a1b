"""udp_lib_lport_inuse(): the first overlapping socket in the port's chain decides a UDP bind().

The kernel walks the port's primary hash chain (`udptable->hash`, one slot per port) and
the first socket that neither shares SO_REUSEADDR with the new one nor is on another device
nor on a non-overlapping address decides: allowed if both have SO_REUSEPORT under one uid,
refused otherwise (kernel-bind-rules §4). New sockets go to the head of the chain, IPv6
SO_REUSEPORT sockets to the tail.

What tells us that order:
- sock_diag dumps one family at a time, walking the same primary chain, so within a family
  the dump order (SocketRecord.order) is the chain order;
- sockets pushed at the head precede every IPv6 SO_REUSEPORT socket appended at the tail,
  whatever the order they were bound in;
- the BPF UDP iterator (Linux 6.18) walks the hash2 (port + address) chains and gives each
  socket's slot and position (SocketRecord.udp_bucket / udp_chain_pos). Sockets go into
  both chains under the same head/tail rule, so two sockets of one hash2 slot have the same
  relative order in the primary chain. IPv4 0.0.0.0 and IPv6 :: share a slot, and so do
  a.b.c.d and ::ffff:a.b.c.d: exactly the pairs of families that overlap most. A connected
  socket may have been moved to the head of another hash2 slot by connect() (udp_lib_rehash)
  without moving in the primary chain, so its position is not used.

Every chain order consistent with these facts is walked (pruned at the first socket that
decides in every world); the verdict is definite only if all of them agree.
"""

from __future__ import annotations

from .explain import describe, settled_rule, unknown_reason
from .rules import Me, Other, UdpOutcome, World, udp_outcome, udp_rule
from .types import Blocker

# Beyond this many chain orders the walk stops and the answer is unknown (a port with
# dozens of IPv4 and IPv6 sockets in different slots); each order is a short prefix walk.
MAX_ORDERS = 20_000


def _chain_key(o: Other) -> tuple[int, int] | None:
    """(hash2 slot, position) when it reflects the primary chain order, else None."""
    rec = o.rec
    if rec.udp_bucket is None or rec.udp_chain_pos is None or rec.peer_port:
        return None
    return rec.udp_bucket, rec.udp_chain_pos


def _tail_class(o: Other) -> bool | None:
    """Was it appended at the tail (an IPv6 SO_REUSEPORT socket: sk_add_node_rcu) rather
    than pushed at the head? None when its SO_REUSEPORT is unknown."""
    if o.rec.family == 4:
        return False
    return o.known("reuseport")


def _must_precede(a: Other, b: Other) -> bool:
    """Is `a` known to be ahead of `b` in the port's chain?"""
    if a.rec.family == b.rec.family:
        return a.rec.order < b.rec.order
    # Head-pushed sockets always precede tail-appended ones, whatever the bind order.
    if _tail_class(a) is False and _tail_class(b) is True:
        return True
    ka, kb = _chain_key(a), _chain_key(b)
    return ka is not None and kb is not None and ka[0] == kb[0] and ka[1] < kb[1]


def _unordered_reason(a: Other, b: Other) -> str:
    ka, kb = _chain_key(a), _chain_key(b)
    if a.rec.udp_bucket is None or b.rec.udp_bucket is None:
        return "the kernel dumps IPv4 and IPv6 sockets separately, and the BPF iterator that shows the chain did not read them"
    if a.rec.peer_port or b.rec.peer_port:
        return "the kernel dumps IPv4 and IPv6 sockets separately, and connect() may have moved a connected socket in the chains the iterator shows"
    assert ka is not None and kb is not None
    return (
        "the kernel dumps IPv4 and IPv6 sockets separately, and the two sit in different "
        f"hash slots (different addresses: slots {ka[0]} and {kb[0]}), so no chain shows both"
    )


def udp_chain(me: Me, others: list[Other], explain: bool = True) -> tuple[list[Blocker], list[Blocker], list[str]]:
    """The UDP port check: (definite blockers, possible blockers, notes). Without
    `explain`, a blocker's reason is its rule's sentence alone (engine.evaluate)."""
    results: dict[int, list[tuple[World, UdpOutcome]]] = {id(o): [(w, udp_outcome(me, o, w)) for w in o.worlds] for o in others}
    kinds = {id(o): {outcome for _, outcome in results[id(o)]} for o in others}
    # Sockets that skip in every world never decide: leave them out of the orders.
    relevant = sorted((o for o in others if kinds[id(o)] != {"skip"}), key=lambda o: (o.rec.family, o.rec.order))
    preds = {id(o): [p for p in relevant if p is not o and _must_precede(p, o)] for o in relevant}

    outcome_sets: set[frozenset[str]] = set()
    deciders: dict[int, Other] = {}  # sockets that may decide with "block"
    walked = 0
    truncated = False

    def walk(placed: frozenset[int], seen: set[str]) -> None:
        nonlocal walked, truncated
        if walked >= MAX_ORDERS:
            truncated = True
            return
        ready = [o for o in relevant if id(o) not in placed and all(id(p) in placed for p in preds[id(o)])]
        if not ready:
            walked += 1
            outcome_sets.add(frozenset(seen | {"allow"}))
            return
        for o in ready:
            k = kinds[id(o)]
            if "block" in k:
                deciders.setdefault(id(o), o)
            now = seen | (k - {"skip"})
            if "skip" not in k:
                walked += 1
                outcome_sets.add(frozenset(now))
            else:
                walk(placed | {id(o)}, now)

    walk(frozenset(), set())
    outcomes: set[str] = set().union(*outcome_sets) if outcome_sets else {"allow"}
    notes: list[str] = []
    if truncated:
        outcomes = {"allow", "block"}
        notes.append(f"The port has too many UDP sockets of both families in unknown chain order to walk every order (over {MAX_ORDERS:,})")
    elif len(outcome_sets) > 1 and outcomes == {"allow", "block"}:
        pair = _first_unordered_pair(relevant)
        detail = f": which of {describe(pair[0].rec)} and {describe(pair[1].rec)} comes first is not visible ({_unordered_reason(*pair)})" if pair else ""
        notes.append("UDP lets the first overlapping socket in the port's hash chain decide, and the chain order here is not fully known" + detail)
    if "block" not in outcomes:
        return [], [], notes
    definite = outcomes == {"block"}
    blockers: list[Blocker] = []
    for o in deciders.values():
        blocking = [w for w, outcome in results[id(o)] if outcome == "block"]
        free = [w for w, outcome in results[id(o)] if outcome != "block"]
        rule = udp_rule(me, o, blocking[0])
        if definite or not free:
            rule, text = settled_rule(me, o, [(w, udp_rule(me, o, w)) for w in blocking])
            if not definite:
                text = f"may decide first: {text}"
        else:
            rule, settled = settled_rule(me, o, [(w, udp_rule(me, o, w)) for w in blocking], every_world=False)
            text = unknown_reason(o, rule, free, settled)
        blockers.append(Blocker(o.rec, rule, f"{describe(o.rec)}: {text}" if explain else text, definite, text))
    return (blockers, [], notes) if definite else ([], blockers, notes)


def _first_unordered_pair(relevant: list[Other]) -> tuple[Other, Other] | None:
    """Two sockets of different families whose chain order is not known and that differ in
    outcome somewhere, for the sentence that says why the order matters."""
    for i, a in enumerate(relevant):
        for b in relevant[i + 1 :]:
            if a.rec.family != b.rec.family and not _must_precede(a, b) and not _must_precede(b, a):
                return a, b
    return None
