"""`sockscope list`: a one-shot table of sockets like ss, with owners and reuse options."""

from __future__ import annotations

import argparse
import shutil
import sys

from sockscope.formatting import endpoint, options_text, owner_text
from sockscope.model import STATE_NAMES, Snapshot, SocketRecord
from sockscope.serialize import records_to_json

from . import UsageError
from .common import add_collection_arguments, take_snapshot, warn, write_out

STATE_ALIASES: dict[str, frozenset[str]] = {
    "all": frozenset(STATE_NAMES),
    "listening": frozenset({"LISTEN", "UNCONN"}),
    "connected": frozenset(STATE_NAMES) - {"LISTEN", "UNCONN", "TIME-WAIT"},
    "established": frozenset({"ESTAB"}),
    "timewait": frozenset({"TIME-WAIT"}),
    "synrecv": frozenset({"SYN-RECV"}),
    "synsent": frozenset({"SYN-SENT"}),
    "closewait": frozenset({"CLOSE-WAIT"}),
    "finwait1": frozenset({"FIN-WAIT-1"}),
    "finwait2": frozenset({"FIN-WAIT-2"}),
    "lastack": frozenset({"LAST-ACK"}),
    "unconnected": frozenset({"UNCONN"}),
}

OPTIONS_HELP = (
    "The OPT column shows three flags: A = SO_REUSEADDR, P = SO_REUSEPORT, 6 = IPV6_V6ONLY; "
    "'-' = off, '?' = unknown (could not be read), blank = not applicable. A bound device "
    "shows as %DEV after the local address, as in ss."
)


def parse_states(text: str) -> frozenset[str]:
    """"listen,estab" -> {"LISTEN", "ESTAB"}; ss names, case-insensitive, plus aliases."""
    wanted: set[str] = set()
    for part in text.split(","):
        name = part.strip()
        if not name:
            continue
        upper = name.upper()
        if upper in STATE_NAMES:
            wanted.add(upper)
            continue
        alias = STATE_ALIASES.get(name.lower().replace("-", "").replace("_", ""))
        if alias is None:
            choices = ", ".join(s.lower() for s in STATE_NAMES)
            raise UsageError(f"unknown state {name!r}: choose from {choices}, or listening, connected, all")
        wanted |= alias
    if not wanted:
        raise UsageError("--state needs at least one state name")
    return frozenset(wanted)


def parse_port(text: str) -> int:
    try:
        port = int(text, 10)
    except ValueError:
        raise UsageError(f"bad port {text!r}: expected a number from 0 to 65535") from None
    if not 0 <= port <= 65535:
        raise UsageError(f"port {port} out of range 0-65535")
    return port


def parse_pid(text: str) -> int:
    try:
        pid = int(text, 10)
    except ValueError:
        raise UsageError(f"bad pid {text!r}: expected a positive number") from None
    if pid <= 0:
        raise UsageError(f"bad pid {pid}: expected a positive number")
    return pid


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
    add_collection_arguments(parser)


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
    out.append(fmt.format(*header).rstrip())
    for proto, state, local, peer, opts, owner in rows:
        if not wide:
            local = _shorten(local, w_local)
            peer = _shorten(peer, w_peer)
            owner = _shorten(owner, w_owner)
        out.append(fmt.format(proto, state, local, peer, opts, owner).rstrip())
    return "\n".join(out) + "\n"


def run(args: argparse.Namespace) -> int:
    states = parse_states(args.state) if args.state else None
    port = parse_port(args.port) if args.port is not None else None
    pid = parse_pid(args.pid) if args.pid is not None else None
    protos = ("tcp", "udp")
    if args.tcp and not args.udp:
        protos = ("tcp",)
    elif args.udp and not args.tcp:
        protos = ("udp",)
    snapshot = take_snapshot(args, states=states, protos=protos)
    if snapshot.limitation:
        warn(snapshot.limitation)
    records = select(snapshot, port, pid)
    if args.json:
        write_out(records_to_json(records) + "\n", raw=True)
    else:
        width = shutil.get_terminal_size((80, 24)).columns if sys.stdout.isatty() else 80
        write_out(render_table(records, width, args.wide))
    return 0
