"""`sockscope check --like SOCKET` and `sockscope check --restart PID`: restart rehearsal.

--like: would another socket with exactly this socket's options and uid bind there now
(another SO_REUSEPORT worker, a second instance)? --restart: would every listening and
bound socket of PID bind again if PID exited now and started over with the same options?
Exit status as `check`: 0 would succeed, 1 would fail, 3 unknown, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json

from sockscope.formatting import endpoint
from sockscope.model import SocketRecord
from sockscope.sanitize import host_text

from .common import take_snapshot, warn, write_out

EXIT = {"ok": 0, "conflict": 1, "unknown": 3}


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def find_socket(snapshot, spec: str):
    """The socket SPEC names: a cookie, PID:FD, or ADDR:PORT of a listener (or of a bound
    UDP socket). Raises UsageError naming what was not found."""
    from sockscope.cli import UsageError
    from sockscope.predict import EndpointError, parse_endpoint

    spec = spec.strip()
    if _digits(spec):
        cookie = int(spec)
        found = [r for r in snapshot.sockets if r.cookie == cookie]
        if not found:
            raise UsageError(f"no socket with cookie {spec}")
        return found[0]
    head, sep, tail = spec.rpartition(":")
    if sep and _digits(head) and _digits(tail):
        pid, fd = int(head), int(tail)
        found = [r for r in snapshot.sockets if any(o.pid == pid and o.fd == fd for o in r.owners)]
        if not found:
            raise UsageError(f"pid {pid} has no TCP or UDP socket on fd {fd}")
        return found[0]
    try:
        family, addr, port, scope = parse_endpoint(spec)
    except EndpointError as exc:
        raise UsageError(f"--like wants a cookie, PID:FD or ADDR:PORT: {exc}") from None
    found = [
        r
        for proto in ("tcp", "udp")
        for r in snapshot.on_port(proto, port)
        if r.family == family and r.local_addr == addr and r.state in ("LISTEN", "UNCONN")
        and (not scope or r.device == scope)
    ]
    listeners = [r for r in found if r.state == "LISTEN"] or found
    if not listeners:
        raise UsageError(f"no listening or bound socket on {spec}")
    return listeners[0]


def _snapshot(args: argparse.Namespace):
    snapshot = take_snapshot(args)
    if snapshot.limitation and not args.json:
        warn(snapshot.limitation)
    return snapshot


def run_like(args: argparse.Namespace) -> int:
    from sockscope.predict import check_like
    from sockscope.predict.explain import describe

    from .check_cmd import render_verdict

    snapshot = _snapshot(args)
    rec = find_socket(snapshot, args.like)
    verdict = check_like(snapshot, rec)
    if args.json:
        out = verdict.to_json()
        out["like"] = rec.to_json()
        write_out(json.dumps(out) + "\n", raw=True)
    else:
        write_out(f"Another socket like {describe(rec)}:\n")
        write_out(render_verdict(verdict))
    return EXIT[verdict.verdict]


SUMMED_AFTER = 4  # --restart: past this many sockets that bind again or stay open, one line each


def _where(rec: SocketRecord) -> str:
    return f"{rec.proto} {endpoint(rec.local_addr, rec.local_port, rec.family, rec.device)}"


def run_restart(args: argparse.Namespace) -> int:
    from sockscope.cli import UsageError
    from sockscope.predict import rehearse_restart
    from sockscope.predict.explain import describe

    from .check_cmd import render_verdict

    if not _digits(args.restart.strip()) or not 0 < int(args.restart) < 2**22 + 1:
        raise UsageError(f"--restart wants a process id, not {args.restart!r}")
    pid = int(args.restart)
    snapshot = _snapshot(args)
    report = rehearse_restart(snapshot, pid)
    if not any(o.pid == pid for r in snapshot.sockets for o in r.owners):
        raise UsageError(f"pid {pid} holds no TCP or UDP socket in this network namespace")
    if args.json:
        write_out(json.dumps(report.to_json()) + "\n", raw=True)
        return EXIT[report.verdict]
    name = host_text(report.process) if report.process else "?"
    if not report.items:
        write_out(f"OK: pid {pid} ({name}) has no listening or bound socket to bind again.\n")
        return 0
    word = {"ok": "OK", "conflict": "CONFLICT", "unknown": "UNKNOWN"}[report.verdict]
    summary = {
        "ok": "every socket would bind again",
        "conflict": "not every socket would bind again",
        "unknown": "whether every socket would bind again hangs on what could not be read",
    }[report.verdict]
    out = [f"{word}: if pid {pid} ({name}) exited now and restarted, {summary}."]
    if report.verdict != "ok" and report.ok_after_s:
        out[0] = out[0][:-1] + f"; it would after {report.ok_after_s:.0f} s."
    # Sockets that would bind again and those that stay open are summed up in a line each
    # when there are more than a few (a server with 500 UDP sockets must not print 500
    # verdicts); every other socket gets its full verdict.
    fine = [it for it in report.items if it.verdict is not None and it.verdict.verdict == "ok"]
    kept = [it for it in report.items if it.verdict is None]
    summed = len(fine) + len(kept) > SUMMED_AFTER
    n = 0
    for item in report.items:
        if summed and (item in fine or item in kept):
            continue
        n += 1
        out.append("")
        out.append(f"{n}. {describe(item.socket)}")
        if item.verdict is None:
            out.append("   stays open: another process holds it too, so it need not bind again.\n")
            continue
        out.append("   " + render_verdict(item.verdict, width=77).rstrip("\n").replace("\n", "\n   "))
    if summed:
        for items, what in ((fine, "would bind again"), (kept, "stay open (another process holds them too)")):
            if items:
                out.append("")
                out.append(f"{len(items)} socket(s) {what}: " + ", ".join(_where(it.socket) for it in items[:5])
                           + (f" and {len(items) - 5} more" if len(items) > 5 else "") + " (--json lists them all).")
    write_out("\n".join(out).rstrip("\n") + "\n")
    return EXIT[report.verdict]
