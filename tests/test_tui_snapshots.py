"""SVG snapshots of every pane and screen, from a hand-built snapshot (no pids, times or
sizes of this machine). Update with: pytest tests/test_tui_snapshots.py --snapshot-update"""

from __future__ import annotations

from sockscope.tui import SockscopeApp
from sockscope.tui.poller import StaticSource

from tui_data import T0, snapshot


def make_app() -> SockscopeApp:
    snap = snapshot()
    return SockscopeApp(make_source=lambda: StaticSource(snap), interval=3600, clock=lambda: T0 + 5.0,
                        fixed_time=True)


async def ready(pilot) -> None:
    app = pilot.app
    await app.wait_for(lambda v: True)
    await app.settled()
    app.clear_notifications()
    await pilot.pause()


async def ready_on_nginx(pilot) -> None:
    await ready(pilot)
    pilot.app.table("listening").select_identity(("tcp", 1001))
    await pilot.pause()


def test_listening(snap_compare):
    assert snap_compare(make_app(), terminal_size=(100, 30), run_before=ready)


def test_listening_80x24(snap_compare):
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=ready)


def test_established(snap_compare):
    async def run(pilot):
        await ready(pilot)
        await pilot.press("2")
        await ready(pilot)

    assert snap_compare(make_app(), terminal_size=(100, 30), run_before=run)


def test_timewait_grouped_and_flat(snap_compare):
    async def grouped(pilot):
        await ready(pilot)
        await pilot.press("3")
        await ready(pilot)

    async def flat(pilot):
        await grouped(pilot)
        await pilot.press("g")
        await ready(pilot)

    assert snap_compare(make_app(), terminal_size=(100, 30), run_before=grouped)
    assert snap_compare(make_app(), terminal_size=(100, 30), run_before=flat)


def test_other(snap_compare):
    async def run(pilot):
        await ready(pilot)
        await pilot.press("4")
        await ready(pilot)

    assert snap_compare(make_app(), terminal_size=(100, 30), run_before=run)


def test_filter_error(snap_compare):
    async def run(pilot):
        await ready(pilot)
        await pilot.press("slash", *"sport = :443 and")
        await ready(pilot)

    assert snap_compare(make_app(), terminal_size=(100, 30), run_before=run)


def test_details(snap_compare):
    async def run(pilot):
        await ready_on_nginx(pilot)
        await pilot.press("enter")
        screen = pilot.app.screen
        owners = {o.pid for o in screen.rec.owners}
        for _ in range(500):
            # Every worker: the verdict (and rehearsals), the command lines, the owners' process details.
            if (screen.verdict is not None or screen.verdict_error) and screen.cmdlines and owners <= set(screen.procs):
                break
            await pilot.pause(0.02)
        # Let the last worker's repaint and the background footer settle.
        await pilot.wait_for_scheduled_animations()
        await pilot.pause(0.1)
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(100, 40), run_before=run)


def test_help(snap_compare):
    async def run(pilot):
        await ready(pilot)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(100, 40), run_before=run)


def test_signals(snap_compare):
    from sockscope.collectors.procinfo import ProcInfo
    from tui_data import signals_snapshot

    snap = signals_snapshot()
    app = SockscopeApp(make_source=lambda: StaticSource(snap), interval=3600, clock=lambda: T0 + 5.0, fixed_time=True)
    # nginx 814 runs another executable: the reuseport group's alarm
    procs = {812: ProcInfo(812, "/usr/sbin/nginx", T0 - 100), 813: ProcInfo(813, "/usr/sbin/nginx", T0 - 100),
             814: ProcInfo(814, "/opt/old/nginx", T0 - 90_000)}
    app.signals_worker.read_inputs = lambda pids: ({"ListenOverflows": 0, "ListenDrops": 0}, procs)

    async def run(pilot):
        await ready(pilot)
        await pilot.press("5")
        await ready(pilot)

    assert snap_compare(app, terminal_size=(120, 30), run_before=run)
