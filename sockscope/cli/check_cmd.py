"""`sockscope check tcp|udp ADDR:PORT ...`: would this bind() (and listen()) succeed?

Exit status: 0 would succeed, 1 would fail, 3 unknown (hangs on options that could not be
read), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from collections.abc import Mapping

from sockscope.predict.candidate import CandidateInputError, parse_candidate
from sockscope.predict.types import Candidate

from .common import add_collection_arguments, take_snapshot, warn, write_out

EXIT = {"ok": 0, "conflict": 1, "unknown": 3}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("proto", metavar="tcp|udp", nargs="?", help="the protocol of the new socket")
    parser.add_argument("endpoint", metavar="ADDR:PORT", nargs="?", help="0.0.0.0:8080, 127.0.0.1:53, [::]:8080, [::ffff:127.0.0.1]:53, [fe80::1%%eth0]:22 (a scope: "
         "link-local only), [::1]%%lo:22 (SO_BINDTODEVICE, as ss writes it); port 0 = ephemeral")
    parser.add_argument("--reuseaddr", action="store_true", help="the new socket sets SO_REUSEADDR")
    parser.add_argument("--reuseport", action="store_true", help="the new socket sets SO_REUSEPORT")
    v6 = parser.add_mutually_exclusive_group()
    v6.add_argument("--v6only", dest="v6only", action="store_true", default=None, help="IPV6_V6ONLY on (default: net.ipv6.bindv6only)")
    v6.add_argument("--no-v6only", dest="v6only", action="store_false", help="IPV6_V6ONLY off")
    parser.add_argument("--device", metavar="IFNAME", help="the new socket sets SO_BINDTODEVICE")
    parser.add_argument("--uid", metavar="UID", help="the uid that creates the socket (default: yours)")
    parser.add_argument("--bind-only", action="store_true", help="TCP: stop after bind() (default: bind then listen, a server)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    rehearse = parser.add_mutually_exclusive_group()
    rehearse.add_argument(
        "--like", metavar="SOCKET",
        help="would another socket with exactly this socket's options and uid bind there now? "
        "SOCKET: a cookie, PID:FD, or ADDR:PORT of a listener",
    )
    rehearse.add_argument(
        "--restart", metavar="PID",
        help="would every listening and bound socket of PID bind again if PID exited now and restarted?",
    )
    parser.add_argument(
        "--wait", action="store_true",
        help="wait until the bind would succeed (re-checking at the predicted moment); exit 1 on timeout",
    )
    parser.add_argument("--timeout", metavar="S", help="with --wait: give up after S seconds (default: as long as predicted)")
    add_collection_arguments(parser)
    parser.epilog = (
        "exit status: 0 would succeed, 1 would fail, 3 unknown (options that decide it could not be read), 2 bad usage"
    )


def build_candidate(args: argparse.Namespace, interfaces: Mapping[int, str] | None = None) -> tuple[Candidate, list[str]]:
    """The shared candidate parser (sockscope.predict.candidate), bad input as UsageError."""
    from sockscope.cli import UsageError

    if args.proto is None or args.endpoint is None:
        raise UsageError("give tcp|udp ADDR:PORT, or --like SOCKET, or --restart PID")
    try:
        return parse_candidate(
            args.proto,
            args.endpoint,
            uid=os.getuid() if args.uid is None else args.uid,
            reuseaddr=args.reuseaddr,
            reuseport=args.reuseport,
            v6only=args.v6only,
            device=args.device,
            listen=not args.bind_only,
            interfaces=interfaces,
        )
    except CandidateInputError as exc:
        raise UsageError(str(exc)) from None


def wrap(text: str, width: int, first: str, rest: str) -> list[str]:
    """One paragraph wrapped with a hanging indent (never breaking an endpoint apart)."""
    return textwrap.wrap(text, width, initial_indent=first, subsequent_indent=rest, break_on_hyphens=False) or [first.rstrip()]


def render_verdict(verdict, width: int = 80, max_groups: int = 20) -> str:
    word = {"ok": "OK", "conflict": "CONFLICT", "unknown": "UNKNOWN"}[verdict.verdict]
    head = verdict.explanation.split(": ", 1)[0]
    if verdict.when:
        head = head.replace(" would fail with ", " would fail now with ", 1) + "; " + verdict.when
    lines = wrap(f"{word}: {head}.", width, "", "  ")
    body = verdict.explanation.split(": ", 1)[1] if ": " in verdict.explanation else ""
    if body and not verdict.blockers:
        lines += wrap(body, width, "  ", "  ")
    groups = verdict.groups
    if groups:
        lines.append("Blocked by:" if verdict.verdict == "conflict" else "May be blocked by:")
        for g in groups[:max_groups]:
            lines += wrap(g.head(), width, "  - ", "    ")
            lines += wrap(f"[{g.rule}] {g.reason}", width, "    ", "      ")
        if len(groups) > max_groups:
            rest = sum(g.count for g in groups[max_groups:])
            lines.append(f"  ... and {rest} more socket(s) in {len(groups) - max_groups} group(s) (--json lists them all)")
    if verdict.suggestions:
        lines.append("What would work:")
        for s in verdict.suggestions:
            lines += wrap(s, width, "  - ", "    ")
    for n in verdict.notes:
        lines += wrap("Note: " + n, width, "", "  ")
    return "\n".join(lines) + "\n"


def _positive_seconds(text: str | None, name: str) -> float | None:
    from sockscope.cli import UsageError

    if text is None:
        return None
    try:
        value = float(text) if text.isascii() else float("nan")
    except ValueError:
        value = float("nan")
    if not (0 <= value <= 86400):
        raise UsageError(f"{name} wants seconds between 0 and 86400, not {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    from sockscope.cli import UsageError

    timeout = _positive_seconds(args.timeout, "--timeout")
    if timeout is not None and not args.wait:
        raise UsageError("--timeout goes with --wait")
    if args.like is not None or args.restart is not None:
        if args.proto is not None or args.endpoint is not None:
            raise UsageError("--like and --restart take no tcp|udp ADDR:PORT: the socket or process says it")
        if args.wait:
            raise UsageError("--wait goes with tcp|udp ADDR:PORT")
        from .rehearse_cmd import run_like, run_restart

        return run_like(args) if args.like is not None else run_restart(args)
    cand, _ = build_candidate(args)  # bad input fails here, before any collection
    if args.wait:
        return _wait(args, cand, timeout)
    verdict = _check_once(args, cand)
    _print(args, verdict)
    return EXIT[verdict.verdict]


def _check_once(args: argparse.Namespace, cand):
    from sockscope.cli import UsageError
    from sockscope.predict import CandidateError, check

    # Only the port's sockets matter (all of them for port 0): owners and options are
    # then looked up for a handful of sockets, not the whole host.
    snapshot = take_snapshot(args, protos=(cand.proto,), port=cand.port or None)
    if snapshot.limitation and not args.json:
        warn(snapshot.limitation)
    # Again with the namespace's interfaces, which numeric scopes (%2) name.
    cand, input_notes = build_candidate(args, snapshot.facts.interfaces)
    try:
        verdict = check(snapshot, cand)
    except CandidateError as exc:
        raise UsageError(str(exc)) from None
    verdict.notes[:0] = input_notes  # what bind() does with input it ignores (a needless %scope)
    return verdict


def _print(args: argparse.Namespace, verdict) -> None:
    if args.json:
        write_out(json.dumps(verdict.to_json()) + "\n", raw=True)
    else:
        write_out(render_verdict(verdict))


# --wait re-checks at the predicted moment, and at least this often otherwise (a listener
# may close, a new TIME_WAIT may appear): the prediction holds only for its snapshot.
WAIT_POLL_S = 1.0
WAIT_MARGIN_S = 0.3


def _wait(args: argparse.Namespace, cand, timeout: float | None) -> int:
    import time

    start = time.monotonic()
    verdict = _check_once(args, cand)
    if verdict.verdict == "ok":
        _print(args, verdict)
        return 0
    if timeout is None:
        if verdict.ok_after_s is None:
            _print(args, verdict)
            print("sockscope check: waiting would not help (not every blocker is a TIME_WAIT socket with a timer); "
                  "give --timeout S to wait anyway", file=sys.stderr)
            return 1
        timeout = verdict.ok_after_s + 5.0
    if not args.json:
        when = f"the bind is predicted to succeed in {verdict.ok_after_s:.0f} s" if verdict.ok_after_s else "re-checking every second"
        print(f"sockscope check: waiting up to {timeout:.0f} s: {when}", file=sys.stderr)
    while True:
        left = timeout - (time.monotonic() - start)
        if left <= 0:
            _print(args, verdict)
            print(f"sockscope check: timed out after {timeout:.0f} s", file=sys.stderr)
            return 1
        pause = WAIT_POLL_S if verdict.ok_after_s is None else max(verdict.ok_after_s + WAIT_MARGIN_S, 0.1)
        time.sleep(min(pause, left, 5.0))
        verdict = _check_once(args, cand)
        if verdict.verdict == "ok":
            _print(args, verdict)
            return 0
