"""Hostile hosts: processes and interfaces named with escapes, newlines, markup and long
names, over every text output (list, check, why, the TUI through Pilot and through a real
terminal in tmux) and JSON; owner details that change under a pid (setuid, exec).

The judge is simple: no control character from a host string reaches the output (C0
except the newline between lines, DEL, C1; on the real terminal: no escape sequence other
than the TUI's own colours and cursor moves, which tmux re-emits as SGR only), and JSON
keeps the exact names."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import unicodedata

import pytest

from kit.netns import setns

pytestmark = pytest.mark.root

PY = sys.executable
# prctl(PR_SET_NAME) keeps 15 bytes: each of these is a complete attack in 15 bytes.
COMMS = [
    b"\x1b]0;pwned\x07\x1b[2J",  # retitle the terminal and clear the screen
    b"\x1b[2K\r\x1b[8m",  # erase its own row, then hide what follows
    b"[red]x[/]\n\x9bq",  # Rich markup, a newline, a C1 CSI
    b"\xff\xfe\\x1b\x7f",  # not UTF-8, a spelled-out escape, DEL
]
# argv[0] and arguments: overwrite the line above in the details, and 200-byte names.
ARGV = ["\n\r\x1b[1Aspoofed-cmdline " + "A" * 200, "--x\x9b31m", "[b]markup[/b]", "\u202eevil"]
CHILD = r"""
import ctypes, socket, sys
name = bytes.fromhex(sys.stdin.readline().strip())
ctypes.CDLL(None).prctl(15, ctypes.c_char_p(name), 0, 0, 0)  # PR_SET_NAME
port = int(sys.stdin.readline())
dev = sys.stdin.readline().rstrip("\n").encode("utf-8", "surrogateescape")
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if dev:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, dev)
s.bind(("127.0.0.1" if not dev else "0.0.0.0", port))
s.listen()
print("ready", flush=True)
sys.stdin.readline()
"""
# An interface name the kernel accepts (dev_valid_name refuses only '/', ':', spaces,
# '.', '..' and 16+ bytes): ESC, BEL and markup are fine with it.
EVIL_DEV = "e\x1b[31m\x07[b]"


def spawn_child(ns, comm: bytes, port: int, dev: str = "") -> subprocess.Popen:
    """A listener in `ns` named `comm` (prctl) with the hostile ARGV as its command line."""
    argv = [ARGV[0], "-c", CHILD, *ARGV[1:]]
    p = subprocess.Popen(argv, executable=PY, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         preexec_fn=lambda: setns(f"/run/netns/{ns.name}"), text=True,
                         errors="surrogateescape")
    assert p.stdin is not None and p.stdout is not None
    p.stdin.write(f"{comm.hex()}\n{port}\n{dev}\n")
    p.stdin.flush()
    assert p.stdout.readline().strip() == "ready"
    return p


def stop(p: subprocess.Popen) -> None:
    try:
        assert p.stdin is not None
        p.stdin.write("\n")
        p.stdin.flush()
    except OSError:
        pass
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(5)


@pytest.fixture
def hostile(netns):
    ifindex = netns.add_dummy(EVIL_DEV)
    assert ifindex
    procs = []
    try:
        for i, comm in enumerate(COMMS):
            procs.append(spawn_child(netns, comm, 7100 + i))
        procs.append(spawn_child(netns, COMMS[0], 7200, dev=EVIL_DEV))
        yield netns, procs
    finally:
        for p in procs:
            stop(p)


def bad_chars(text: str) -> list[str]:
    """Control or invisible characters other than the newline between lines."""
    return [ch for ch in text if ch != "\n" and (not ch.isprintable() or unicodedata.category(ch) in ("Cc", "Cf"))]


def sockscope(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "sockscope", *args], capture_output=True, text=True, timeout=120,
                          errors="surrogateescape")


def test_cli_text_has_no_control_characters_and_json_keeps_exact_names(hostile):
    ns, procs = hostile
    outs = [
        sockscope("list", "--netns", ns.name),
        sockscope("list", "--netns", ns.name, "-w"),
        sockscope("check", "tcp", "127.0.0.1:7100", "--netns", ns.name),
        sockscope("check", "tcp", "0.0.0.0:7200", "--reuseaddr", "--netns", ns.name),
        # A valid name that is absent: the error lists the namespace's (hostile) interface names.
        sockscope("check", "tcp", "127.0.0.1:7300", "--device", "nope", "--netns", ns.name),
        # A name the kernel would refuse: one line, escaped.
        sockscope("check", "tcp", "127.0.0.1:7300", "--device", "nope\x1b[2J", "--netns", ns.name),
        sockscope("why", "7100", "--netns", ns.name),
        sockscope("why", "7200", "--netns", ns.name),
    ]
    for out in outs:
        assert "Traceback" not in out.stderr, out.stderr
        assert not bad_chars(out.stdout), (out.args, out.stdout)
        assert not bad_chars(out.stderr), (out.args, out.stderr)
    listing = outs[1].stdout
    # Every hostile listener is there, on its own line, its name visible as escapes.
    for port in (7100, 7101, 7102, 7103, 7200):
        assert sum(f":{port}" in line for line in listing.splitlines()) == 1, listing
    assert "\\x1b]0;pwned\\x07\\x1b[2" in listing
    assert "\\x1b[2K\\x0d\\x1b[8m" in listing
    # Bytes that are not UTF-8 show as U+FFFD; the spelled-out escape cannot pass for a real one.
    assert "\ufffd\ufffd\\\\x1b\\x7f" in listing
    assert "%e\\x1b[31m\\x07[b]" in listing  # the device
    assert "no interface" in outs[4].stderr and "e\\x1b[31m\\x07[b]" in outs[4].stderr
    assert outs[5].returncode == 2 and "nope\\x1b[2J" in outs[5].stderr and len(outs[5].stderr.splitlines()) == 1
    # JSON: the exact names, escaped by JSON itself.
    js = sockscope("list", "--json", "--netns", ns.name)
    assert not bad_chars(js.stdout)
    rows = {r["local_port"]: r for r in json.loads(js.stdout)}
    for i, comm in enumerate(COMMS):
        assert rows[7100 + i]["process"] == comm.decode("utf-8", "replace")
    assert rows[7200]["device"] == EVIL_DEV
    for args in (("check", "tcp", "127.0.0.1:7100"), ("why", "7100")):
        out = sockscope(*args, "--json", "--netns", ns.name)
        assert not bad_chars(out.stdout)
        json.loads(out.stdout)


def _screen_text(app) -> str:
    """Every character the compositor would send for the current screen."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(seg.text for seg in strip if not seg.control) for strip in strips)


