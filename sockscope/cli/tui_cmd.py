"""`sockscope tui` (and `sockscope` alone): the live terminal UI."""

from __future__ import annotations

import argparse
import re
import sys

from . import UsageError
from .common import add_collection_arguments, resolve_netns
from .kill_cmd import add_readonly_argument, readonly


_SECONDS = re.compile(r"[0-9]{1,6}(\.[0-9]{0,6})?|\.[0-9]{1,6}")  # ASCII: float() takes "１２" and "1e3"


def _interval(text: str) -> float:
    if not _SECONDS.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"bad interval {text!r}: expected seconds, e.g. 1 or 0.5")
    value = float(text)
    if not 0.1 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"interval {value:g} out of range 0.1-3600 seconds")
    return value


def _budget(text: str) -> float:
    try:
        if not text.isascii():
            raise ValueError(text)
        value = float(text.rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad CPU budget {text!r}: expected a percentage of one core, e.g. 5") from None
    if not 0.1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"CPU budget {value:g} out of range 0.1-100 (% of one core)")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--interval", type=_interval, default=1.0, metavar="SECONDS",
        help="seconds between refreshes of the listening sockets (default 1); full dumps adapt to their cost",
    )
    parser.add_argument(
        "--cpu-budget", type=_budget, default=5.0, metavar="PCT",
        help="average CPU the collection may use, in %% of one core (default 5): refreshes are "
        "spaced out when collecting costs more",
    )
    add_readonly_argument(parser)
    add_collection_arguments(parser, all_netns=True)


def run(args: argparse.Namespace) -> int:
    # Check the namespace and the collector before the screen changes: a bad --netns is
    # one clear line and exit status 2, never a traceback inside the app.
    from sockscope.collectors.snapshotter import Collector, CollectorError

    if args.all_netns and args.netns is not None:
        raise UsageError("--netns and --all-netns exclude each other")
    target, label = resolve_netns(args.netns)
    try:
        Collector(netns=target, method=args.collector, read_options=False, resolve_owners=False).close()
    except CollectorError as exc:
        raise UsageError(str(exc)) from None

    # Without a terminal the app would write escape codes into a file or pipe forever.
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("the live UI needs a terminal (stdin and stdout); "
                         "for a one-shot table use `sockscope list` (or `list --json`)")

    from sockscope.tui import SockscopeApp

    app = SockscopeApp(netns=target, method=args.collector, interval=args.interval, readonly=readonly(args),
                       all_netns=args.all_netns, netns_label=label, cpu_budget=args.cpu_budget / 100.0)
    result = app.run()
    if app.return_code:  # a crash (the one line was printed) or an error exit
        return app.return_code
    return int(result or 0)
