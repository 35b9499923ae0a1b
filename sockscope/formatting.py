"""How a socket's address, options and owner are written, the same in `list` and the TUI.

Host strings (process, user and device names) pass `host_text()` here, so every text
output built from these helpers is safe for a terminal; JSON does not use them.
"""

from __future__ import annotations

from sockscope.model import SocketRecord, first_owner
from sockscope.sanitize import host_text


def flag(value: bool | None, letter: str) -> str:
    """One option as a letter when set, '-' when off, '?' when it could not be read."""
    if value is None:
        return "?"
    return letter if value else "-"


def options_text(r: SocketRecord) -> str:
    """"AP6": SO_REUSEADDR, SO_REUSEPORT, IPV6_V6ONLY (blank for IPv4)."""
    v6 = flag(r.v6only, "6") if r.family == 6 else " "
    return flag(r.reuseaddr, "A") + flag(r.reuseport, "P") + v6


def endpoint(addr: str, port: int, family: int, device: str | None = None, peer: bool = False) -> str:
    """As ss writes it: [v6]:port, %device after the address, an unconnected peer as *."""
    host = f"[{addr}]" if family == 6 else addr
    if device:
        host += f"%{host_text(device)}"
    if peer and port == 0 and addr in ("0.0.0.0", "::"):
        return f"{host}:*"
    return f"{host}:{port}"


def owner_text(r: SocketRecord, with_user: bool = False) -> str:
    """"nginx/812 www +2": the lowest (pid, fd) holder, and how many other processes hold it."""
    owners = r.owners
    first = first_owner(owners)
    if first is None:
        return ""
    # One owner, nearly every socket: no set to build (100,000 rows a `list`).
    more = len({o.pid for o in owners}) - 1 if len(owners) > 1 else 0
    text = f"{host_text(first.process)}/{first.pid}"
    if with_user and first.user:
        text += f" {host_text(first.user)}"
    if more:
        text += f" +{more}"
    return text
