"""The host-text sanitizer: no control character ever survives, and nothing is ambiguous."""

from __future__ import annotations

import random
import unicodedata

from sockscope.sanitize import host_lines, host_text


def _has_control(s: str) -> bool:
    return any(not ch.isprintable() for ch in s)


def test_plain_names_unchanged() -> None:
    for name in ("nginx", "redis-server", "python3.11", "naïve-ß", "日本語", "a b"):
        assert host_text(name) == name


def test_escapes_are_visible() -> None:
    assert host_text("\x1b]0;pwned\x07\x1b[2J") == "\\x1b]0;pwned\\x07\\x1b[2J"
    assert host_text("a\nb\rc\td") == "a\\x0ab\\x0dc\\x09d"
    assert host_text("del\x7f c1\x9b") == "del\\x7f c1\\x9b"
    assert host_text("rtl\u202eevil") == "rtl\\u202eevil"
    assert host_text("line\u2028sep") == "line\\u2028sep"
    assert host_text("zw\u200bsp") == "zw\\u200bsp"


def test_backslash_cannot_forge_an_escape() -> None:
    # A name that spells out "\x1b" must not look like one that holds ESC.
    assert host_text("\\x1b") != host_text("\x1b")
    assert host_text("\\x1b") == "\\\\x1b"


def test_surrogateescape_bytes() -> None:
    raw = b"bad\xff\xfename".decode("utf-8", "surrogateescape")
    out = host_text(raw)
    assert out == "bad\\xff\\xfename"
    out.encode("utf-8")  # printable and encodable: no UnicodeEncodeError at print()


def test_none_and_empty() -> None:
    assert host_text(None) == ""
    assert host_text("") == ""
    assert host_lines(None) == ""
    assert host_lines(["a", "b\nc"]) == "a b\\x0ac"


def test_fuzz_no_control_character_survives() -> None:
    rng = random.Random(20261125)
    pool = [chr(c) for c in range(0, 0x250)] + ["\u202e", "\u2066", "\u2028", "\ufeff", "\udcff", "\U0001f600", "\U000e0001"]
    for _ in range(5000):
        s = "".join(rng.choice(pool) for _ in range(rng.randint(0, 40)))
        out = host_text(s)
        assert not _has_control(out), (s, out)
        out.encode("utf-8")
        assert all(unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Zl", "Zp") for ch in out)


def test_long_text_not_cached_but_escaped() -> None:
    s = "\x1b" * 10000
    assert host_text(s) == "\\x1b" * 10000
