"""`K`: free the selected socket's port, safely. A preview of exactly what each action
does (destroy this socket through SOCK_DESTROY, or SIGTERM its processes), then an
explicit confirmation: nothing destructive happens from a single key. SIGKILL is offered
only after SIGTERM left a process running, with its own confirmation."""

from __future__ import annotations

import signal
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, Static

from sockscope.model import Snapshot, SocketRecord

from ..keys import bindings


class FreePortScreen(ModalScreen[None]):
    BINDINGS = bindings("free-port")  # tui/keys.py

    def __init__(self, rec: SocketRecord, snapshot: Snapshot, netns: str | None = None) -> None:
        super().__init__()
        self.rec = rec
        self.snapshot = snapshot
        self.netns = netns
        # "choose" -> "confirm" (an action chosen) -> "acting" -> "done", or "offer-kill"
        # when SIGTERM left a process running.
        self.stage = "choose"
        self.chosen: str | None = None
        self.result: list[str] = []
        self.still_running: list[int] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="free-box", classes="modal-box"):
            yield Label("Free this port: destroy the socket, or stop its process", classes="modal-title")
            with VerticalScroll(id="free-scroll"):
                yield Static(self.body(), id="free-body")
            yield Footer()

    # ------------------------------------------------------------ text

    def owners(self) -> dict[int, Any]:
        out: dict[int, Any] = {}
        for o in self.rec.owners:
            out.setdefault(o.pid, o)
        return out

    def body(self) -> Text:
        from sockscope.collectors.destroy import read_cmdline
        from sockscope.predict.freeing import destroy_preview, process_preview

        t = Text()
        if self.stage in ("choose", "confirm"):
            t.append("d  ", style="bold")
            t.append("\n".join(destroy_preview([self.rec], self.snapshot)) + "\n\n")
            owners = self.owners()
            if owners:
                t.append("t  ", style="bold")
                cmdlines = {pid: read_cmdline(pid) for pid in owners}
                t.append("\n".join(process_preview(owners, self.snapshot, cmdlines)) + "\n")
            else:
                t.append("t  no process holds this socket: nothing to signal\n", style="dim")
        if self.stage == "choose":
            t.append("\nPress d or t to choose; you will be asked to confirm. esc cancels.", style="bold")
        elif self.stage == "confirm":
            what = {"destroy": "DESTROY this socket", "sigterm": "send SIGTERM to "
                    + ", ".join(f"pid {p}" for p in sorted(self.owners())),
                    "sigkill": "send SIGKILL to " + ", ".join(f"pid {p}" for p in self.still_running)}[self.chosen or ""]
            t.append(f"\nReally {what}? Press y to confirm, n or esc to cancel.", style="bold red")
        elif self.stage == "acting":
            t.append("working…", style="dim")
        if self.result:
            t.append("\n".join(self.result) + "\n")
        if self.stage == "offer-kill":
            t.append("\nStill running after SIGTERM: " + ", ".join(f"pid {p}" for p in self.still_running)
                     + ". Press k to send SIGKILL (you will be asked to confirm), esc to leave it.", style="bold")
        elif self.stage == "done":
            t.append("\nDone: the panes show the result after the next refresh. esc closes.", style="bold")
        return t

    def _update(self) -> None:
        self.query_one("#free-body", Static).update(self.body())

    # ------------------------------------------------------------ actions

    def action_choose(self, what: str) -> None:
        if what == "sigkill":
            if self.stage != "offer-kill":
                return
        elif self.stage not in ("choose", "confirm"):
            return
        if what == "sigterm" and not self.owners():
            self.notify("no process holds this socket", severity="warning")
            return
        self.chosen = what
        self.stage = "confirm"
        self._update()

    def action_confirm(self) -> None:
        if self.stage != "confirm" or self.chosen is None:
            return  # y does nothing until an action was chosen
        if getattr(self.app, "readonly", False):
            self.result = ["read-only mode: nothing was done"]
            self.stage = "done"
            self._update()
            return
        self.stage = "acting"
        self._update()
        self.act(self.chosen)

    @work(thread=True, exclusive=True, group="free-port")
    def act(self, what: str) -> None:
        from sockscope.collectors.destroy import (
            ActionError,
            ProcessHandle,
            destroy_socket,
        )
        from sockscope.predict.freeing import SIGTERM_WAIT_S

        lines: list[str] = []
        running: list[int] = []
        if what == "destroy":
            try:
                destroy_socket(self.rec, self.netns)
                lines.append("destroyed.")
            except ActionError as exc:
                lines.append(f"refused: {exc.strerror or exc}")
        else:
            sig = signal.SIGTERM if what == "sigterm" else signal.SIGKILL
            pids = sorted(self.owners()) if what == "sigterm" else list(self.still_running)
            for pid in pids:
                try:
                    with ProcessHandle(pid, self.rec.inode if what == "sigterm" else None) as h:
                        h.send(sig)
                        lines.append(f"{signal.Signals(sig).name} sent to pid {pid}.")
                        if h.wait_exit(SIGTERM_WAIT_S):
                            lines.append(f"pid {pid} exited.")
                        else:
                            running.append(pid)
                except ActionError as exc:
                    lines.append(f"refused: {exc.strerror or exc}")
        self.app.call_from_thread(self._acted, lines, running, what)

    def _acted(self, lines: list[str], running: list[int], what: str) -> None:
        self.result += lines
        self.still_running = running
        self.stage = "offer-kill" if (running and what == "sigterm") else "done"
        poller = getattr(self.app, "poller", None)
        if poller is not None:
            poller.request(full=True)  # the panes show the result
        self._update()
