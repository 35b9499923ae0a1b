"""`sockscope exporter`: a Prometheus exporter of per-port socket counts and the signals.

Collection runs in a background thread every --interval seconds; scrapes read the last
finished collection. --textfile writes the same for node_exporter's textfile collector.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from .common import add_collection_arguments, resolve_netns
from .signals_cmd import _positive


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected ADDR:PORT (e.g. 127.0.0.1:9810 or [::]:9810), not {text!r}")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def _watch(text: str) -> tuple[str, int]:
    proto, sep, port = text.rpartition(":")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp") or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected PORT, tcp:PORT or udp:PORT, not {text!r}")
    return proto, int(port)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sockscope.exporter.metrics import DEFAULT_MAX_SERIES, DEFAULT_TOP_DESTINATIONS

    parser.add_argument("--listen", type=_listen, default=("127.0.0.1", 9810), metavar="ADDR:PORT",
                        help="where to serve /metrics (default 127.0.0.1:9810)")
    parser.add_argument("--interval", type=_positive(float, 1, 3600), default=15.0, metavar="SECONDS",
                        help="seconds between collections (default 15), independent of scrapes")
    parser.add_argument("--max-series", type=_positive(int, 100, 10_000_000), default=DEFAULT_MAX_SERIES,
                        metavar="N", help=f"series budget (default {DEFAULT_MAX_SERIES}); what does not fit is "
                        "counted in sockscope_series_dropped")
    parser.add_argument("--top", type=_positive(int, 1, 10_000), default=DEFAULT_TOP_DESTINATIONS, metavar="N",
                        help=f"destinations with ephemeral-port series (default {DEFAULT_TOP_DESTINATIONS})")
    parser.add_argument("--watch-port", type=_watch, action="append", default=[], metavar="[tcp:|udp:]PORT",
                        help="publish the bind verdict of a new server on 0.0.0.0:PORT (repeatable)")
    parser.add_argument("--textfile", metavar="PATH",
                        help="also write PATH (*.prom) for node_exporter's textfile collector (atomic rename)")
    parser.add_argument("--once", action="store_true",
                        help="collect once, write --textfile (or print the metrics) and exit")
    add_collection_arguments(parser, all_netns=True)


def targets_of(args: argparse.Namespace) -> Callable[[], list[tuple[str | None, str]]]:
    """The namespaces to read each cycle, as (what Collector opens, netns label) pairs.
    With --all-netns, every namespace of the host, found again each cycle: new ones are
    picked up at the next cycle and vanished ones closed by the runner."""
    from sockscope.cli import UsageError

    if getattr(args, "all_netns", False):
        if args.netns is not None:
            raise UsageError("--netns and --all-netns exclude each other")
        from sockscope.collectors.namespaces import Discovery

        discovery = Discovery()

        def every() -> list[tuple[str | None, str]]:
            return [(ns.names[0] if ns.names else ns.path, ns.ref.name) for ns in discovery.discover()]

        return every
    target, label = resolve_netns(args.netns)  # pid:PID and container names too
    specs: list[tuple[str | None, str]] = [(target, label or "")]
    return lambda: specs


def run(args: argparse.Namespace) -> int:
    from prometheus_client import generate_latest, start_http_server

    from sockscope.cli import UsageError
    from sockscope.collectors.snapshotter import Collector, CollectorError
    from sockscope.exporter.runner import ExporterRunner

    targets = targets_of(args)
    try:
        for target, _label in targets()[:1]:  # a bad --netns fails here, before serving anything
            Collector(netns=target, method=args.collector, read_options=False, resolve_owners=False).close()
    except CollectorError as exc:
        raise UsageError(str(exc)) from None
    if args.textfile and not args.textfile.endswith(".prom"):
        raise UsageError(f"--textfile must end in .prom (node_exporter reads only those): {args.textfile!r}")
    runner = ExporterRunner(targets, interval=args.interval, max_series=args.max_series,
                            top_destinations=args.top, watch=args.watch_port, method=args.collector,
                            textfile=args.textfile)
    if args.once:
        runner.collect_once()
        if not args.textfile:
            sys.stdout.write(generate_latest(runner.registry).decode())
        runner.close()
        return 0
    host, port = args.listen
    try:
        server, _thread = start_http_server(port, addr=host, registry=runner.registry)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    # Runs for days: what the collectors hold stays out of the GC's walks (gcpause.py).
    from sockscope.collectors.gcpause import freeze_between_refreshes

    freeze_between_refreshes()
    runner.collect_once()  # the first scrape already has data
    runner.start()
    print(f"sockscope exporter: serving http://{host}:{port}/metrics, collecting every {args.interval:g} s",
          file=sys.stderr)
    try:
        while True:
            time.sleep(3600)
    finally:
        runner.stop()
        server.shutdown()
        runner.close()
