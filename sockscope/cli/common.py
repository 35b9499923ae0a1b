"""Options shared by the subcommands that take a snapshot."""

from __future__ import annotations

import argparse
import sys

from sockscope.sanitize import terminal_text


class OutputError(Exception):
    """Standard output cannot be written (a full disk, a closed descriptor): one line, exit 1."""


def write_out(text: str, *, raw: bool = False) -> None:
    """Write `text` to standard output. Text passes the terminal guard (host strings in it
    should already have passed `host_text()`; this catches any that did not); `raw` is for
    JSON, which escapes every control character itself. A broken pipe propagates (the
    reader left: a quiet exit); other write errors become OutputError."""
    try:
        sys.stdout.write(text if raw else terminal_text(text))
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OutputError(exc.strerror or str(exc)) from None


def warn(text: str) -> None:
    """One line on standard error, through the terminal guard (it may quote host strings)."""
    try:
        print(f"sockscope: {terminal_text(text)}", file=sys.stderr)
    except OSError:
        pass  # nowhere left to say it


def add_collection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--netns", metavar="NAME", help="watch the named network namespace (/run/netns/NAME)")
    parser.add_argument(
        "--collector",
        choices=("auto", "sockdiag", "procfs"),
        default="auto",
        help="how to read socket tables: netlink sock_diag (default when available) or /proc/net via psutil",
    )


def take_snapshot(args: argparse.Namespace, states=None, protos=("tcp", "udp"), port: int | None = None):
    """One snapshot for a one-shot command; collector failures become usage errors."""
    from sockscope.cli import UsageError
    from sockscope.collectors.snapshotter import Collector, CollectorError

    try:
        with Collector(netns=args.netns, method=args.collector) as collector:
            return collector.snapshot(states=states, protos=protos, port=port)
    except CollectorError as exc:
        raise UsageError(str(exc)) from None
