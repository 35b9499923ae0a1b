"""TcpExt counters of one network namespace from /proc/net/netstat.

The file holds pairs of lines, a header and its values ("TcpExt: SyncookiesSent ...",
"TcpExt: 0 ..."). /proc/net follows the network namespace of the reading *thread* only
through /proc/thread-self/net, so read it from inside `netns.entered()`.
"""

from __future__ import annotations

NETSTAT_PATH = "/proc/thread-self/net/netstat"


class NetstatError(Exception):
    """/proc/net/netstat could not be read or parsed (one sentence)."""


def parse_netstat(text: str) -> dict[str, dict[str, int]]:
    """{"TcpExt": {"ListenOverflows": 3, ...}, "IpExt": {...}} from the file's text."""
    out: dict[str, dict[str, int]] = {}
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) % 2:
        raise NetstatError(f"netstat: odd number of lines ({len(lines)}): header without values")
    for head, vals in zip(lines[0::2], lines[1::2]):
        hname, _, hfields = head.partition(":")
        vname, _, vfields = vals.partition(":")
        if hname != vname:
            raise NetstatError(f"netstat: header {hname!r} followed by values of {vname!r}")
        keys = hfields.split()
        values = vfields.split()
        if len(keys) != len(values):
            raise NetstatError(f"netstat: {hname} has {len(keys)} names but {len(values)} values")
        try:
            out[hname] = {k: int(v) for k, v in zip(keys, values)}
        except ValueError as exc:
            raise NetstatError(f"netstat: {hname}: {exc}") from None
    return out


def read_tcpext(path: str = NETSTAT_PATH) -> dict[str, int]:
    """The TcpExt counters of the calling thread's network namespace."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as exc:
        raise NetstatError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_netstat(text).get("TcpExt", {})
