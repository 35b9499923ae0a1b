"""Options shared by the subcommands that take a snapshot."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from itertools import chain

from sockscope.sanitize import terminal_text

NETNS_HELP = (
    "read another network namespace: an `ip netns` name, pid:PID (the namespace of that "
    "process), a container name or id (a unique prefix), or a path to a namespace file"
)


class OutputError(Exception):
    """Standard output cannot be written (a full disk, a closed descriptor): one line, exit 1."""


def write_out(text: str, *, raw: bool = False) -> None:
    """Write `text` to standard output. Text passes the terminal guard (host strings in it
    should already have passed `host_text()`; this catches any that did not); `raw` is for
    JSON, which escapes every control character itself. A broken pipe propagates (the
    reader left: a quiet exit); other write errors become OutputError."""
    _write_pieces((text if raw else terminal_text(text),))


def write_json_chunks(chunks: Iterable[str]) -> None:
    """Write JSON text piece by piece (serialize.json_chunks), then a newline: the pieces
    are never joined into one string, nor encoded into one bytes object. Errors as
    write_out's."""
    _write_pieces(chain(chunks, ("\n",)))


def _write_pieces(pieces: Iterable[str]) -> None:
    try:
        write = sys.stdout.write
        for piece in pieces:
            write(piece)
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OutputError(exc.strerror or str(exc)) from None


def warn(text: str) -> None:
    """One line on standard error, through the terminal guard (it may quote host strings)."""
    if sys.stderr is None:  # started with stderr closed: print() would write to stdout
        return
    try:
        print(f"sockscope: {terminal_text(text)}", file=sys.stderr)
    except OSError:
        pass  # nowhere left to say it


def add_collection_arguments(parser: argparse.ArgumentParser, all_netns: bool = False) -> None:
    parser.add_argument("--netns", metavar="NAME", help=NETNS_HELP)
    if all_netns:
        parser.add_argument(
            "--all-netns", action="store_true",
            help="every network namespace of the host (containers, `ip netns`, unshared processes)",
        )
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


def resolve_netns(spec: str | None) -> tuple[str | None, str | None]:
    """(what Collector opens, the name to show) for a --netns SPEC; UsageError if it names
    no namespace. An `ip netns` name or a path is used as it is (no discovery needed);
    pid:PID and container names go through discovery."""
    from sockscope.cli import UsageError
    from sockscope.collectors import netns as netns_mod
    from sockscope.collectors.namespaces import Discovery, NamespaceError

    if spec is None:
        return None, None
    if spec.startswith("/"):
        return spec, spec
    if spec and "/" not in spec and spec not in (".", "..") and not spec.startswith("pid:"):
        try:
            if os.path.exists(netns_mod.netns_path(spec)):
                return spec, spec
        except ValueError:
            pass
    try:
        ns = Discovery().resolve(spec)
    except NamespaceError as exc:
        raise UsageError(str(exc)) from None
    if ns.names:
        return ns.names[0], ns.ref.name
    return ns.path, ns.ref.name


# Set by cli.entry (the `sockscope` command), which ends the process right after a one-shot
# command: its snapshot is left here instead of freed. Freeing 100,000 records one object
# at a time took 0.06 s of a cold `list --json`; the kernel drops the whole address space
# at once. In-process callers of main() (tests) leave it None, so nothing is kept.
left_for_exit: list[object] | None = None


def take_snapshot(args: argparse.Namespace, states=None, protos=("tcp", "udp"), port: int | None = None):
    """One snapshot for a one-shot command; collector failures become usage errors."""
    from sockscope.cli import UsageError
    from sockscope.collectors.snapshotter import Collector, CollectorError

    if getattr(args, "all_netns", False):
        if args.netns is not None:
            raise UsageError("--netns and --all-netns exclude each other")
        from sockscope.collectors.multi import MultiCollector

        with MultiCollector(method=args.collector, one_shot=True, use_bpf=not getattr(args, "no_bpf", False)) as multi:
            snap = multi.snapshot(states=states, protos=protos, port=port)
        if left_for_exit is not None:
            left_for_exit.append(snap)
        return snap
    target, label = resolve_netns(args.netns)
    try:
        with Collector(netns=target, method=args.collector, use_bpf=not getattr(args, "no_bpf", False),
                       one_shot=True) as collector:
            snap = collector.snapshot(states=states, protos=protos, port=port)
    except CollectorError as exc:
        raise UsageError(str(exc)) from None
    if label is not None:
        snap.netns = label
    if left_for_exit is not None:
        left_for_exit.append(snap)
    return snap
