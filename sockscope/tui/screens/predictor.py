"""The conflict predictor, imported lazily: the TUI works (and says so) without it."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from sockscope.model import Snapshot, SocketRecord
from sockscope.sanitize import terminal_text

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


def run_rehearsals(snapshot: Snapshot, rec: SocketRecord) -> tuple[Any, Any] | None:
    """For a listening or bound socket: (another member like it, its process restarted),
    each None when it does not apply; None when the predictor is unavailable or failed."""
    if rec.state not in ("LISTEN", "UNCONN") or not rec.local_port:
        return None
    try:
        from sockscope.predict import check_like, rehearse_restart
    except ImportError:
        return None
    try:
        like = check_like(snapshot, rec)
        restart = rehearse_restart(snapshot, rec.pid) if rec.pid is not None else None
    except Exception:  # noqa: BLE001 - the plain check above already reports failures
        return None
    return like, restart


def run_why(snapshot: Snapshot, proto: str, port: int, addr: str | None = None) -> str:
    try:
        from sockscope.predict import why_port
    except ImportError:
        return UNAVAILABLE
    try:
        report = why_port(snapshot, proto, port, addr)
    except Exception as exc:  # noqa: BLE001
        return f"predictor failed: {type(exc).__name__}: {terminal_text(str(exc))}"
    return terminal_text(str(getattr(report, "text", report)))


VERDICT_STYLE = {"ok": "bold green", "conflict": "bold red", "unknown": "bold yellow"}


def _wrapped(out: Text, text: str, width: int, first: str, rest: str, style: str = "") -> None:
    """Append `text` wrapped to `width` with a hanging indent (continuation lines under
    the text, not under the bullet)."""
    import textwrap

    lines = textwrap.wrap(text, max(width, 30), initial_indent=first, subsequent_indent=rest,
                          break_on_hyphens=False) or [first.rstrip()]
    for line in lines:
        out.append(line + "\n", style=style)


def verdict_text(verdict: Any, with_blockers: bool = True, width: int = 76) -> Text:
    """A verdict for the TUI: blockers as groups (one line per alike group), wrapped with
    hanging indents. Host strings are sanitized by the predictor's sentences."""
    out = Text()
    kind = getattr(verdict, "verdict", "unknown")
    out.append(f" {str(kind).upper()} ", style=VERDICT_STYLE.get(kind, "bold") + " reverse")
    errno = getattr(verdict, "errno", None)
    stage = getattr(verdict, "stage", None)
    if errno:
        out.append(f"  {errno}" + (f" at {stage}()" if stage else ""), style="bold")
    out.append("\n")
    when = getattr(verdict, "when", "")
    if when:
        _wrapped(out, when[0].upper() + when[1:] + ".", width, "", "", "bold green")
    explanation = getattr(verdict, "explanation", "")
    if explanation:
        _wrapped(out, terminal_text(explanation.rstrip()), width, "", "")
    groups = list(getattr(verdict, "groups", []) or [])
    if with_blockers and groups:
        out.append("\nBlocked by:\n" if kind == "conflict" else "\nMay be blocked by:\n", style="bold")
        for g in groups[:20]:
            mark = "" if g.definite else " (maybe)"
            _wrapped(out, terminal_text(g.head()) + mark, width, "  ! ", "    ", "red")
            _wrapped(out, f"{g.rule}: {terminal_text(g.reason)}", width, "    ", "      ", "dim")
        if len(groups) > 20:
            out.append(f"  … and {sum(g.count for g in groups[20:])} more in {len(groups) - 20} groups\n", style="dim")
    suggestions = list(getattr(verdict, "suggestions", []) or [])
    if suggestions:
        out.append("\nSuggestions:\n", style="bold")
        for s in suggestions:
            _wrapped(out, terminal_text(s), width, "  • ", "    ")
    notes = list(getattr(verdict, "notes", []) or [])
    if notes:
        out.append("\nNotes:\n", style="bold")
        for n in notes:
            _wrapped(out, terminal_text(n), width, "  ", "  ", "dim")
    return out


def text_width(screen: Any) -> int:
    """The width a modal's text gets: 90% of the terminal, at most 110, less borders,
    padding and the scrollbar."""
    try:
        total = int(screen.app.size.width)
    except Exception:  # noqa: BLE001 - not mounted yet
        total = 80
    return max(min(int(total * 0.9), 110) - 6, 30)
