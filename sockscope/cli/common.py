"""Options shared by the subcommands that take a snapshot."""

from __future__ import annotations

import argparse


def add_collection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--netns", metavar="NAME", help="watch the named network namespace (/run/netns/NAME)")
    parser.add_argument(
        "--collector",
        choices=("auto", "sockdiag", "procfs"),
        default="auto",
        help="how to read socket tables: netlink sock_diag (default when available) or the /proc/net tables",
    )
    parser.add_argument(
        "--no-bpf",
        action="store_true",
        help="do not read socket flags with BPF iterators (read them with pidfd_getfd, as without root)",
    )


def take_snapshot(args: argparse.Namespace, states=None, protos=("tcp", "udp"), port: int | None = None):
    """One snapshot for a one-shot command; collector failures become usage errors."""
    from sockscope.cli import UsageError
    from sockscope.collectors.snapshotter import Collector, CollectorError

    try:
        with Collector(netns=args.netns, method=args.collector, use_bpf=not getattr(args, "no_bpf", False)) as collector:
            return collector.snapshot(states=states, protos=protos, port=port)
    except CollectorError as exc:
        raise UsageError(str(exc)) from None