async def test_tui_draws_no_control_characters(hostile):
    from sockscope.tui import SockscopeApp
    from sockscope.tui.screens import DetailsScreen, WhyScreen

    ns, _procs = hostile
    app = SockscopeApp(netns=ns.name, interval=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.wait_for(lambda v: v.frame.full and any(r.local_port == 7200 for r in v.frame.listening))
        await pilot.pause()
        screen = _screen_text(app)
        assert not bad_chars(screen), screen
        assert "\\x1b]0;pwned" in screen
        table = app.table("listening")
        for port in (7100, 7101, 7102, 7103, 7200):
            i = next(i for i, r in enumerate(table.rows) if r.local_port == port)
            table.move_to(i)
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, DetailsScreen)
            for _ in range(100):  # the command line and the verdict arrive from workers
                body = str(app.screen.query_one("#details-body").render())
                if "reading…" not in body and "checking…" not in body:
                    break
                await pilot.pause(0.05)
            screen = _screen_text(app)
            assert not bad_chars(screen), screen
            assert not bad_chars(body), body
            assert "\\x0a\\x0d\\x1b[1Aspoofed-cmdline" in body  # one line: cannot overwrite the line above
            await pilot.press("w")
            await pilot.pause()
            assert isinstance(app.screen, WhyScreen)
            for _ in range(100):
                if app.screen.text is not None:
                    break
                await pilot.pause(0.05)
            assert not bad_chars(_screen_text(app))
            await pilot.press("escape")
            await pilot.press("escape")
            await pilot.pause()
        # The bind check, with the hostile device named (its error lists the interfaces).
        await pilot.press("b")
        await pilot.pause()
        app.screen.query_one("#bind-endpoint").value = "127.0.0.1:7300"
        app.screen.query_one("#bind-device").value = "nope"
        await pilot.press("enter")
        for _ in range(100):
            if "checking" not in str(app.screen.query_one("#bind-result").render()):
                break
            await pilot.pause(0.05)
        result = str(app.screen.query_one("#bind-result").render())
        assert "e\\x1b[31m\\x07[b]" in result, result
        assert not bad_chars(_screen_text(app))


