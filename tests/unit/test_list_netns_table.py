"""`list --all-netns` text table: a Netns column, namespace names escaped, one line per socket.
(Owner names are the sanitizer's business, tested with it.)"""

from sockscope.cli.list_cmd import render_table
from sockscope.model import NetnsRef, Owner, SocketRecord
from sockscope.sanitize import host_text


def rec(port: int, netns: NetnsRef | None, process: str = "nginx") -> SocketRecord:
    return SocketRecord("tcp", 4, "LISTEN", "0.0.0.0", port, "0.0.0.0", 0, 0, port, port, reuseaddr=True,
                        reuseport=False, owners=[Owner(100 + port, 3, process, "root")], netns=netns)


def test_netns_column_first_and_one_line_per_socket():
    recs = [rec(80, NetnsRef(1, "host", "host")), rec(8080, NetnsRef(2, "web\n\x1b[2J", "netns")),
            rec(443, NetnsRef(3, "shop/api-7d9f-very-long-pod-name", "container"))]
    out = render_table(recs, 100, wide=False)
    lines = out.splitlines()
    assert lines[0].startswith("Netns ") and len(lines) == 4
    assert lines[1].startswith("host ") and ":80 " in lines[1]
    assert "\x1b" not in out and ":8080" in lines[2] and lines[2].startswith(host_text("web\n\x1b[2J") + " ")
    assert lines[3].split()[0] == "shop/ap…pod-name"  # shortened to 16 columns
    wide = render_table(recs, 100, wide=True).splitlines()
    assert wide[3].startswith("shop/api-7d9f-very-long-pod-name ")


def test_no_netns_column_for_one_namespace():
    out = render_table([rec(80, None)], 80, wide=False)
    assert out.startswith("Net ") and "Netns" not in out
