"""The conflict predictor, imported lazily: the TUI works (and says so) without it."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from sockscope.model import Snapshot, SocketRecord
from sockscope.sanitize import host_text, terminal_text

UNAVAILABLE = "predictor unavailable"


def default_candidate(rec: SocketRecord) -> Any:
    """What a new bind on this socket's port would be: same proto, family, address and
    port, no options, uid 0 (and listen, for TCP)."""
    from sockscope.predict import Candidate

    return Candidate(proto=rec.proto, family=rec.family, addr=rec.local_addr, port=rec.local_port, uid=0)


def run_check(snapshot: Snapshot, candidate: Any) -> tuple[Any | None, str | None]:
    """(verdict, None) or (None, why not)."""
    try:
        from sockscope.predict import check
    except ImportError:
        return None, UNAVAILABLE
    try:
        return check(snapshot, candidate), None
    except Exception as exc:  # noqa: BLE001 - the predictor is optional; say what went wrong
        return None, f"predictor failed: {type(exc).__name__}: {terminal_text(str(exc))}"


def run_why(snapshot: Snapshot, proto: str, port: int, addr: str | None = None) -> str:
    try:
        from sockscope.predict import why
    except ImportError:
        return UNAVAILABLE
    try:
        report = why(snapshot, proto, port, addr)
    except Exception as exc:  # noqa: BLE001
        return f"predictor failed: {type(exc).__name__}: {terminal_text(str(exc))}"
    return terminal_text(str(getattr(report, "text", report)))


VERDICT_STYLE = {"ok": "bold green", "conflict": "bold red", "unknown": "bold yellow"}


def verdict_text(verdict: Any, with_blockers: bool = True) -> Text:
    out = Text()
    kind = getattr(verdict, "verdict", "unknown")
    out.append(f" {str(kind).upper()} ", style=VERDICT_STYLE.get(kind, "bold") + " reverse")
    errno = getattr(verdict, "errno", None)
    stage = getattr(verdict, "stage", None)
    if errno:
        out.append(f"  {errno}" + (f" at {stage}()" if stage else ""), style="bold")
    out.append("\n")
    explanation = getattr(verdict, "explanation", "")
    if explanation:
        out.append(terminal_text(explanation.rstrip()) + "\n")
    blockers = list(getattr(verdict, "blockers", []) or [])
    if with_blockers and blockers:
        out.append("\nBlocked by:\n", style="bold")
        for b in blockers:
            s = b.socket
            host = f"[{s.local_addr}]" if s.family == 6 else s.local_addr
            who = f" {host_text(s.process)}/{s.pid}" if s.pid is not None else ""
            mark = "" if b.definite else " (maybe)"
            out.append(f"  ! {s.proto} {s.state} {host}:{s.local_port}{who}{mark}\n", style="red")
            if b.reason:
                out.append(f"    {b.rule}: {terminal_text(b.reason)}\n", style="dim")
    suggestions = list(getattr(verdict, "suggestions", []) or [])
    if suggestions:
        out.append("\nSuggestions:\n", style="bold")
        for s in suggestions:
            out.append(f"  • {terminal_text(s)}\n")
    notes = list(getattr(verdict, "notes", []) or [])
    if notes:
        out.append("\nNotes:\n", style="bold")
        for n in notes:
            out.append(f"  {terminal_text(n)}\n", style="dim")
    return out
