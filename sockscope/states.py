"""State names and state groups: the one vocabulary of `list -s` and the filter's `state`.

Names are ss's (LISTEN, ESTAB, TIME-WAIT, UNCONN...), typed in any case, with or without
dashes and underscores, plus ss's long names (established, listening, closed...).

Groups follow ss (man ss, STATE-FILTER; ss.c SS_CONNECTED etc.):

- all:          every state
- connected:    every state except LISTEN and UNCONN (ss's "closed"), TIME-WAIT included
- synchronized: connected minus SYN-SENT and SYN-RECV
- bucket:       SYN-RECV and TIME-WAIT (the kernel's mini sockets)
- big:          every state except the bucket ones
- listening:    LISTEN and UNCONN, as `ss -l` selects them. ss's own filter word
                `state listening` means LISTEN alone, which would leave out every UDP
                server (a bound UDP socket is UNCONN) and TCP sockets bound without
                listen(); sockscope's Listening pane and `list -s listening` both mean
                "what serves or holds a port", so the word means what `ss -l` shows.
                `listen` (the state name) is LISTEN alone.

A group given as "every state except X" (connected, big, ...) also admits a state a
collector reports that is not in STATE_NAMES, as ss's bit masks would.
"""

from __future__ import annotations

from dataclasses import dataclass

from sockscope.model import STATE_NAMES

__all__ = ["STATE_NAMES", "StateSet", "StateError", "lookup", "parse_state_list", "STATE_WORDS_HELP"]


class StateError(ValueError):
    """A state word that is neither an ss state name nor a group."""


@dataclass(frozen=True, slots=True)
class StateSet:
    """`states` when `negate` is False, every state except `states` when it is True."""

    states: frozenset[str]
    negate: bool = False

    def __contains__(self, state: object) -> bool:
        return (state in self.states) != self.negate

    def resolve(self) -> frozenset[str]:
        """The named states this set admits (for a collector that takes a concrete list)."""
        if self.negate:
            return frozenset(STATE_NAMES) - self.states
        return self.states


def norm(word: str) -> str:
    """"TIME_WAIT", "time-wait", "TimeWait" -> "timewait"."""
    return word.lower().replace("-", "").replace("_", "")


_BUCKET = frozenset({"SYN-RECV", "TIME-WAIT"})

_WORDS: dict[str, StateSet] = {norm(s): StateSet(frozenset({s})) for s in STATE_NAMES}
_WORDS.update(
    {
        # ss's long names
        "established": StateSet(frozenset({"ESTAB"})),
        "synrcvd": StateSet(frozenset({"SYN-RECV"})),
        "closed": StateSet(frozenset({"UNCONN"})),  # ss's name for TCP_CLOSE, our UNCONN
        "unconnected": StateSet(frozenset({"UNCONN"})),
        # groups
        "all": StateSet(frozenset(), negate=True),
        "listening": StateSet(frozenset({"LISTEN", "UNCONN"})),
        "connected": StateSet(frozenset({"LISTEN", "UNCONN"}), negate=True),
        "synchronized": StateSet(frozenset({"LISTEN", "UNCONN", "SYN-SENT", "SYN-RECV"}), negate=True),
        "bucket": StateSet(_BUCKET),
        "big": StateSet(_BUCKET, negate=True),
    }
)

STATE_WORDS_HELP = (
    "listen, established, syn-sent, syn-recv, fin-wait-1, fin-wait-2, time-wait, close-wait, "
    "last-ack, closing, unconn/closed; groups: listening (LISTEN+UNCONN, as ss -l), "
    "connected, synchronized, bucket, big, all"
)


def lookup(word: str) -> StateSet:
    """One state name or group; raises StateError."""
    found = _WORDS.get(norm(word))
    if found is None:
        raise StateError(f"unknown state {word!r}: expected one of {STATE_WORDS_HELP}")
    return found


def parse_state_list(text: str) -> frozenset[str]:
    """"listen,estab" -> {"LISTEN", "ESTAB"} (`list -s`); raises StateError.

    Empty text, or only commas, is an error: "no states" is never what anyone means.
    """
    wanted: set[str] = set()
    for part in text.split(","):
        word = part.strip()
        if not word:
            continue
        wanted |= lookup(word).resolve()
    if not wanted:
        raise StateError(f"--state needs at least one state name, got {text!r}")
    return frozenset(wanted)
