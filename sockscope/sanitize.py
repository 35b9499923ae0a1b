"""The one sanitizer for text that comes from the host.

Process names (any user can set their own with prctl(PR_SET_NAME) or `exec -a`), argv,
user names and interface names may hold ESC, BEL, CR, LF and other control characters.
Written raw to a terminal they retitle it, clear it, erase rows or spoof what another
line says. Every such string passes `host_text()` before any terminal output (text
output of the CLI and everything the TUI draws); JSON output escapes on its own and
keeps the exact text.

What is replaced, each by a visible escape, never emitted:
- C0 controls, DEL and C1 controls: `\\x1b`, `\\x7f`, `\\x9b`;
- other characters Python does not call printable (format characters such as the bidi
  overrides U+202E and zero-width spaces, line and paragraph separators, unassigned and
  private-use code points): `\\u202e`;
- lone surrogates (bytes that were not UTF-8, decoded with surrogateescape): `\\xNN` of
  the original byte;
- the backslash itself, as `\\\\`, so that an escape cannot be forged by a name that
  spells one out.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["host_text", "host_lines", "terminal_text"]


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if ch == "\\":
        return "\\\\"
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape of one undecodable byte
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


@lru_cache(maxsize=4096)  # bounded: process and interface names repeat across 100,000 sockets
def _escaped(text: str) -> str:
    return "".join(ch if (ch.isprintable() and ch != "\\") else _escape_char(ch) for ch in text)


def host_text(text: str | None) -> str:
    """`text` made safe for a terminal: one line, every control or invisible character
    shown as an escape. None becomes the empty string."""
    if not text:
        return ""
    if text.isprintable() and "\\" not in text:
        return text
    if len(text) > 4096:  # argv can be long: do not let one cache entry pin megabytes
        return "".join(ch if (ch.isprintable() and ch != "\\") else _escape_char(ch) for ch in text)
    return _escaped(text)


def host_lines(parts: list[str] | None) -> str:
    """An argv (or any list of host strings) as one safe line, arguments joined by spaces."""
    if not parts:
        return ""
    return " ".join(host_text(p) for p in parts)


def _guard_char(ch: str) -> str:
    return ch if ch.isprintable() or ch == "\n" else _escape_char(ch)


def terminal_text(text: str) -> str:
    """The last guard before a terminal: `text` (sockscope's own sentences, which may
    quote host strings) with every control or invisible character except the newline
    shown as an escape.

    Unlike `host_text()` it leaves backslashes alone, so it is idempotent and can wrap
    whole outputs whose host strings already went through `host_text()`: it changes
    nothing then, and catches any host string that did not."""
    if text.isprintable():
        return text
    if "\n" in text and all(part.isprintable() for part in text.split("\n")):
        return text
    return "".join(_guard_char(ch) for ch in text)