# What may legitimately be on a tmux pane captured with -e: SGR colour/style sequences.
SGR = re.compile(r"\x1b\[[0-9;:]*m")


def tmux(*args: str, check: bool = True) -> str:
    return subprocess.run(["tmux", "-L", "sockscope-hostile", *args], capture_output=True, text=True,
                          check=check, errors="surrogateescape").stdout


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")
def test_real_terminal_shows_no_injected_sequences(hostile, tmp_path):
    ns, _procs = hostile
    title = "sockscope-hostile-title"
    tmux("kill-server", check=False)
    tmux("-f", "/dev/null", "new-session", "-d", "-x", "120", "-y", "40", "-s", "h",
         f"printf '\\033]0;{title}\\007'; {PY} -m sockscope tui --netns {ns.name} --interval 3600; "
         f"echo EXIT=$?; sleep 30")
    try:
        screen = ""
        for _ in range(150):
            time.sleep(0.2)
            screen = tmux("capture-pane", "-e", "-p", "-t", "h")
            if ":7200" in screen and ":7103" in screen:
                break
        assert ":7200" in screen, screen
        visible = SGR.sub("", screen)
        assert "\x1b" not in visible and not bad_chars(visible), repr(visible)
        assert "\\x1b]0;pwned" in visible
        # The hostile comm tried to retitle the terminal: the title is still ours.
        assert tmux("display-message", "-p", "-t", "h", "#{pane_title}").strip() == title
        # One row per hostile listener: none erased its own row.
        for port in (7100, 7101, 7102, 7103):
            assert sum(f":{port}" in line for line in visible.splitlines()) == 1, visible
        tmux("send-keys", "-t", "h", "q")
        for _ in range(50):
            time.sleep(0.2)
            screen = tmux("capture-pane", "-p", "-t", "h")
            if "EXIT=" in screen:
                break
        assert "EXIT=0" in screen, screen
    finally:
        tmux("kill-server", check=False)


# ---------------------------------------------------------------- owner details under one pid

STAGES = r"""
import os, socket, sys
s = socket.socket()
s.set_inheritable(True)
print(s.fileno(), os.fstat(s.fileno()).st_ino, flush=True)
sys.stdin.readline()
os.setresgid(1001, 1001, 1001)
os.setresuid(1001, 1001, 1001)  # a uid change without exec
print("setuid", flush=True)
sys.stdin.readline()
# exec another program, keeping the socket (the interpreter sits under /root, which uid 1001
# may not enter: /bin/sh it is)
os.execv("/bin/sh", ["/bin/sh", "-c", "echo exec; read x", "second-life"])
"""


