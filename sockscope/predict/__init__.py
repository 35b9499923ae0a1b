"""The bind-conflict predictor: pure functions of a Snapshot (no I/O).

Public interface (the CLI and the TUI use only these names):
    check(snapshot, candidate) -> Verdict
    why(snapshot, proto, port, addr=None) -> WhyReport (.text for people, .to_json())
    parse_endpoint("[::]:8080") -> (family, addr, port, scope); raises EndpointError
    Candidate, Blocker, Verdict
"""

from .addresses import EndpointError, parse_endpoint
from .engine import CandidateError, check
from .types import Blocker, Candidate, Verdict
from .why import WhyReport, why

__all__ = [
    "Blocker",
    "Candidate",
    "CandidateError",
    "EndpointError",
    "Verdict",
    "WhyReport",
    "check",
    "parse_endpoint",
    "why",
]
