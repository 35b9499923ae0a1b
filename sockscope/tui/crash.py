"""What an unexpected exception in the TUI leaves behind: one line on stderr, once the
terminal is restored, and the traceback in a private, bounded log file."""

from __future__ import annotations

import os
import tempfile
import time
import traceback

MAX_LOG_BYTES = 256 * 1024  # one crash, the last one: the file never grows past this


def log_dir() -> str:
    """$XDG_STATE_HOME/sockscope, else ~/.local/state/sockscope."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "sockscope")


def _open_private(path: str) -> int:
    # O_NOFOLLOW: a symlink planted at the path is not followed; 0600: tracebacks may quote
    # process names and command lines of other users.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def write_crash_log(error: BaseException) -> str | None:
    """Write `error`'s traceback to the crash log; its path, or None if nowhere was writable."""
    text = (
        f"sockscope crashed at {time.strftime('%Y-%m-%d %H:%M:%S %z')}\n"
        + "".join(traceback.format_exception(type(error), error, error.__traceback__))
    )
    data = text.encode("utf-8", "backslashreplace")
    if len(data) > MAX_LOG_BYTES:
        data = data[: MAX_LOG_BYTES // 2] + b"\n[... cut ...]\n" + data[-MAX_LOG_BYTES // 2 :]
    try:
        directory = log_dir()
        os.makedirs(directory, mode=0o700, exist_ok=True)
        path = os.path.join(directory, "crash.log")
        fd = _open_private(path)
    except OSError:
        try:
            fd, path = tempfile.mkstemp(prefix="sockscope-crash-", suffix=".log")  # 0600 by design
        except OSError:
            return None
    try:
        os.write(fd, data)
    except OSError:
        return None
    finally:
        os.close(fd)
    return path
