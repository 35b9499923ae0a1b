"""Screenshots of the TUI against a real scenario, as SVG (Textual) and PNG.

Builds, in a private network namespace: listeners with and without SO_REUSEADDR /
SO_REUSEPORT / V6ONLY, a SO_REUSEPORT group, a device-bound listener, established
connections, a few hundred TIME_WAITs, CLOSE-WAIT/FIN-WAIT-2/SYN-SENT, UDP (bound and
connected), sockets of another uid; then drives the app headless and saves each pane.

    sudo .venv/bin/python screenshots/make_screenshots.py [--out screenshots]

PNG: cairosvg if importable (pip install cairosvg; needs libcairo), with the SVG's font
swapped for an installed monospace font; otherwise only the SVGs are written.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, ROOT)

from kit import Holder, Netns  # noqa: E402
from scenario import build  # noqa: E402

from sockscope.tui import SockscopeApp  # noqa: E402
from sockscope.tui.columns import ident  # noqa: E402

SIZE = (110, 32)


def extra_sockets(ns: Netns, root: Holder, other: Holder, timewaits: int) -> None:
    for _ in range(3):  # a SO_REUSEPORT group
        s = other.socket("tcp", 4, reuseport=True)
        other.bind(s, "0.0.0.0", 8443)
        other.listen(s)
    s = root.socket("tcp", 4, reuseaddr=True)
    root.bind(s, "127.0.0.1", 9000)
    root.listen(s, 1024)
    for _ in range(timewaits):  # the server side closes first: it ends in TIME-WAIT
        c = other.socket("tcp", 4)
        other.connect(c, "127.0.0.1", 9000)
        a = root.accept(s)
        root.close(a)
        other.close(c)
    for port in range(6000, 6004):
        u = root.socket("udp", 4)
        root.bind(u, "127.0.0.1", port)


def to_png(svg_path: str, png_path: str) -> bool:
    try:
        import cairosvg
    except ImportError:
        return False
    svg = open(svg_path, encoding="utf-8").read()
    # Fira Code (the SVG's font) is fetched from the web by browsers; offline, use a local monospace font.
    svg = re.sub(r"font-family:\s*[^;\"]*Fira Code[^;\"]*", "font-family: DejaVu Sans Mono, monospace", svg)
    svg = svg.replace('font-family="Fira Code', 'font-family="DejaVu Sans Mono')
    cairosvg.svg2png(bytestring=svg.encode(), write_to=png_path, output_width=1600)
    return True


async def shoot(netns: str, out: str) -> list[str]:
    app = SockscopeApp(netns=netns, interval=2)
    saved: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        await app.wait_for(lambda v: v.frame.full and v.frame.total > 0)
        await app.refresh_now()  # a warm dump: the header shows its real cost

        async def save(name: str) -> None:
            app.clear_notifications()
            await pilot.pause(0.2)
            path = app.save_screenshot(filename=f"{name}.svg", path=out)
            saved.append(path)

        await save("1-listening")
        await pilot.press("2")
        await save("2-established")
        await pilot.press("3")
        await app.settled()
        await save("3-timewait-grouped")
        await pilot.press("g")
        await app.settled()
        await save("3-timewait-flat")
        await pilot.press("g")
        await app.settled()
        await pilot.press("4")
        await save("4-other")
        await pilot.press("1")
        table = app.table("listening")
        target = next(r for r in table.rows if r.local_port == 8082)
        table.select_identity(ident(target))
        await pilot.press("enter")
        for _ in range(300):
            if app.screen.verdict is not None or app.screen.verdict_error:
                break
            await pilot.pause(0.02)
        await save("5-details")
        await pilot.press("escape")
        await pilot.press("b")
        screen = app.screen
        screen.query_one("#bind-proto").value = "tcp"
        screen.query_one("#bind-endpoint").value = "0.0.0.0:8443"
        await pilot.press("enter")
        for _ in range(300):
            if screen.verdict is not None:
                break
            await pilot.pause(0.02)
        await save("6-bind-check")
        await pilot.press("escape")
        await save("7-blockers-marked")
        await pilot.press("x")
        await pilot.press("slash", *"sport = :8080 or process nginx")
        await app.settled()
        await save("8-filter")
        await pilot.press("escape")
        await pilot.press("question_mark")
        await save("9-help")
        await pilot.press("escape")
        await pilot.press("5")
        for _ in range(300):
            if app.signals_report is not None:
                break
            await pilot.pause(0.02)
        await save("10-signals")
        await pilot.press("1")
        await app.settled()
        table = app.table("listening")
        table.select_identity(ident(next(r for r in table.rows if r.local_port == 8082)))
        await pilot.press("K")  # the preview only: nothing is done without d/t and then y
        await save("11-free-port")
        await pilot.press("escape")
    return saved


async def shoot_namespaces(out: str, names: list[str]) -> list[str]:
    """--all-netns: the same port in several namespaces, and the namespace pane."""
    app = SockscopeApp(all_netns=True, interval=2)
    saved: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        await app.wait_for(lambda v: v.frame.full and v.frame.total > 0)

        async def save(name: str) -> None:
            app.clear_notifications()
            await pilot.pause(0.2)
            saved.append(app.save_screenshot(filename=f"{name}.svg", path=out))

        app.set_filter("sport = :8080 or sport = :5353")
        await app.settled()
        await save("12-netns-listening")
        await pilot.press("n")
        await pilot.pause(0.3)
        await save("13-netns-pane")
        await pilot.press("escape")
    return saved


def namespace_scene(out: str) -> list[str]:
    """Two more named namespaces and one held only by a process (unshare --net), each
    with a listener on 8080 (and a UDP socket on 5353 in one): what a container host shows."""
    import subprocess

    with Netns(prefix="web") as web, Netns(prefix="cache") as cache:
        holders = [Holder(web), Holder(cache, uid=1001)]
        code = ("import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
                "s.bind(('0.0.0.0',8080)); s.listen(); print('ready', flush=True); time.sleep(300)")
        held = subprocess.Popen(["unshare", "--net", "sh", "-c", f"ip link set lo up && exec {sys.executable} -c \"{code}\""],
                                stdout=subprocess.PIPE, text=True)
        try:
            assert held.stdout is not None and held.stdout.readline().strip() == "ready"
            w = holders[0].socket("tcp", 4, reuseaddr=True)
            holders[0].bind(w, "0.0.0.0", 8080)
            holders[0].listen(w)
            c = holders[1].socket("tcp", 6, reuseport=True)
            holders[1].bind(c, "::", 8080)
            holders[1].listen(c)
            u = holders[1].socket("udp", 4)
            holders[1].bind(u, "127.0.0.1", 5353)
            time.sleep(0.2)
            return asyncio.run(shoot_namespaces(out, [web.name, cache.name]))
        finally:
            held.kill()
            held.wait(timeout=10)
            for h in holders:
                h.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=HERE)
    p.add_argument("--timewaits", type=int, default=300)
    args = p.parse_args()
    if os.geteuid() != 0:
        print("run as root: the scenario needs a network namespace", file=sys.stderr)
        return 2
    with Netns(prefix="sshot") as ns:
        root, other = Holder(ns), Holder(ns, uid=1001)
        try:
            build(ns, root, other)
            extra_sockets(ns, root, other, args.timewaits)
            time.sleep(0.2)
            saved = asyncio.run(shoot(ns.name, args.out))
            saved += namespace_scene(args.out)  # the scenario's namespace is one of them
        finally:
            root.stop()
            other.stop()
    pngs = 0
    for svg in saved:
        if to_png(svg, svg[:-4] + ".png"):
            pngs += 1
    print(f"{len(saved)} SVG and {pngs} PNG screenshots in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
