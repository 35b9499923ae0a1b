"""`sockscope signals [--json]`: listener health, ephemeral-port pressure, leaks and
reuseport groups, from a few snapshots taken --interval apart (trends need two)."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time

from .common import add_collection_arguments

SEVERITY_WORD = {"critical": "CRIT", "warning": "WARN", "info": "info", "ok": "ok"}


def _positive(kind: type, low: float, high: float):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} out of range {kind(low)}-{kind(high)}")
        return value
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--samples", type=_positive(int, 1, 100), default=2, metavar="N",
                        help="snapshots to take (default 2: deltas and slopes need two)")
    parser.add_argument("--interval", type=_positive(float, 0.1, 600), default=1.0, metavar="SECONDS",
                        help="seconds between snapshots (default 1)")
    parser.add_argument("--all", action="store_true", help="text: also list signals of severity ok")
    add_collection_arguments(parser)


def collect_report(args: argparse.Namespace):
    from sockscope.cli import UsageError
    from sockscope.collectors.signal_inputs import SignalInputReader
    from sockscope.collectors.snapshotter import Collector, CollectorError
    from sockscope.signals import Observation, SignalTracker
    from sockscope.signals.reuseport import member_pids

    tracker = SignalTracker()
    inputs = SignalInputReader(args.netns)
    report = None
    try:
        with Collector(netns=args.netns, method=args.collector) as collector:
            for i in range(args.samples):
                if i:
                    time.sleep(args.interval)
                snap = collector.snapshot()
                got = inputs.read(member_pids(snap))
                report = tracker.observe(Observation(snap, got.tcpext, got.procs))
    except CollectorError as exc:
        raise UsageError(str(exc)) from None
    return report, snap


def render(report, show_ok: bool = False, width: int = 100) -> str:
    from sockscope.sanitize import host_text

    counts = report.counts()
    lines = []
    worst = report.worst
    head = ", ".join(f"{counts[s]} {s}" for s in ("critical", "warning", "info") if counts[s]) or "nothing to report"
    lines.append(f"signals: {head}" + (f"; worst: {host_text(worst.subject)}" if worst and worst.rank > 0 else ""))
    for sig in report.signals:
        if sig.severity == "ok" and not show_ok:
            continue
        lines.append(f"{SEVERITY_WORD[sig.severity]:4} {sig.kind:17} {host_text(sig.subject)}")
        lines += textwrap.wrap(host_text(sig.summary), width, initial_indent="       ", subsequent_indent="       ")
        lines.append(f"       sockets: {host_text(sig.filter)}")
    sp = report.space
    lines.append(f"ephemeral range {sp.low}-{sp.high}: {sp.reserved} reserved, {len(sp.bound)} bound by bind(), "
                 f"{sp.usable} usable per destination")
    ov = report.overflow
    if ov["read"]:
        lines.append(f"TcpExt ListenOverflows {ov['ListenOverflows']} ListenDrops {ov['ListenDrops']}"
                     + (f" (+{ov['delta_overflows']}/+{ov['delta_drops']} over the samples)"
                        if ov["delta_overflows"] is not None else ""))
    tw = report.time_wait
    if tw.total:
        lines.append(f"TIME_WAIT {tw.total}: closed first by this host's server {tw.server_closed}, "
                     f"by its client {tw.client_closed}")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    report, snap = collect_report(args)
    if snap.limitation and not args.json:
        from sockscope.sanitize import host_text

        print(f"sockscope: {host_text(snap.limitation)}", file=sys.stderr)
    if args.json:
        sys.stdout.write(json.dumps(report.to_json()) + "\n")
    else:
        sys.stdout.write(render(report, show_ok=args.all))
    return 0
