"""`sockscope bpf pin|unpin|status`: share the kernel-flag iterators with other users.

`pin` (root) loads sockscope's TCP and UDP iterators and pins their links read-only in a
bpffs; any user's sockscope then reads every socket's reuse flags and the TCP bind
buckets by opening those files (each reader sees its own network namespace).
"""

from __future__ import annotations

import argparse
import os
import sys

from sockscope.sanitize import host_text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sockscope.collectors.bpf.iterators import PIN_DIR

    parser.add_argument("action", choices=("pin", "unpin", "status"),
                        help="pin: pin read-only iterator links (root); unpin: remove them; status: what works here")
    parser.add_argument("--dir", default=PIN_DIR, metavar="DIR",
                        help=f"the bpffs directory to pin in (default {PIN_DIR})")


def run(args: argparse.Namespace) -> int:
    from sockscope.cli import UsageError
    from sockscope.collectors.bpf.iterators import BpfUnavailable, SocketIterators
    from sockscope.collectors.bpf.pin import PinError, pin, unpin

    pin_dir = os.path.abspath(args.dir)
    if args.action == "status":
        try:
            its = SocketIterators.open(pin_dir=pin_dir)
        except BpfUnavailable as exc:
            print(f"BPF iterators: unavailable: {host_text(str(exc))}")
            return 1
        with its:
            covered = [p for p in ("tcp", "udp") if its.covers(p)]
            how = "loaded by this process" if its.source == "loaded" else f"read through the pins in {pin_dir}"
            print(f"BPF iterators: {', '.join(covered)} ({how})")
            if its.note:
                print(f"note: {host_text(its.note)}")
        return 0
    if os.geteuid() != 0:
        raise UsageError(f"{args.action} needs root")
    if args.action == "unpin":
        for path in unpin(pin_dir):
            print(f"removed {host_text(path)}")
        return 0
    try:
        paths, notes = pin(pin_dir)
    except (PinError, BpfUnavailable) as exc:
        print(f"sockscope bpf: {host_text(str(exc))}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"sockscope bpf: pinning failed: {host_text(exc.strerror or str(exc))}", file=sys.stderr)
        return 1
    for note in notes:
        print(host_text(note))
    for path in paths:
        print(f"pinned {host_text(path)} (mode 0444)")
    print("Any user's sockscope now reads reuse flags and bind buckets of its own network namespace "
          "through these files; `sockscope bpf unpin` removes them.")
    return 0
