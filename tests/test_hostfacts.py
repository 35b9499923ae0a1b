"""Host facts read by our small rtnetlink dump agree with pyroute2, an independent decoder."""

from __future__ import annotations

import pytest

from sockscope.collectors import netns as netns_mod
from sockscope.collectors.hostfacts import read_host_facts

pytestmark = pytest.mark.root


def test_interfaces_addresses_and_local_routes_match_pyroute2(netns) -> None:
    from pyroute2 import NetNS

    netns.add_dummy("hf0", "10.7.0.1/24", "fd00:7::1/64")
    netns.sysctl("net.ipv4.ip_unprivileged_port_start", "700")
    with netns_mod.entered(netns.name):
        facts = read_host_facts()
    ns = NetNS(netns.name)
    try:
        links = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ns.get_links()}
        addrs: dict[str, set[str]] = {}
        for a in ns.get_addr():
            name = links[a["index"]]
            addrs.setdefault(name, set()).add(a.get_attr("IFA_LOCAL") or a.get_attr("IFA_ADDRESS"))
        local = {
            f"{r.get_attr('RTA_DST') or '0.0.0.0'}/{r['dst_len']}"
            for r in ns.get_routes(family=2, table=255)
            if r["type"] in (2, 3)
        }
    finally:
        ns.close()
    assert facts.interfaces == links
    assert {k: set(v) for k, v in facts.addresses.items() if v} == addrs
    assert set(facts.local_v4) == local
    assert "10.7.0.1/32" in facts.local_v4 and "127.0.0.0/8" in facts.local_v4
    assert ("fd00:7::1", "hf0", False, False) in facts.v6_addrs
    assert facts.ip_unprivileged_port_start == 700 and facts.complete