def test_owner_details_follow_setuid_and_exec(monkeypatch):
    from sockscope.collectors import owners as owners_mod

    monkeypatch.setattr(owners_mod, "META_INTERVAL", 0.0)
    p = subprocess.Popen([PY, "-c", STAGES, "first-life"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                         cwd="/")
    try:
        assert p.stdin is not None and p.stdout is not None
        fd, inode = map(int, p.stdout.readline().split())
        index = owners_mod.OwnerIndex()

        def owner():
            found = index.lookup({inode}, incremental=True)[inode]
            assert [(o.pid, o.fd) for o in found] == [(p.pid, fd)]
            return found[0]

        first = owner()
        assert first.user == "root" and "first-life" in first.cmdline
        p.stdin.write("\n")
        p.stdin.flush()
        assert p.stdout.readline().strip() == "setuid"
        second = owner()  # no fd changed: only the re-validation can see it
        assert second.user != "root" and index.process(p.pid).uid == 1001
        p.stdin.write("\n")
        p.stdin.flush()
        assert p.stdout.readline().strip() == "exec"
        third = owner()
        assert third.cmdline is not None and "second-life" in third.cmdline and "first-life" not in third.cmdline
        assert third.user == second.user and third.process == "sh"
        # A full scan agrees, and the earlier Owner objects were not changed in place.
        assert index.lookup({inode})[inode][0].cmdline == third.cmdline
        assert first.user == "root" and "first-life" in first.cmdline
    finally:
        p.kill()
        p.wait(5)


# ---------------------------------------------------------------- crashes and harsh outputs

CRASHER = r"""
import sys
from sockscope.tui.app import SockscopeApp
def boom(self):
    raise RuntimeError("injected crash \x1b[2J")
SockscopeApp.action_pause = boom
from sockscope.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")
def test_tui_crash_restores_the_terminal_logs_and_exits_nonzero(netns, tmp_path):
    script = tmp_path / "crasher.py"
    script.write_text(CRASHER)
    state = tmp_path / "state"
    tmux("kill-server", check=False)
    tmux("-f", "/dev/null", "new-session", "-d", "-x", "100", "-y", "30", "-s", "c",
         f"cd {os.getcwd()}; XDG_STATE_HOME={state} {PY} {script} tui --netns {netns.name} --interval 3600; "
         f"echo EXIT=$?; sleep 30")
    try:
        for _ in range(150):
            time.sleep(0.2)
            if "Listening" in tmux("capture-pane", "-p", "-t", "c"):
                break
        assert tmux("display-message", "-p", "-t", "c", "#{alternate_on}").strip() == "1"
        tmux("send-keys", "-t", "c", "p")
        screen = ""
        for _ in range(100):
            time.sleep(0.2)
            screen = tmux("capture-pane", "-e", "-J", "-p", "-t", "c")  # -J: wrapped lines joined
            if "EXIT=" in screen:
                break
        assert "EXIT=1" in screen, screen
        # The terminal is back: main screen, and only the one line (plus the shell's echo).
        assert tmux("display-message", "-p", "-t", "c", "#{alternate_on}").strip() == "0"
        lines = [line for line in SGR.sub("", screen).splitlines() if line.strip()]
        assert len(lines) == 2, lines
        assert lines[0].startswith("sockscope: internal error (RuntimeError: injected crash \\x1b[2J)"), lines
        assert "Traceback" not in screen and "\x1b[2J" not in screen
        log = state / "sockscope" / "crash.log"
        assert lines[0].endswith(f"; traceback in {log}"), lines
        assert os.stat(log).st_mode & 0o777 == 0o600
        text = log.read_text()
        assert "Traceback" in text and "injected crash" in text and len(text) < 300_000
    finally:
        tmux("kill-server", check=False)


def test_write_errors_are_one_line_and_nonzero(netns):
    for args in (("list",), ("list", "--json"), ("why", "22"), ("check", "tcp", "127.0.0.1:22")):
        with open("/dev/full", "w") as full:
            out = subprocess.run([PY, "-m", "sockscope", *args, "--netns", netns.name], stdout=full,
                                 stderr=subprocess.PIPE, text=True, timeout=60)
        assert out.returncode == 1, (args, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert lines[-1] == f"sockscope {args[0]}: cannot write the output: No space left on device", out.stderr
        assert "Traceback" not in out.stderr and "Exception ignored" not in out.stderr
    # A reader that goes away: quiet, the status of a SIGPIPE death, as ss or cat.
    big = f"import sys; sys.argv[1:] = ['list', '--netns', {netns.name!r}]\n" + r"""
import sockscope.cli.list_cmd as l
def table(records, width, wide):
    for _ in range(200):
        sys.stdout.write("x" * 100_000 + "\n")
    return ""
l.render_table = table
from sockscope.cli import main
sys.exit(main())
"""
    p = subprocess.Popen([PY, "-c", big], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None and p.stderr is not None
    p.stdout.read(1000)
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(60) == 141, err
    assert "Traceback" not in err and "Broken pipe" not in err and "Exception ignored" not in err


def test_without_a_terminal_the_tui_says_so_and_exits_2(netns):
    out = subprocess.run([PY, "-m", "sockscope", "--netns", netns.name], stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stdout == ""  # no escape codes written into a file or pipe
    assert out.stderr.strip() == ("sockscope tui: the live UI needs a terminal (stdin and stdout); "
                                  "for a one-shot table use `sockscope list` (or `list --json`)")


# ---------------------------------------------------------------- the TUI's memory after churn

CHURN = r"""
import socket, sys
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 9000))
srv.listen(4096)
print("ready", flush=True)
rnd = 0
for line in sys.stdin:
    n = int(line)
    conns = []
    for i in range(n):  # every round from new peer addresses (127.x.y.z)
        c = socket.socket()
        k = rnd * n + i
        c.bind((f"127.{1 + (k >> 16) % 200}.{(k >> 8) & 255}.{(k & 255) or 1}", 0))
        c.connect(("127.0.0.1", 9000))
        a, _ = srv.accept()
        conns.append((c, a))
    print("open", flush=True)
    sys.stdin.readline()
    for c, a in conns:  # RST: no TIME_WAIT left behind
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
        a.close()
    rnd += 1
    print("closed", flush=True)
