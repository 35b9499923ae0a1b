"""The bind-conflict predictor: pure functions of a Snapshot (no I/O).

Modules, each importing only those listed before it (a DAG; no function-level imports):
    types, addresses, rules, explain   the kernel's rules and the sentences for them
    ephemeral, engine                  evaluate(): the verdict of one bind()/listen()
    groups, departure, waiting         blockers summarised; the port after exits/expiry
    suggest                            suggestions, each checked with the engine
    answer                             check(): verdict + time to success + suggestions + groups
    rehearsal                          check_like(), rehearse_restart()
    why                                why_port(): who holds a port and what would bind
    freeing                            what `kill` would do (the preview; acting is in collectors)

The package exports its modules under their own names (`sockscope.predict.why` is the
module) and these functions and types:
    check(snapshot, candidate) -> Verdict
    check_like(snapshot, record) -> Verdict; rehearse_restart(snapshot, pid) -> RestartReport
    why_port(snapshot, proto, port, addr=None) -> WhyReport (.text for people, .to_json())
    parse_endpoint("[::]:8080") -> (family, addr, port, scope); raises EndpointError
    Candidate, Blocker, Verdict, BlockerGroup, CandidateError
"""

from . import (
    addresses,
    answer,
    departure,
    engine,
    ephemeral,
    explain,
    freeing,
    groups,
    rehearsal,
    rules,
    suggest,
    types,
    waiting,
    why,
)
from .addresses import EndpointError, parse_endpoint
from .answer import check
from .engine import CandidateError
from .groups import BlockerGroup, group_blockers
from .rehearsal import RestartReport, check_like, rehearse_restart
from .types import Blocker, Candidate, Verdict
from .why import WhyReport, why_port

__all__ = [
    "Blocker",
    "BlockerGroup",
    "Candidate",
    "CandidateError",
    "EndpointError",
    "RestartReport",
    "Verdict",
    "WhyReport",
    "addresses",
    "answer",
    "check",
    "check_like",
    "departure",
    "engine",
    "ephemeral",
    "explain",
    "freeing",
    "group_blockers",
    "groups",
    "parse_endpoint",
    "rehearsal",
    "rehearse_restart",
    "rules",
    "suggest",
    "types",
    "waiting",
    "why",
    "why_port",
]
