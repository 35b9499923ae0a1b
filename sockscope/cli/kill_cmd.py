"""`sockscope kill SOCKET...`: free a port, safely.

Default: destroy exactly the selected sockets (SOCK_DESTROY through sock_diag, what
`ss -K` does). `--process`: send SIGTERM to the processes that hold them, then SIGKILL
after a second confirmation if they are still running. Always a preview of exactly what
will happen first, then an explicit confirmation (`--yes` when stdin is not a
terminal). `--readonly` (or SOCKSCOPE_READONLY=1) refuses every action.

Exit status: 0 done, 1 refused by the kernel or not confirmed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any


from sockscope.predict.freeing import SIGTERM_WAIT_S

from sockscope.sanitize import terminal_text

from .common import add_collection_arguments, take_snapshot, write_out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sockets", metavar="SOCKET", nargs="+",
                        help="a socket cookie, PID:FD, or ADDR:PORT of a listener (as `check --like`)")
    parser.add_argument("--process", action="store_true",
                        help="signal the owning processes (SIGTERM, then SIGKILL after a second confirmation) "
                        "instead of destroying the sockets")
    parser.add_argument("--yes", action="store_true", help="confirm without asking (required when stdin is not a terminal)")
    parser.add_argument("--sigkill", action="store_true",
                        help="with --process --yes: send SIGKILL to a process still running "
                        f"{SIGTERM_WAIT_S:.0f} s after SIGTERM")
    add_readonly_argument(parser)
    add_collection_arguments(parser)


def add_readonly_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--readonly", action="store_true",
                        help="never act on the host: refuse to destroy sockets or signal processes "
                        "(also SOCKSCOPE_READONLY=1)")


def readonly(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "readonly", False)) or os.environ.get("SOCKSCOPE_READONLY", "") not in ("", "0")


def confirm(question: str, args: argparse.Namespace) -> bool:
    """Explicit confirmation: --yes, or a typed "yes"/"y" on a terminal."""
    if args.yes:
        return True
    if not sys.stdin.isatty():
        return False
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def _not_confirmed(args: argparse.Namespace) -> None:
    if not sys.stdin.isatty():
        print("sockscope kill: stdin is not a terminal: nothing was done; add --yes to confirm the preview above",
              file=sys.stderr)
    else:
        print("sockscope kill: not confirmed: nothing was done", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from sockscope.cli import UsageError

    from .rehearse_cmd import find_socket

    if args.sigkill and not (args.process and args.yes):
        raise UsageError("--sigkill goes with --process --yes")
    if readonly(args):
        print("sockscope kill: read-only mode (--readonly or SOCKSCOPE_READONLY): nothing was done", file=sys.stderr)
        return 1
    snapshot = take_snapshot(args)
    recs: list[Any] = []
    for spec in args.sockets:
        rec = find_socket(snapshot, spec)
        if all(rec is not r for r in recs):
            recs.append(rec)
    if args.process:
        return _signal(args, snapshot, recs)
    return _destroy(args, snapshot, recs)


def _destroy(args: argparse.Namespace, snapshot: Any, recs: list[Any]) -> int:
    from sockscope.collectors.destroy import ActionError, destroy_socket
    from sockscope.predict.explain import describe

    from sockscope.predict.freeing import destroy_preview

    write_out("\n".join(destroy_preview(recs, snapshot)) + "\n")
    if not confirm("Destroy these sockets?", args):
        _not_confirmed(args)
        return 1
    failed = 0
    for r in recs:
        try:
            destroy_socket(r, args.netns)
        except ActionError as exc:
            failed += 1
            print(terminal_text(f"sockscope kill: {describe(r)}: {exc.strerror or exc}"), file=sys.stderr)
        else:
            write_out(f"destroyed: {describe(r)}\n")
    return 1 if failed else 0


def _signal(args: argparse.Namespace, snapshot: Any, recs: list[Any]) -> int:
    from sockscope.collectors.destroy import ActionError, ProcessHandle

    owners: dict[int, Any] = {}
    inode_of: dict[int, int] = {}
    for r in recs:
        if not r.owners:
            print(f"sockscope kill: no process holds cookie {r.cookie} ({r.state}): nothing to signal", file=sys.stderr)
            return 1
        for o in r.owners:
            owners.setdefault(o.pid, o)
            inode_of.setdefault(o.pid, r.inode)
    from sockscope.collectors.destroy import read_cmdline
    from sockscope.predict.freeing import process_preview

    cmdlines = {pid: read_cmdline(pid) for pid in owners}
    write_out("\n".join(process_preview(owners, snapshot, cmdlines, SIGTERM_WAIT_S)) + "\n")
    if not confirm("Send SIGTERM to these processes?", args):
        _not_confirmed(args)
        return 1
    failed = 0
    handles: list[ProcessHandle] = []
    for pid in sorted(owners):
        try:
            handles.append(ProcessHandle(pid, inode_of[pid]))
        except ActionError as exc:
            failed += 1
            print(terminal_text(f"sockscope kill: {exc.strerror or exc}"), file=sys.stderr)
    try:
        for h in handles:
            if not _send(h, signal.SIGTERM):
                failed += 1
        for h in handles:
            if h.wait_exit(SIGTERM_WAIT_S):
                write_out(f"pid {h.pid} exited\n")
                continue
            question = f"pid {h.pid} is still running {SIGTERM_WAIT_S:.0f} s after SIGTERM. Send SIGKILL?"
            if not (args.sigkill or (not args.yes and confirm(question, args))):
                print(f"pid {h.pid} still running; SIGKILL not confirmed", file=sys.stderr)
                failed += 1
                continue
            if not _send(h, signal.SIGKILL):
                failed += 1
    finally:
        for h in handles:
            h.close()
    return 1 if failed else 0


def _send(h: Any, sig: signal.Signals) -> bool:
    """Signal one process (through its pidfd) and say so; a refusal is one line on stderr."""
    from sockscope.collectors.destroy import ActionError

    try:
        h.send(sig)
    except ActionError as exc:
        print(terminal_text(f"sockscope kill: {exc.strerror or exc}"), file=sys.stderr)
        return False
    write_out(f"{sig.name} sent to pid {h.pid}\n")
    return True