"""


async def test_tui_memory_returns_after_churn(netns):
    """Rounds of 1,500 connections from new peers open and close; what the TUI's own code
    holds afterwards (marks, views, sort keys, history) is back near where it started.
    (The collectors' caches are measured by their own tests.)"""
    import asyncio
    import gc
    import tracemalloc

    from sockscope.tui import SockscopeApp

    tui_dir = os.path.join(os.path.dirname(__import__("sockscope.tui").tui.__file__), "")
    p = subprocess.Popen([PY, "-c", CHURN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                         preexec_fn=lambda: setns(f"/run/netns/{netns.name}"))
    assert p.stdin is not None and p.stdout is not None
    assert p.stdout.readline().strip() == "ready"

    def tui_bytes() -> int:
        gc.collect()
        snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, tui_dir + "*")])
        return sum(s.size for s in snap.statistics("filename"))

    try:
        app = SockscopeApp(netns=netns.name, interval=3600)
        async with app.run_test(size=(100, 30)) as pilot:
            await app.wait_for(lambda v: v.frame.full)
            tracemalloc.start()
            try:
                sizes = []
                for _ in range(3):
                    p.stdin.write("1500\n")
                    p.stdin.flush()
                    assert p.stdout.readline().strip() == "open"
                    views = await app.refresh_now()
                    assert views.counts.get("ESTAB", 0) >= 3000
                    p.stdin.write("\n")
                    p.stdin.flush()
                    assert p.stdout.readline().strip() == "closed"
                    await app.refresh_now()
                    await asyncio.sleep(2.2)  # the vanished rows' marks expire
                    await app.refresh_now()
                    await pilot.pause()
                    sizes.append(tui_bytes())
            finally:
                tracemalloc.stop()
        # The first round sets the steady state; two more rounds of 3,000 new sockets
        # and 1,500 new peers each add nothing that stays (a memo of sort keys kept
        # ~150 bytes a peer: this would be ~450 KB).
        assert sizes[-1] - sizes[0] < 256 * 1024, sizes
    finally:
        p.stdin.close()
        p.kill()
        p.wait(5)


async def test_deleted_namespace_is_shown_stale_at_80x24(netns, holders):
    from sockscope.tui import SockscopeApp

    h = holders(0)
    s = h.socket("tcp", 4)
    assert h.bind(s, "127.0.0.1", 7400) is None
    h.listen(s)
    app = SockscopeApp(netns=netns.name, interval=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.wait_for(lambda v: any(r.local_port == 7400 for r in v.frame.listening))
        subprocess.run(["ip", "netns", "delete", netns.name], check=True)
        app.poller.request()
        for _ in range(250):
            if app.error:
                break
            await pilot.pause(0.02)
        await pilot.pause()
        text = "\n".join("".join(seg.text for seg in strip) for strip in app.screen._compositor.render_strips())
        assert "STALE" in text and netns.name in text.replace("\n", ""), text
        assert app.query_one("#panes").has_class("-stale")
        assert any(r.local_port == 7400 for r in app.table("listening").rows)  # the last data, dimmed
