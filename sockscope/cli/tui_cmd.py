"""`sockscope tui` (and `sockscope` alone): the live terminal UI."""

from __future__ import annotations

import argparse
import sys

from . import UsageError
from .common import add_collection_arguments


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad interval {text!r}: expected seconds, e.g. 1 or 0.5") from None
    if not 0.1 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"interval {value:g} out of range 0.1-3600 seconds")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--interval", type=_interval, default=1.0, metavar="SECONDS",
        help="seconds between refreshes of the listening sockets (default 1); full dumps adapt to their cost",
    )
    add_collection_arguments(parser)


def run(args: argparse.Namespace) -> int:
    # Check the namespace and the collector before the screen changes: a bad --netns is
    # one clear line and exit status 2, never a traceback inside the app.
    from sockscope.collectors.snapshotter import Collector, CollectorError

    try:
        Collector(netns=args.netns, method=args.collector, read_options=False, resolve_owners=False).close()
    except CollectorError as exc:
        raise UsageError(str(exc)) from None
    if args.netns:
        from sockscope.collectors import netns as netns_mod

        try:
            with netns_mod.entered(args.netns):
                pass
        except OSError as exc:
            raise UsageError(exc.strerror or str(exc)) from None

    # Without a terminal the app would write escape codes into a file or pipe forever.
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("the live UI needs a terminal (stdin and stdout); "
                         "for a one-shot table use `sockscope list` (or `list --json`)")

    from sockscope.tui import SockscopeApp

    app = SockscopeApp(netns=args.netns, method=args.collector, interval=args.interval)
    result = app.run()
    if app.return_code:  # a crash (the one line was printed) or an error exit
        return app.return_code
    return int(result or 0)
