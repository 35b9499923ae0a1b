"""`sockscope why PORT | ADDR:PORT [--udp]`: who holds a port, why, and what would bind now."""

from __future__ import annotations

import argparse
import json

from sockscope.userinput import InputError, parse_port

from .common import add_collection_arguments, take_snapshot, warn, write_out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="PORT|ADDR:PORT", help="8080, 127.0.0.1:8080 or [::1]:8080")
    parser.add_argument("--udp", action="store_true", help="ask about UDP (default TCP)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_collection_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from sockscope.cli import UsageError
    from sockscope.predict import EndpointError, parse_endpoint, why_port

    target = args.target.strip()
    addr: str | None = None
    family: int | None = None
    if not any(c in target for c in ".:[]%"):  # a bare port
        try:
            port = parse_port(target, low=1)
        except InputError as exc:
            raise UsageError(str(exc)) from None
    else:
        try:
            family, addr, port, _scope = parse_endpoint(target)
        except EndpointError as exc:
            raise UsageError(str(exc)) from None
        if port == 0:
            raise UsageError("port 0 is not held by anyone: use `sockscope check tcp ADDR:0` for ephemeral ports")
    proto = "udp" if args.udp else "tcp"
    snapshot = take_snapshot(args, protos=(proto,), port=port)
    if snapshot.limitation and not args.json:
        warn(snapshot.limitation)
    report = why_port(snapshot, proto, port, addr, family)
    if args.json:
        write_out(json.dumps(report.to_json()) + "\n", raw=True)
    else:
        write_out(report.text + "\n")
    return 0
