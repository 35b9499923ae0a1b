"""The TUI's sort keys are single ints (one C comparison each, so a sort of 100,000 rows
holds the GIL briefly); they must order rows exactly as the tuples they replace did."""

from __future__ import annotations

import ipaddress
import random

from sockscope.model import SocketRecord
from sockscope.tui import columns as C


def _addr_tuple(addr: str) -> tuple[int, int]:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return (9, 0)
    return (ip.version, int(ip))


def _records(n: int, seed: int) -> list[SocketRecord]:
    rng = random.Random(seed)
    addrs = ["0.0.0.0", "127.0.0.1", "10.0.0.2", "255.255.255.255", "::", "::1", "fe80::1", "ffff::1",
             "::ffff:127.0.0.1", "not an address", "1.2.3.4"]
    out = []
    for i in range(n):
        fam = rng.choice((4, 6))
        out.append(SocketRecord(rng.choice(("tcp", "udp")), fam, "ESTAB", rng.choice(addrs), rng.choice((0, 1, 80, 65535, rng.randrange(65536))),
                                rng.choice(addrs), rng.choice((0, 443, 65535, rng.randrange(65536))), 0, i, i))
    return out


def test_int_keys_order_rows_as_the_tuples_did() -> None:
    old = {
        "local": lambda r: (_addr_tuple(r.local_addr), r.local_port),
        "peer": lambda r: (_addr_tuple(r.peer_addr), r.peer_port),
        "port": lambda r: (r.local_port, _addr_tuple(r.local_addr), r.proto),
        "group": lambda r: (r.proto, _addr_tuple(r.local_addr), r.local_port),
    }
    new = {"local": C.local_key, "peer": C.peer_key, "port": C.port_key, "group": C.group_sort_key}
    for seed in range(5):
        rows = _records(2000, seed)
        for name in old:
            assert [old[name](r) for r in sorted(rows, key=old[name])] == \
                [old[name](r) for r in sorted(rows, key=new[name])], name
            assert all(isinstance(new[name](r), int) for r in rows)
