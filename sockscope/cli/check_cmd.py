"""`sockscope check tcp|udp ADDR:PORT ...`: would this bind() (and listen()) succeed?

Exit status: 0 would succeed, 1 would fail, 3 unknown (hangs on options that could not be
read), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import textwrap

from .common import add_collection_arguments, take_snapshot, warn, write_out

EXIT = {"ok": 0, "conflict": 1, "unknown": 3}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("proto", metavar="tcp|udp", help="the protocol of the new socket")
    parser.add_argument("endpoint", metavar="ADDR:PORT", help="0.0.0.0:8080, 127.0.0.1:53, [::]:8080, [::ffff:127.0.0.1]:53, [fe80::1%%eth0]:22; port 0 = ephemeral")
    parser.add_argument("--reuseaddr", action="store_true", help="the new socket sets SO_REUSEADDR")
    parser.add_argument("--reuseport", action="store_true", help="the new socket sets SO_REUSEPORT")
    v6 = parser.add_mutually_exclusive_group()
    v6.add_argument("--v6only", dest="v6only", action="store_true", default=None, help="IPV6_V6ONLY on (default: net.ipv6.bindv6only)")
    v6.add_argument("--no-v6only", dest="v6only", action="store_false", help="IPV6_V6ONLY off")
    parser.add_argument("--device", metavar="IFNAME", help="the new socket sets SO_BINDTODEVICE")
    parser.add_argument("--uid", metavar="UID", help="the uid that creates the socket (default: yours)")
    parser.add_argument("--bind-only", action="store_true", help="TCP: stop after bind() (default: bind then listen, a server)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_collection_arguments(parser)
    parser.epilog = (
        "exit status: 0 would succeed, 1 would fail, 3 unknown (options that decide it could not be read), 2 bad usage"
    )


def build_candidate(args: argparse.Namespace):
    from sockscope.cli import UsageError
    from sockscope.predict import Candidate, EndpointError, parse_endpoint

    proto = args.proto.lower()
    if proto not in ("tcp", "udp"):
        raise UsageError(f"protocol must be tcp or udp, not {args.proto!r}")
    try:
        family, addr, port, scope = parse_endpoint(args.endpoint)
    except EndpointError as exc:
        raise UsageError(str(exc)) from None
    device = args.device
    if scope:
        if device and device != scope:
            raise UsageError(f"the address names interface {scope!r} but --device is {device!r}")
        device = scope
    uid = os.getuid()
    if args.uid is not None:
        if not str(args.uid).isdigit():
            raise UsageError(f"--uid wants a number, not {args.uid!r}")
        uid = int(args.uid)
    if args.v6only is not None and family == 4:
        raise UsageError("--v6only/--no-v6only apply to IPv6 addresses only")
    return Candidate(
        proto=proto,  # type: ignore[arg-type]
        family=family,
        addr=addr,
        port=port,
        reuseaddr=args.reuseaddr,
        reuseport=args.reuseport,
        v6only=args.v6only,
        device=device,
        uid=uid,
        listen=not args.bind_only,
    )


def render_verdict(verdict, width: int = 80) -> str:
    from sockscope.predict.explain import describe

    word = {"ok": "OK", "conflict": "CONFLICT", "unknown": "UNKNOWN"}[verdict.verdict]
    lines = [f"{word}: " + verdict.explanation.split(": ", 1)[0] + ("" if ": " not in verdict.explanation else ".")]
    body = verdict.explanation.split(": ", 1)[1] if ": " in verdict.explanation else ""
    if body and not verdict.blockers:
        lines += textwrap.wrap(body, width, initial_indent="  ", subsequent_indent="  ")
    if verdict.blockers:
        lines.append("Blocked by:" if verdict.verdict == "conflict" else "May be blocked by:")
        for b in verdict.blockers[:20]:
            lines += textwrap.wrap(describe(b.socket), width, initial_indent="  - ", subsequent_indent="    ")
            reason = b.reason.split(": ", 1)[1] if ": " in b.reason else b.reason
            lines += textwrap.wrap(f"[{b.rule}] {reason}", width, initial_indent="    ", subsequent_indent="    ")
        if len(verdict.blockers) > 20:
            lines.append(f"  ... and {len(verdict.blockers) - 20} more (--json lists them all)")
    if verdict.suggestions:
        lines.append("What would work:")
        for s in verdict.suggestions:
            lines += textwrap.wrap(s, width, initial_indent="  - ", subsequent_indent="    ")
    for n in verdict.notes:
        lines += textwrap.wrap("Note: " + n, width)
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    from sockscope.cli import UsageError
    from sockscope.predict import CandidateError, check

    cand = build_candidate(args)
    # Only the port's sockets matter (all of them for port 0): owners and options are
    # then looked up for a handful of sockets, not the whole host.
    snapshot = take_snapshot(args, protos=(cand.proto,), port=cand.port or None)
    if snapshot.limitation and not args.json:
        warn(snapshot.limitation)
    try:
        verdict = check(snapshot, cand)
    except CandidateError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        write_out(json.dumps(verdict.to_json()) + "\n", raw=True)
    else:
        write_out(render_verdict(verdict))
    return EXIT[verdict.verdict]
