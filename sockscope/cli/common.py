"""Options shared by the subcommands that take a snapshot."""

from __future__ import annotations

import argparse


def add_collection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--netns", metavar="NAME", help="watch the named network namespace (/run/netns/NAME)")
    parser.add_argument(
        "--collector",
        choices=("auto", "sockdiag", "procfs"),
        default="auto",
        help="how to read socket tables: netlink sock_diag (default when available) or /proc/net via psutil",
    )
