"""`sockscope list`: a one-shot table of sockets like ss, with owners and reuse options."""

from __future__ import annotations

import argparse
import shutil
import sys

from sockscope.formatting import endpoint, options_text, owner_text
from sockscope import states, userinput
from sockscope.model import Snapshot, SocketRecord
from sockscope.sanitize import host_text
from sockscope.serialize import json_chunks

from . import UsageError
from .common import add_collection_arguments, take_snapshot, warn, write_json_chunks, write_out

OPTIONS_HELP = (
    "The OPT column shows three flags: A = SO_REUSEADDR, P = SO_REUSEPORT, 6 = IPV6_V6ONLY; "
    "'-' = off, '?' = unknown (could not be read), blank = not applicable. A bound device "
    "shows as %DEV after the local address, as in ss."
)


def parse_states(text: str) -> frozenset[str]:
    """"listen,estab" -> {"LISTEN", "ESTAB"}: sockscope.states' words, as the filter's `state`."""
    try:
        return states.parse_state_list(text)
    except states.StateError as exc:
        raise UsageError(str(exc)) from None


def parse_port(text: str) -> int:
    try:
        return userinput.parse_port(text)
    except userinput.InputError as exc:
        raise UsageError(str(exc)) from None


def parse_pid(text: str) -> int:
    try:
        return userinput.parse_pid(text)
    except userinput.InputError as exc:
        raise UsageError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = OPTIONS_HELP
    parser.add_argument("--json", action="store_true", help="print a JSON list of socket objects")
    parser.add_argument("-t", "--tcp", action="store_true", help="TCP sockets only")
    parser.add_argument("-u", "--udp", action="store_true", help="UDP sockets only")
    parser.add_argument(
        "-s", "--state", metavar="STATE[,STATE]",
        help="only these states (ss names, e.g. listen,estab,time-wait; or listening, connected, all)",
    )
    parser.add_argument("-p", "--port", metavar="PORT", help="only sockets whose LOCAL port is PORT")
    parser.add_argument("--pid", metavar="PID", help="only sockets held by process PID")
    parser.add_argument("-w", "--wide", action="store_true", help="never shorten addresses or owners")
    add_collection_arguments(parser, all_netns=True)


def select(snapshot: Snapshot, port: int | None, pid: int | None) -> list[SocketRecord]:
    records = snapshot.sockets
    if port is not None:
        records = [r for r in records if r.local_port == port]
    if pid is not None:
        records = [r for r in records if any(o.pid == pid for o in r.owners)]
    return records


def _shorten(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    if width <= 1:
        return text[:width]
    keep = width - 1
    head = keep // 2
    return text[:head] + "…" + text[len(text) - (keep - head):]


def render_table(records: list[SocketRecord], width: int, wide: bool) -> str:
    rows = [
        (
            r.proto,
            r.state,
            endpoint(r.local_addr, r.local_port, r.family, r.device),
            endpoint(r.peer_addr, r.peer_port, r.family, peer=True),
            options_text(r),
            owner_text(r, with_user=True),
        )
        for r in records
    ]
    header = ("Net", "State", "Local", "Peer", "Opt", "Owner")
    # `--all-netns`: a Netns column first (namespace names are host text)
    names = [host_text(r.netns.name) for r in records if r.netns is not None]
    w_ns = 0
    if names:
        names = [host_text(r.netns.name) if r.netns is not None else "" for r in records]
        w_ns = max([5] + [len(n) for n in names])
        if not wide:
            w_ns = min(w_ns, NETNS_WIDTH)
        width = max(width - w_ns - 1, 40)
    w_state = max([len(header[1])] + [len(x[1]) for x in rows])
    w_local = max([len(header[2])] + [len(x[2]) for x in rows])
    w_peer = max([len(header[3])] + [len(x[3]) for x in rows])
    if not wide:
        # Fixed parts: "udp " + state + 2 spaces + opt(3) + 2 spaces, and at least 12 for the owner.
        room = width - (4 + w_state + 1 + 2 + 3 + 2 + 12) - 2
        if w_local + w_peer > room:
            share = max(room // 2, 15)
            if w_local > share and w_peer > share:
                w_local = w_peer = share
            elif w_local > share:
                w_local = max(room - w_peer, share)
            else:
                w_peer = max(room - w_local, share)
    w_owner = max(width - (4 + w_state + 1 + w_local + 1 + w_peer + 2 + 3 + 2), 8)
    out: list[str] = []
    fmt = f"{{:<3}} {{:<{w_state}}} {{:<{w_local}}} {{:<{w_peer}}}  {{:<3}}  {{}}"
    ns_fmt = f"{{:<{w_ns}}} " if w_ns else ""
    out.append((ns_fmt.format("Netns") + fmt.format(*header)).rstrip())
    for i, (proto, state, local, peer, opts, owner) in enumerate(rows):
        if not wide:
            local = _shorten(local, w_local)
            peer = _shorten(peer, w_peer)
            owner = _shorten(owner, w_owner)
        prefix = ns_fmt.format(names[i] if wide else _shorten(names[i], w_ns)) if w_ns else ""
        out.append((prefix + fmt.format(proto, state, local, peer, opts, owner)).rstrip())
    return "\n".join(out) + "\n"


NETNS_WIDTH = 16  # the Netns column (--all-netns) is shortened to this unless -w


def run(args: argparse.Namespace) -> int:
    wanted = parse_states(args.state) if args.state is not None else None
    port = parse_port(args.port) if args.port is not None else None
    pid = parse_pid(args.pid) if args.pid is not None else None
    protos: tuple[str, ...] = ("tcp", "udp")
    if args.tcp and not args.udp:
        protos = ("tcp",)
    elif args.udp and not args.tcp:
        protos = ("udp",)
    # `-p PORT`: a one-port snapshot decodes, and finds owners for, that port's sockets only.
    snapshot = take_snapshot(args, states=wanted, protos=protos, port=port)
    if snapshot.limitation:
        warn(snapshot.limitation)
    records = select(snapshot, port, pid)
    if args.json:
        write_json_chunks(json_chunks(records))
    else:
        width = shutil.get_terminal_size((80, 24)).columns if sys.stdout.isatty() else 80
        write_out(render_table(records, width, args.wide))
    return 0
