"""`sockscope tui` (and `sockscope` alone): the live terminal UI."""

from __future__ import annotations

import argparse

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

    from sockscope.tui import SockscopeApp

    app = SockscopeApp(netns=args.netns, method=args.collector, interval=args.interval,
                        cpu_budget=args.cpu_budget / 100.0)
    result = app.run()
    return int(result or 0)
