"""Command-line entry point. Subcommands live in their own modules and are imported
lazily so that `sockscope list` never pays for importing Textual."""

from __future__ import annotations

import argparse
import importlib
import sys

from sockscope import __version__

# subcommand -> module under sockscope.cli exposing add_arguments(parser) and run(args) -> int
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "list": ("list_cmd", "list sockets like ss, with owners and reuse options"),
    "check": ("check_cmd", "predict whether a bind()/listen() would succeed, and why"),
    "why": ("why_cmd", "who holds a port, why a bind fails, and what would work"),
    "tui": ("tui_cmd", "the live terminal UI (the default with no subcommand)"),
    "signals": ("signals_cmd", "listener health, ephemeral-port pressure, leaks, reuseport groups"),
    "exporter": ("exporter_cmd", "a Prometheus exporter of the signals and per-port socket counts"),
}


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sockscope",
        description="A Linux host's TCP and UDP sockets with their owners and "
        "SO_REUSEADDR/SO_REUSEPORT/IPV6_V6ONLY/SO_BINDTODEVICE, and bind() conflict prediction.",
    )
    parser.add_argument("--version", action="version", version=f"sockscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        mod = importlib.import_module(f"sockscope.cli.{module}")
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod.add_arguments(p)
        p.set_defaults(_module=mod)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv = ["tui", *argv]
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_module", None):
        parser.print_help()
        return 2
    try:
        return int(args._module.run(args) or 0)
    except UsageError as exc:
        print(f"sockscope {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
