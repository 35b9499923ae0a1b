"""Numbers the user types (ports, uids, pids): ASCII digits only, bounded, one clear sentence.

`str.isdigit()` is true for "²" and "٣" and `int()` takes Arabic-Indic or full-width
digits: neither is what anyone means by a port, and "²" made int() raise where isdigit()
had said yes. Every command-line and TUI field that takes a number goes through here.
"""

from __future__ import annotations

import re

__all__ = ["InputError", "parse_uint", "parse_port", "parse_uid", "parse_pid", "parse_ifname", "UID_MAX", "PID_MAX"]

_ASCII_NUMBER = re.compile(r"[0-9]{1,20}")
# (uid_t)-1 = 4294967295 is not a uid: setresuid() reads it as "leave unchanged".
UID_MAX = 4294967294
PID_MAX = 4194304  # PID_MAX_LIMIT on 64-bit kernels


class InputError(ValueError):
    """Text the user typed that is not a valid value; str() is one sentence for them."""


def parse_uint(text: str, what: str, low: int, high: int) -> int:
    """An ASCII decimal number in [low, high]; surrounding blanks are allowed."""
    s = text.strip()
    if not _ASCII_NUMBER.fullmatch(s):
        raise InputError(f"bad {what} {text!r}: expected a number from {low} to {high} (ASCII digits)")
    value = int(s, 10)
    if not low <= value <= high:
        raise InputError(f"{what} {value} is out of range {low}-{high}")
    return value


def parse_port(text: str, low: int = 0) -> int:
    return parse_uint(text, "port", low, 65535)


def parse_uid(text: str) -> int:
    return parse_uint(text, "uid", 0, UID_MAX)


def parse_pid(text: str) -> int:
    return parse_uint(text, "pid", 1, PID_MAX)


def parse_ifname(text: str) -> str:
    """An interface name as the kernel's dev_valid_name() allows it: 1-15 bytes, not "."
    or "..", no "/", ":" or blank; control characters are refused too (they could only be
    a typo or an attack on the terminal that echoes the name back)."""
    name = text.strip()
    raw = name.encode("utf-8", "surrogateescape")
    if (
        not name
        or len(raw) > 15
        or name in (".", "..")
        or any(c in "/:" or c.isspace() or not c.isprintable() for c in name)
    ):
        raise InputError(f"bad interface name {text!r}: 1-15 bytes, no '/', ':' or blanks")
    return name
