"""The bind-conflict predictor: pure functions of a Snapshot (no I/O).

Public interface (stable; the CLI and the TUI use only these names):
    check(snapshot, candidate) -> Verdict
    why(snapshot, proto, port, addr=None) -> WhyReport   (see why.py)
    parse_endpoint("[::]:8080") -> (family, addr, port)  raises ValueError with a clear message
    Candidate, Blocker, Verdict                          (types.py)
"""

from .types import Blocker, Candidate, Verdict

__all__ = ["Blocker", "Candidate", "Verdict"]
