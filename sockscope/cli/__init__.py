"""Command-line entry point. Subcommands live in their own modules and are imported
lazily so that `sockscope list` never pays for importing Textual."""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
from typing import NoReturn

from sockscope import __version__
from sockscope.sanitize import host_text

# subcommand -> module under sockscope.cli exposing add_arguments(parser) and run(args) -> int
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "list": ("list_cmd", "list sockets like ss, with owners and reuse options"),
    "check": ("check_cmd", "predict whether a bind()/listen() would succeed, and why"),
    "why": ("why_cmd", "who holds a port, why a bind fails, and what would work"),
    "kill": ("kill_cmd", "free a port: destroy selected sockets, or signal their processes (with a preview and confirmation)"),
    "tui": ("tui_cmd", "the live terminal UI (the default with no subcommand)"),
    "bpf": ("bpf_cmd", "pin or unpin the BPF iterators that read socket flags for other users"),
    "signals": ("signals_cmd", "listener health, ephemeral-port pressure, leaks, reuseport groups"),
    "exporter": ("exporter_cmd", "a Prometheus exporter of the signals and per-port socket counts"),
}

# Commands that take a snapshot or a few and exit: they run without the cyclic garbage
# collector. What they build holds no reference cycle (reference counting frees it), and
# the collector's walks over 100,000 fresh records were ~90 ms of a cold `list`
# (collectors/gcpause.py). The TUI and the exporter run for days and keep it.
ONE_SHOT = frozenset({"list", "check", "why", "kill", "bpf", "signals"})


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, with bad usage as one line on stderr (no usage block) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        # argparse quotes some arguments with repr() and others raw: one safe line either way.
        self.exit(2, f"{self.prog}: {host_text(message)} (see {self.prog} -h)\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand; with `only`, the options of that one alone are added
    (the others keep their one-line help), so `sockscope list` imports neither Textual nor
    the exporter: about 40 ms of a cold run."""
    parser = _Parser(
        prog="sockscope",
        description="A Linux host's TCP and UDP sockets with their owners and "
        "SO_REUSEADDR/SO_REUSEPORT/IPV6_V6ONLY/SO_BINDTODEVICE, and bind() conflict prediction.",
    )
    parser.add_argument("--version", action="version", version=f"sockscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if only is None or name == only:
            mod = importlib.import_module(f"sockscope.cli.{module}")
            mod.add_arguments(p)
            p.set_defaults(_module=mod)
    return parser


def entry() -> NoReturn:
    """The `sockscope` command (console script, `python -m sockscope`): main(), and after a
    one-shot command that took a snapshot, an exit that skips freeing it (see
    common.left_for_exit). Output is flushed first; an output error takes the usual exit."""
    from . import common

    common.left_for_exit = []
    try:
        status = main()
        kept = bool(common.left_for_exit)
    finally:
        common.left_for_exit = None  # nothing kept for a caller that goes on (tests)
    if kept:
        try:
            for stream in (sys.stdout, sys.stderr):
                if stream is not None:  # None: started with that descriptor closed
                    stream.flush()
        except (OSError, ValueError):
            raise SystemExit(status) from None
        os._exit(status)
    raise SystemExit(status)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv = ["tui", *argv]
    parser = build_parser(argv[0] if argv and argv[0] in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "_module", None):
        parser.print_help()
        return 2
    if sys.stdout is None:  # started with stdout closed (`sockscope list >&-`)
        print(f"sockscope {args.command}: cannot write the output: standard output is closed", file=sys.stderr)
        return 1
    if args.command not in ONE_SHOT or not gc.isenabled():
        return _run(args)
    from . import common

    # Off for the command, and back on for a caller that goes on (tests call main()); not
    # for the `sockscope` command (entry), which exits next: turned on with 600,000 objects
    # allocated meanwhile, the collector could walk them all before the exit.
    gc.disable()
    try:
        return _run(args)
    finally:
        if common.left_for_exit is None:
            gc.enable()


def _run(args: argparse.Namespace) -> int:
    from sockscope.sanitize import terminal_text

    from .common import OutputError

    try:
        status = int(args._module.run(args) or 0)
        sys.stdout.flush()
        return status
    except UsageError as exc:
        print(f"sockscope {args.command}: {terminal_text(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except (OutputError, OSError) as exc:
        # A full disk, a closed descriptor: one line, never a traceback. (OSErrors of
        # the collectors become UsageErrors before they get here; what is left is output.)
        _drop_stdout()
        text = str(exc) if isinstance(exc, OutputError) else (exc.strerror or str(exc))
        print(f"sockscope {args.command}: cannot write the output: {terminal_text(text)}", file=sys.stderr)
        return 1


def _drop_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's last flush of what is still
    buffered does not fail again (and print "Exception ignored ...")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _quiet_broken_pipe() -> int:
    """The reader went away (`sockscope list | head -1`): stop quietly, with the status a
    process killed by SIGPIPE has, as ss or cat would."""
    _drop_stdout()
    return 128 + 13
