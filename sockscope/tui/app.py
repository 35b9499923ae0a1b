"""SockscopeApp: the live TUI.

Threads: the collector (a Textual thread worker running `Poller.run`, the only user
of the Collector) -> the view builder (a thread worker running `BuildQueue.run`) ->
the UI thread, which only swaps finished views into the tables (`apply_views`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult, SystemCommand
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer, Static, TabbedContent, TabPane

from sockscope.collectors.gcpause import freeze_between_refreshes, stop_freezing
from sockscope.model import Snapshot, SocketRecord
from sockscope.sanitize import host_text

from sockscope.formatting import endpoint
from sockscope.sanitize import terminal_text

from .keys import bindings, palette_keys
from .columns import PANE_COLUMNS, PANE_TITLES, PANES, GroupRow, Ident
from .messages import BlockersFound, CollectorFailed, SignalsReady, ViewsReady
from .poller import DEFAULT_CPU_BUDGET, CollectorSource, Poller, PollStats, Source, churn_text
from .views import BuildQueue, Settings, ViewBuilder, Views
from .widgets import FilterBar, SocketTable, StatsHeader
from .widgets.stats_header import seconds
from .signals_worker import SignalsWorker, collector_inputs
from .widgets.signals_pane import SignalsPane, worst_text

# What a worker message or a tick does while the app shuts down, when the widgets it would
# update are gone (see on_views_ready): nothing. suppress() is reentrant, so one serves all.
WIDGETS_GONE = contextlib.suppress(NoMatches)


class SockscopeApp(App[int]):
    CSS_PATH = ["app.tcss", "table.tcss", "screens.tcss"]
    TITLE = "sockscope"
    ENABLE_COMMAND_PALETTE = True

    BINDINGS = bindings("app")  # every key: tui/keys.py

    def __init__(
        self,
        make_source: Callable[[], Source] | None = None,
        *,
        netns: str | None = None,
        method: str = "auto",
        all_netns: bool = False,
        netns_label: str | None = None,
        interval: float = 1.0,
        cpu_budget: float = DEFAULT_CPU_BUDGET,
        clock: Callable[[], float] = time.time,
        fixed_time: bool = False,
        readonly: bool = False,
    ) -> None:
        super().__init__()
        self.netns = netns
        self.readonly = readonly  # --readonly: K (destroy a socket, signal a process) is disabled
        self.netns_label = netns_label or netns  # what the header calls it (pid:123 -> its name)
        self.make_source = make_source or partial(CollectorSource, netns, method, all_netns)
        self.interval = interval
        self.clock = clock
        self.fixed_time = fixed_time  # screenshots/snapshot tests: no wall-clock or durations on screen
        self.settings = Settings()
        self.views: Views | None = None
        self.blockers: frozenset[Ident] = frozenset()
        self.blockers_text = ""
        self.error: str | None = None
        self.error_since: float | None = None  # wall clock of the first failure in a row
        self.error_seq = -1  # the frame on screen when collection failed
        self.apply_times: deque[float] = deque(maxlen=10_000)
        self.applied = 0
        self.builder = ViewBuilder(clock=clock)
        self.queue = BuildQueue(self.builder, self.settings, self._deliver_views, self._deliver_error)
        self.poller = Poller(self.make_source, interval, self.queue.submit_frame, self._deliver_error, clock=clock,
                             cpu_budget=cpu_budget)
        self._shown_stats: PollStats | None = None
        # Signals: computed per full dump in their own thread; hand-built sources read nothing.
        self.signals_worker = SignalsWorker(self._deliver_signals, self._deliver_error,
                                            collector_inputs(netns) if make_source is None else None)
        self.signals_report: Any = None
        self._signals_wanted = 0  # seq of the last full frame handed to the worker
        self._signals_seq = 0  # seq of the frame of the report shown

    # ------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield StatsHeader(id="header")
        yield Static(id="notice")
        yield Static(id="stale", markup=False)
        yield Static(id="blockers-banner")
        with TabbedContent(initial="listening", id="panes"):
            for i, pane in enumerate(PANES, 1):
                with TabPane(f"{i} {PANE_TITLES[pane]}", id=pane):
                    yield SocketTable(pane, clock=self.clock, id=f"table-{pane}")
            with TabPane("5 Signals", id="signals"):
                yield SignalsPane(id="signals-pane")
        yield FilterBar(id="filter-bar")
        yield Footer()

    def on_mount(self) -> None:
        # Three threads share the GIL: a shorter switch interval lets the UI thread in
        # sooner while the collector or the builder run long C-level steps.
        sys.setswitchinterval(0.002)
        # What the collector holds stays out of the garbage collector's walks (a walk of
        # 600,000 objects stopped the UI for 0.15 s every half minute): collectors/gcpause.py
        freeze_between_refreshes()
        self.title = "sockscope"
        self.query_one("#header", StatsHeader).show(
            title=self.title, counts={}, total=0, status="collecting…", history=[], paused=False)
        self.run_worker(self.queue.run, thread=True, name="view-builder", group="builder", exit_on_error=False)
        self.run_worker(self.poller.run, thread=True, name="collector", group="collector", exit_on_error=False)
        self.run_worker(self.signals_worker.run, thread=True, name="signals", group="signals", exit_on_error=False)
        self.set_interval(1.0, self._tick)
        self.table().focus()

    def on_unmount(self) -> None:
        self.stop_threads()
        stop_freezing()

    def stop_threads(self) -> None:
        self.poller.stop()
        self.queue.stop()
        self.signals_worker.stop()

    async def action_quit(self) -> None:
        self.stop_threads()
        self.exit(0)

    # ------------------------------------------------------------ from the threads

    def _deliver_views(self, views: Views) -> None:  # builder thread
        self.post_message(ViewsReady(views))

    def _deliver_error(self, error: str) -> None:  # any thread
        self.post_message(CollectorFailed(error))

    # Messages from the worker threads, and the one-second tick, can arrive while the app
    # shuts down (`q` pressed as a refresh is delivered), when the screen's widgets are
    # already gone: what they would show is dropped (WIDGETS_GONE) rather than ending the
    # session with a crash.

    def on_views_ready(self, message: ViewsReady) -> None:
        with WIDGETS_GONE:
            self.apply_views(message.views)

    def on_collector_failed(self, message: CollectorFailed) -> None:
        self.error = message.error
        if self.error_since is None:
            self.error_since = self.clock()
        self.error_seq = self.views.frame.seq if self.views is not None else -1
        with WIDGETS_GONE:
            self._show_stale()
            self._update_header()

    def _show_stale(self) -> None:
        """A failed collection gets its own line, above the panes, so that it is readable
        at 80x24; the tables are dimmed: what they show is the last good data."""
        stale = self.query_one("#stale", Static)
        shown = self.error is not None
        stale.set_class(shown, "-show")
        self.query_one("#panes", TabbedContent).set_class(shown and self.views is not None, "-stale")
        if self.error is not None:
            since = ""
            if self.error_since is not None and not self.fixed_time:
                since = " since " + datetime.datetime.fromtimestamp(self.error_since).strftime("%H:%M:%S")
            what = "STALE" if self.views is not None else "NO DATA"
            stale.update(Text(f"⚠ {what}{since}: {terminal_text(self.error)}; retrying",
                              no_wrap=False))

    def apply_views(self, views: Views) -> None:
        """The UI thread's share of a refresh: swap in the panes that changed (timed)."""
        start = time.perf_counter()
        self.views = views
        if self.error is not None and views.frame.seq > self.error_seq:
            # A frame newer than the failure: collection works again.
            self.error = self.error_since = None
            self._show_stale()
        several = views.frame.namespaces is not None and len(views.frame.namespaces) > 1
        for pane in PANES:
            table = self.table(pane)
            table.set_show_netns(several)
            pv = views.panes[pane]
            if table.view is not pv:
                table.set_view(pv)
        self._update_header()
        self._update_tabs()
        notice = self.query_one("#notice", Static)
        limitation = views.frame.limitation
        notice.set_class(bool(limitation), "-show")
        if limitation:
            notice.update(Text("⚠ " + terminal_text(limitation)))
        if views.frame.full and views.frame.seq > self._signals_wanted:
            self._signals_wanted = views.frame.seq
            self.signals_worker.submit(views.frame)
        self.applied += 1
        self.apply_times.append(time.perf_counter() - start)

    def _deliver_signals(self, seq: int, report: Any) -> None:  # signals thread
        self.post_message(SignalsReady(seq, report))

    def on_signals_ready(self, message: SignalsReady) -> None:
        self._signals_seq = message.seq
        if message.report is None:  # the worker failed on this frame (said in the header)
            return
        self.signals_report = message.report
        with WIDGETS_GONE:
            self.query_one("#signals-pane", SignalsPane).show(message.report)  # type: ignore[arg-type]
            counts = message.report.counts()  # type: ignore[attr-defined]
            marks = " ".join(f"{counts[s]}{m}" for s, m in (("critical", "!"), ("warning", "⚠")) if counts[s])
            label = f"5 Signals {marks}".rstrip()
            tab = self.query_one("#panes", TabbedContent).get_tab("signals")
            if str(tab.label) != label:
                tab.label = label
            self._update_header()

    def _tick(self) -> None:
        """Once a second: timers count down and new-row marks fade (visible rows only)."""
        with WIDGETS_GONE:
            self.table().refresh()
            if self.poller.stats is not self._shown_stats and self.views is not None:
                self._update_header()  # the poller's cost changes on idle ticks too (no new views)

    # ------------------------------------------------------------ header, tabs

    def _status(self) -> str:
        views = self.views
        if views is None:
            return "collecting…"
        f = views.frame
        if f.namespaces is not None:
            where = f"{len(f.namespaces)} netns"
        else:
            where = f"netns {host_text(self.netns_label)}" if self.netns_label else "this netns"
        parts = [where, f.collector]
        stats = self._shown_stats = self.poller.stats
        if not self.fixed_time:
            parts.append(f"full {seconds(f.full_seconds)} /{f.full_period:.1f}s")
            parts.append(f"listen {seconds(f.listen_seconds)} /{self.interval:g}s")
            if stats is not None:
                cost = f"cpu {stats.cpu_percent:.1f}%/{stats.budget_percent:g}%"
                if stats.stretched:
                    cost += " (stretched)"
                if stats.idle:
                    cost += " idle"
                parts.append(cost)
        else:
            parts.append(f"every {self.interval:g}s")
        if f.churn is not None:
            parts.append(churn_text(f.churn))
        if self.settings.filter_text:
            pv = views.panes.get(self.current_pane)
            shown = len(pv.rows) if pv is not None else 0
            parts.append(f"filter “{self.settings.filter_text}”: {shown:,} shown")
        worst = self.signals_report.worst if self.signals_report is not None else None
        if worst is not None and worst.rank >= 2:  # warning or critical: in the header, whatever the pane
            parts.append(worst_text(self.signals_report).plain)
        return " · ".join(parts)

    def _update_header(self) -> None:
        views = self.views
        header = self.query_one("#header", StatsHeader)
        header.show(
            title=self.title,
            counts=views.counts if views else {},
            total=views.frame.total if views else 0,
            status=self._status(),
            history=views.history if views else [],
            paused=self.poller.paused,
            error="STALE" if self.error else None,  # the error itself has its own line (#stale)
        )

    def _update_tabs(self) -> None:
        views = self.views
        if views is None:
            return
        tabs = self.query_one("#panes", TabbedContent)
        for i, pane in enumerate(PANES, 1):
            pv = views.panes[pane]
            n = pv.total
            if self.settings.predicate is not None:
                shown = pv.shown
                label = f"{i} {PANE_TITLES[pane]} {shown:,}/{n:,}"
            else:
                label = f"{i} {PANE_TITLES[pane]} {n:,}"
            tab = tabs.get_tab(pane)
            if str(tab.label) != label:
                tab.label = label

    # ------------------------------------------------------------ helpers

    @property
    def current_pane(self) -> str:
        try:
            return self.screen_stack[0].query_one("#panes", TabbedContent).active or "listening"
        except Exception:  # noqa: BLE001 - before compose
            return "listening"

    def table(self, pane: str | None = None) -> SocketTable:
        pane = pane or self.current_pane
        if pane not in PANES:  # the Signals pane has no socket table: the first pane's serves
            pane = PANES[0]
        # The tables live on the main screen: query it even while a modal is on top (a tab
        # activation can be handled after a key already opened a modal).
        base = self.screen_stack[0] if self.screen_stack else self
        return base.query_one(f"#table-{pane}", SocketTable)

    def snapshot(self) -> Snapshot | None:
        return self.views.frame.snapshot() if self.views is not None else None

    def snapshot_for(self, row: Any = None) -> Snapshot:
        """The snapshot the predictor checks against: with several namespaces, only the
        selected socket's namespace (else the host's), with that namespace's own facts."""
        assert self.views is not None
        snap = self.views.frame.snapshot()
        if snap.namespaces is None:
            return snap
        if isinstance(row, SocketRecord) and row.netns is not None and row.netns.inode in snap.namespaces:
            return snap.for_netns(row.netns.inode)
        for inode, view in snap.namespaces.items():
            if view.ref.kind == "host":
                return snap.for_netns(inode)
        return snap.for_netns(next(iter(snap.namespaces))) if snap.namespaces else snap

    def _set_settings(self, dirty: Iterable[str] = (), **changes: Any) -> None:
        values: dict[str, Any] = {
            "version": self.settings.version + 1,
            "filter_text": self.settings.filter_text,
            "predicate": self.settings.predicate,
            "sort": self.settings.sort,
            "tw_grouped": self.settings.tw_grouped,
        }
        values.update(changes)
        self.settings = Settings(**values)
        self.queue.submit_settings(self.settings, set(dirty))

    # ------------------------------------------------------------ actions

    def action_pane(self, pane: str) -> None:
        self.query_one("#panes", TabbedContent).active = pane
        self.table(pane).focus()
        self._update_header()

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        pane = event.pane.id or "listening"
        if (pane in PANES or pane == "signals") and self.screen_stack:  # not while shutting down
            self.call_after_refresh(self._focus_pane, pane)

    def _focus_pane(self, pane: str) -> None:
        """Focus a pane's table, unless another pane was chosen meanwhile (focusing a widget
        in a hidden tab would switch back to it) or the user opened the filter (`/` typed
        right at start-up: taking the focus back would send the rest of what they type to
        commands)."""
        if self.current_pane != pane:
            return
        with WIDGETS_GONE:
            if self.focused is self.query_one("#filter-bar", FilterBar).input:
                return
            if pane == "signals":
                self.query_one("#signals-pane", SignalsPane).focus_table()
            else:
                self.table(pane).focus()

    def action_signals(self) -> None:
        self.query_one("#panes", TabbedContent).active = "signals"
        self.query_one("#signals-pane", SignalsPane).focus_table()
        self._update_header()

    @on(SignalsPane.Show)
    def _show_signal(self, event: SignalsPane.Show) -> None:
        """From a signal to its sockets: its filter, in the pane that lists them."""
        sig = event.signal
        if not self.is_running:
            return
        if sig.pane == "timewait" and self.settings.tw_grouped:
            self._set_settings({"timewait"}, tw_grouped=False)
        self.action_pane(sig.pane if sig.pane in PANES else "listening")
        self.set_filter(sig.filter)
        self.table().focus()

    def action_filter(self) -> None:
        self.query_one("#filter-bar", FilterBar).open()

    def action_clear_filter(self) -> None:
        bar = self.query_one("#filter-bar", FilterBar)
        if bar.input.value:
            bar.input.value = ""  # posts Changed("") -> the filter goes
        else:
            self.apply_filter("")
        bar.show_error(None)
        bar.close()
        self.table().focus()

    @on(FilterBar.Changed)
    def _filter_changed(self, event: FilterBar.Changed) -> None:
        self.apply_filter(event.text)

    @on(FilterBar.Cleared)
    def _filter_cleared(self) -> None:
        self.action_clear_filter()

    @on(FilterBar.Done)
    def _filter_done(self) -> None:
        bar = self.query_one("#filter-bar", FilterBar)
        if not bar.input.value.strip():
            bar.close()
        self.table().focus()

    def apply_filter(self, text: str) -> bool:
        """Compile and apply `text`; a bad filter shows its error and keeps the last good one."""
        from sockscope.filter import FilterError, compile_filter

        bar = self.query_one("#filter-bar", FilterBar)
        text = text.strip()
        if not text:
            predicate = None
        else:
            try:
                predicate = compile_filter(text)
            except FilterError as exc:
                bar.show_error("✗ " + exc.message)
                return False
            except Exception as exc:  # noqa: BLE001 - never a crash for a typo
                bar.show_error(f"✗ {type(exc).__name__}: {exc}")
                return False
        bar.show_error(None)
        if text != self.settings.filter_text:
            self._set_settings(PANES, filter_text=text, predicate=predicate)
        return True

    def set_filter(self, text: str) -> None:
        """Put `text` in the filter bar (opened) and apply it."""
        bar = self.query_one("#filter-bar", FilterBar)
        bar.add_class("-open")
        bar.input.value = text
        self.apply_filter(text)

    def _sort_mode(self) -> str:
        return self.table().mode

    def action_sort_next(self) -> None:
        mode = self._sort_mode()
        cols = [c for c in PANE_COLUMNS[mode] if c.sort is not None]
        current, _rev = self.settings.sort_of(mode)
        keys = [c.key for c in cols]
        nxt = keys[(keys.index(current) + 1) % len(keys)] if current in keys else keys[0]
        self.sort_by(nxt, False)

    def action_sort_reverse(self) -> None:
        mode = self._sort_mode()
        col, rev = self.settings.sort_of(mode)
        self.sort_by(col, not rev)

    def sort_by(self, col: str, reverse: bool) -> None:
        mode = self._sort_mode()
        pane = "timewait" if mode == "timewait-groups" else mode
        self._set_settings({pane}, sort=self.settings.with_sort(mode, col, reverse))
        # No toast: the header's ▲/▼ moves when the sorted view arrives.

    @on(SocketTable.SortRequested)
    def _sort_requested(self, event: SocketTable.SortRequested) -> None:
        col, rev = self.settings.sort_of(event.table.mode)
        self.sort_by(event.column, not rev if col == event.column else False)

    def action_toggle_group(self) -> None:
        self._set_settings({"timewait"}, tw_grouped=not self.settings.tw_grouped)
        if self.current_pane != "timewait":
            self.action_pane("timewait")
        self.notify("TIME_WAIT: " + ("grouped by local port and peer" if self.settings.tw_grouped else "flat"),
                    timeout=1.5)

    def action_pause(self) -> None:
        self.poller.set_paused(not self.poller.paused)
        self._update_header()

    def action_refresh(self) -> None:
        self.poller.request(full=True)

    def action_help(self) -> None:
        from .screens import HelpScreen

        self.push_screen(HelpScreen())

    def _current_record(self) -> SocketRecord | GroupRow | None:
        return self.table().current

    @on(SocketTable.RowActivated)
    def _row_activated(self, event: SocketTable.RowActivated) -> None:
        self.open_details(event.row)

    def open_details(self, row: Any = None) -> None:
        from .screens import DetailsScreen

        row = row if row is not None else self._current_record()
        if row is None or self.views is None:
            return
        if isinstance(row, GroupRow):  # a TIME_WAIT group: show its sockets, flat
            self._set_settings({"timewait"}, tw_grouped=False)
            self.set_filter(row.filter_text)
            self.table().focus()
            return
        self.push_screen(DetailsScreen(row, self.snapshot_for(row), fixed_time=self.fixed_time,
                                       links=self._port_links(row)))

    def _port_links(self, row: SocketRecord) -> list[str]:
        from .netns_summary import link_lines

        snap = self.snapshot()
        return link_lines(snap, row) if snap is not None else []

    def action_why(self) -> None:
        from .screens import WhyScreen

        row = self._current_record()
        if self.views is None or row is None:
            self.notify("select a socket first", severity="warning")
            return
        if isinstance(row, GroupRow):
            if row.by != "port":
                self.notify("why needs a port: pick a port group or a socket", severity="warning")
                return
            proto, port = "tcp", int(row.value.lstrip(":"))
        else:
            proto, port = row.proto, row.local_port
        self.push_screen(WhyScreen(self.snapshot_for(row), proto, port))

    def action_bind_check(self) -> None:
        from .screens import BindCheckScreen

        if self.views is None:
            self.notify("no snapshot yet", severity="warning")
            return
        row = self._current_record()
        proto, ep, like = "tcp", "", None
        if isinstance(row, SocketRecord):
            proto, ep = row.proto, endpoint(row.local_addr, row.local_port, row.family, row.device)
            # A listening or bound socket: start from "another socket like this one".
            like = row if row.state in ("LISTEN", "UNCONN") else None
        # uid: the selected socket's for "another like this", else the caller's, as `sockscope check` defaults to
        self.push_screen(BindCheckScreen(lambda: self.snapshot_for(row), proto, ep,
                                         uid=like.uid if like is not None else os.getuid(), like=like))

    def on_blockers_found(self, message: BlockersFound) -> None:
        with WIDGETS_GONE:
            self.set_blockers(message.blockers, message.text)

    def action_free_port(self) -> None:
        from .screens import FreePortScreen

        if self.readonly:
            self.notify("read-only mode (--readonly): destroying sockets and signalling processes is disabled",
                        severity="warning")
            return
        row = self._current_record()
        if self.views is None or not isinstance(row, SocketRecord):
            self.notify("select a socket first", severity="warning")
            return
        if row.netns is not None and row.netns.kind != "host":
            # Destroying goes through a sock_diag socket inside the socket's namespace, which
            # --all-netns does not hold by name: say so rather than act in the wrong one.
            self.notify(f"K acts in one namespace: run sockscope --netns {host_text(row.netns.name)} for this socket",
                        severity="warning")
            return
        self.push_screen(FreePortScreen(row, self.snapshot_for(row), self.netns))

    def action_namespaces(self) -> None:
        """The namespace pane: pick one namespace (a `netns` filter) or all of them."""
        from .screens import NamespacesScreen

        snap = self.snapshot()
        if snap is None or snap.namespaces is None:
            self.notify("one namespace watched: start with --all-netns to see them all", severity="warning")
            return

        def picked(text: str | None) -> None:
            if text is None:
                return
            if text:
                self.set_filter(text)
            else:
                self.action_clear_filter()

        self.push_screen(NamespacesScreen(snap), picked)

    def set_blockers(self, blockers: frozenset[Ident], text: str) -> None:
        self.blockers = blockers
        self.blockers_text = text
        for pane in PANES:
            self.table(pane).set_blockers(blockers)
        banner = self.query_one("#blockers-banner", Static)
        banner.set_class(bool(blockers), "-show")
        if blockers:
            where = []
            if self.views is not None:
                for pane in PANES:
                    n = sum(1 for k in blockers if k in self.views.panes[pane].by_ident)
                    if n:
                        where.append(f"{PANE_TITLES[pane]} {n}")
            banner.update(Text(terminal_text(f"! bind check {text}: {len(blockers)} blocker(s) marked ! "
                                             f"({', '.join(where) or 'not shown'}) · x clears")))

    def action_clear_blockers(self) -> None:
        self.set_blockers(frozenset(), "")

    # ------------------------------------------------------------ command palette

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for title, what, action in palette_keys():  # the same table as the bindings and help
            if self.readonly and action == "free_port":
                continue  # --readonly: nothing that acts on the host
            # call_next: the palette (or a test) calls this synchronously; run_action is a coroutine.
            yield SystemCommand(title, what, partial(self.call_next, self.run_action, action))

    def action_details(self) -> None:
        self.open_details()

    # ------------------------------------------------------------ crashes

    crash_line: str | None = None

    def _handle_exception(self, error: Exception) -> None:
        """An unexpected exception: Textual restores the terminal and exits with status
        1; instead of a screenful of traceback the user gets one line and the log's path."""
        from .crash import write_crash_log

        self.stop_threads()
        if self.crash_line is None:  # the first error is the one to read; later ones follow from it
            path = write_crash_log(error)
            where = f"traceback in {path}" if path else "no log could be written"
            self.crash_line = (f"sockscope: internal error ({type(error).__name__}: "
                               f"{terminal_text(str(error))[:200]}); {where}")
        super()._handle_exception(error)

    def _print_error_renderables(self) -> None:
        if self.crash_line is None:
            super()._print_error_renderables()
            return
        self._exit_renderables.clear()
        try:
            print(self.crash_line.replace("\n", " "), file=sys.stderr)
        except OSError:
            pass

    # ------------------------------------------------------------ test and benchmark hooks

    async def wait_for(self, condition: Callable[[Views], bool], timeout: float = 30.0) -> Views:
        """Wait until the applied views satisfy `condition` (tests, benchmarks)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            views = self.views
            if views is not None and condition(views):
                return views
            if loop.time() > deadline:
                raise TimeoutError("sockscope: views did not reach the expected state")
            await asyncio.sleep(0.01)

    async def settled(self, timeout: float = 30.0) -> Views:
        """Wait until the views reflect the current settings (filter, sort, grouping)."""
        version = self.settings.version
        return await self.wait_for(
            lambda v: v.settings.version >= version and self._signals_seq >= self._signals_wanted, timeout)

    async def refresh_now(self, full: bool = True, timeout: float = 30.0) -> Views:
        """Ask for a refresh and wait until its views are applied."""
        start = time.monotonic()
        version = self.settings.version
        self.poller.request(full=full)
        return await self.wait_for(lambda v: v.frame.started >= start and v.settings.version >= version, timeout)

