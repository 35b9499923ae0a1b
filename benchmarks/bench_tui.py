"""TUI benchmark at ~100,000 sockets: UI-thread time per refresh, keypress-to-repaint
latency (scrolling, filtering, sorting), and peak memory; `ss -tan` timed in the same run.

The app runs headless (Textual's run_test) with its real threads: the collector and the
view builder keep working while keys are pressed, as they would on a live host. A
"repaint" is the moment Textual hands a rendered screen update to its driver (App._display
is wrapped to timestamp it), so the latency includes key dispatch, the action, layout,
rendering the visible lines, and waiting for the next frame.

    sudo .venv/bin/python benchmarks/bench_tui.py [--sockets 100000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from fixture import Fixture, in_netns  # noqa: E402

from sockscope.tui import SockscopeApp  # noqa: E402


def ms(xs: list[float]) -> str:
    if not xs:
        return "n/a"
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, int(len(xs) * 0.95))]
    return (f"median {statistics.median(xs) * 1000:6.1f} ms  p95 {p95 * 1000:6.1f} ms  "
            f"max {xs[-1] * 1000:6.1f} ms  (n={len(xs)})")


def time_ss(ns: str, rounds: int = 3) -> list[float]:
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        subprocess.run(in_netns(ns, "ss", "-tan"), stdout=subprocess.DEVNULL, check=True)
        out.append(time.perf_counter() - t)
    return out


async def bench(ns: str, seconds: float, interval: float) -> dict[str, list[float] | float]:
    app = SockscopeApp(netns=ns, interval=interval)
    paints: list[float] = []
    real_display = app._display

    def display(screen, renderable):  # type: ignore[no-untyped-def]
        if renderable is not None:
            paints.append(time.perf_counter())
        return real_display(screen, renderable)

    app._display = display  # type: ignore[method-assign]
    res: dict[str, list[float] | float] = {}
    async with app.run_test(size=(120, 40)) as pilot:
        t = time.perf_counter()
        await app.wait_for(lambda v: v.frame.full and v.frame.total > 50_000, timeout=120)
        res["first_views_s"] = time.perf_counter() - t
        await app.refresh_now()
        app.apply_times.clear()
        builds: list[float] = []
        full_builds: list[float] = []
        seen = set()
        t_end = time.perf_counter() + seconds
        while time.perf_counter() < t_end:  # live polling: listening dumps and adaptive full dumps
            v = app.views
            if id(v) not in seen:
                seen.add(id(v))
                (full_builds if "established" in v.rebuilt else builds).append(v.build_seconds)
            await asyncio.sleep(0.05)
        res["apply"] = list(app.apply_times)
        res["build_listen"] = builds
        res["build_full"] = full_builds
        res["frames"] = float(app.views.frame.seq)
        res["full_period"] = app.views.frame.full_period
        res["full_seconds"] = app.views.frame.full_seconds
        res["listen_seconds"] = app.views.frame.listen_seconds

        async def key_latency(key: str) -> float:
            start = time.perf_counter()
            await pilot.press(key)
            deadline = start + 5
            while time.perf_counter() < deadline:
                after = [p for p in paints if p > start]
                if after:
                    return after[0] - start
                await asyncio.sleep(0.001)
            return float("nan")

        await pilot.press("2")
        await pilot.pause(0.3)
        res["rows_established"] = float(len(app.table("established").rows))
        res["down"] = [await key_latency("down") for _ in range(40)]
        res["pagedown"] = [await key_latency("pagedown") for _ in range(40)]
        res["end_home"] = [await key_latency(k) for k in ("end", "home") * 5]
        await pilot.press("slash")
        await pilot.pause(0.2)
        typed: list[float] = []
        for ch in "sport = :10001":
            typed.append(await key_latency(ch if ch != " " else "space"))
        res["filter_key"] = typed
        await app.settled()
        res["rows_filtered"] = float(len(app.table("established").rows))
        # Filter results: from a new filter text (as if pasted) to its views applied.
        bar_input = app.query_one("#filter-input")
        results = []
        for text in ("sport = :10002", "127.0.0.3", "dport > 60000", "sport = :10001"):
            t = time.perf_counter()
            bar_input.value = text
            while app.settings.filter_text != text:  # the Changed message is handled
                await asyncio.sleep(0.0005)
            await app.settled()
            results.append(time.perf_counter() - t)
        res["filter_result"] = results
        await pilot.press("escape")
        t = time.perf_counter()
        await app.settled()
        res["filter_clear_result"] = [time.perf_counter() - t]
        t = time.perf_counter()
        res["sort_key"] = [await key_latency("s")]
        await app.settled()
        res["sort_result"] = [time.perf_counter() - t]
        res["apply_after_keys"] = list(app.apply_times)
    return res


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sockets", type=int, default=100_000)
    p.add_argument("--seconds", type=float, default=20.0, help="seconds of live polling to time refreshes over")
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--netns", help="use this existing namespace instead of building a fixture")
    args = p.parse_args()

    def run(ns: str, count: int) -> None:
        ss = time_ss(ns)
        res = asyncio.run(bench(ns, args.seconds, args.interval))
        ss += time_ss(ns)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"sockets: {count:,} (ss)   established rows: {res['rows_established']:,.0f}")
        print(f"ss -tan (same run):            {ms(ss)}")
        print(f"first screen with data:        {res['first_views_s']:.2f} s (cold: every owner and option read)")
        print(f"polling: {res['frames']:.0f} frames; full dump {res['full_seconds'] * 1000:.0f} ms every "
              f"{res['full_period']:.1f} s, listening dump {res['listen_seconds'] * 1000:.0f} ms every "
              f"{args.interval:g} s")
        print(f"UI thread per refresh (apply): {ms(res['apply'])}")  # type: ignore[arg-type]
        print(f"  builder thread, full frames: {ms(res['build_full'])}")  # type: ignore[arg-type]
        print(f"  builder, listening frames:   {ms(res['build_listen'])}")  # type: ignore[arg-type]
        print(f"key -> repaint, down:          {ms(res['down'])}")  # type: ignore[arg-type]
        print(f"key -> repaint, pagedown:      {ms(res['pagedown'])}")  # type: ignore[arg-type]
        print(f"key -> repaint, end/home:      {ms(res['end_home'])}")  # type: ignore[arg-type]
        print(f"key -> repaint, filter typing: {ms(res['filter_key'])}")  # type: ignore[arg-type]
        print(f"filter text -> result applied: {ms(res['filter_result'])}  "  # type: ignore[arg-type]
              f"({res['rows_filtered']:,.0f} rows)")
        print(f"filter cleared, result applied:       {ms(res['filter_clear_result'])}")  # type: ignore[arg-type]
        print(f"key -> repaint, sort (s):      {ms(res['sort_key'])}")  # type: ignore[arg-type]
        print(f"sort result applied:           {ms(res['sort_result'])}")  # type: ignore[arg-type]
        print(f"UI thread per refresh, whole run incl. keys: {ms(res['apply_after_keys'])}")  # type: ignore[arg-type]
        print(f"peak RSS: {rss:.0f} MiB")

    if args.netns:
        out = subprocess.run(in_netns(args.netns, "ss", "-tanH"), capture_output=True, text=True)
        run(args.netns, out.stdout.count("\n"))
    else:
        with Fixture(n=args.sockets) as fx:
            run(fx.netns_name, fx.count())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
