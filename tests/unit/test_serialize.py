"""The fast JSON writer produces exactly what json.dumps of the contract dicts would."""

import json

from sockscope.model import Owner, SocketRecord, Timer
from sockscope.serialize import records_to_json


def test_same_text_as_json_dumps_including_escapes():
    recs = [
        SocketRecord("tcp", 4, "LISTEN", "127.0.0.1", 80, "0.0.0.0", 0, 0, 1, 2, reuseaddr=True, reuseport=False,
                     owners=[Owner(7, 3, 'we"ird\\name\n', "root"), Owner(5, 9, "nginx: worker", None)]),
        SocketRecord("udp", 6, "UNCONN", "::ffff:10.0.0.1", 53, "::", 0, 1001, 3, 4, ifindex=2, device="eth\u00e9",
                     v6only=None, reuseaddr=None, reuseport=None),
        SocketRecord("tcp", 6, "TIME-WAIT", "fd00::1", 443, "fd00::2", 5555, 0, 0, 9, v6only=True,
                     timer=Timer("timewait", 41000)),
        SocketRecord("tcp", 4, "ESTAB", "10.0.0.1", 1, "10.0.0.2", 2, 0, 0, 9, v6only=True),
        SocketRecord("tcp", 6, "LISTEN", "::", 1, "::", 0, 0, 0, 9, v6only=True, reuseaddr=True, reuseport=False,
                     option_source={"reuseaddr": "kernel", "reuseport": "kernel", "v6only": "diag"}),
    ]
    want = json.dumps([r.to_json() for r in recs], separators=(",", ":"))
    assert records_to_json(recs) == want
    assert records_to_json([]) == "[]"


def test_netns_field_only_when_set_and_same_as_json_dumps():
    from sockscope.model import NetnsRef

    a = SocketRecord("tcp", 4, "LISTEN", "0.0.0.0", 80, "0.0.0.0", 0, 0, 1, 2)
    b = SocketRecord("tcp", 4, "LISTEN", "0.0.0.0", 80, "0.0.0.0", 0, 0, 3, 4,
                     netns=NetnsRef(4026532288, 'we"b\x1b', "container"))
    c = SocketRecord("udp", 6, "UNCONN", "::", 53, "::", 0, 0, 5, 6, netns=NetnsRef(4026531840, "host", "host"))
    want = json.dumps([r.to_json() for r in (a, b, c)], separators=(",", ":"))
    assert records_to_json([a, b, c]) == want
    assert '"netns"' not in records_to_json([a])
    assert json.loads(records_to_json([b]))[0]["netns"] == {"inode": 4026532288, "name": 'we"b\x1b', "kind": "container"}


def test_pieces_join_to_the_same_text_at_every_chunk_boundary(monkeypatch):
    import sockscope.serialize as S

    monkeypatch.setattr(S, "CHUNK", 3)
    for n in range(10):
        recs = [SocketRecord("tcp", 4, "ESTAB", "10.0.0.1", 1000 + i, "10.0.0.2", 80, 0, i, i,
                             owners=[Owner(10 + i, 3, "p", "root")]) for i in range(n)]
        pieces = list(S.json_chunks(recs))
        assert "".join(pieces) == json.dumps([r.to_json() for r in recs], separators=(",", ":")), n
        assert len(pieces) == max(1, -(-n // 3)) + (1 if n and n % 3 == 0 else 0)  # "]" alone after a full piece


def test_shared_option_sources_print_as_their_own_dicts_would():
    from sockscope.model import with_sources

    diag = with_sources(None, None, "diag")
    recs = [
        SocketRecord("tcp", 6, "LISTEN", "::", 1, "::", 0, 0, 1, 2, option_source=with_sources(diag, "kernel")),
        SocketRecord("tcp", 6, "LISTEN", "::", 2, "::", 0, 0, 3, 4, option_source=with_sources(None, "kernel", "kernel")),
        SocketRecord("tcp", 4, "LISTEN", "0.0.0.0", 3, "0.0.0.0", 0, 0, 5, 6, option_source=with_sources(None, "read")),
        SocketRecord("tcp", 4, "LISTEN", "0.0.0.0", 4, "0.0.0.0", 0, 0, 7, 8, option_source={"reuseaddr": "read"}),
    ]
    assert records_to_json(recs) == json.dumps([r.to_json() for r in recs], separators=(",", ":"))
    assert list(recs[0].option_source or {}) == ["v6only", "reuseaddr", "reuseport"]


def test_records_made_on_the_fly_with_their_own_mappings_print_their_own_sources():
    kinds = ({"reuseaddr": "read", "reuseport": "read"}, {"v6only": "diag"}, {"reuseaddr": "kernel"})

    def made():
        for i in range(200):  # each record and its mapping dropped once printed: ids reused
            yield SocketRecord("tcp", 6, "LISTEN", "::", i, "::", 0, 0, i, i, option_source=dict(kinds[i % 3]))

    rows = json.loads(records_to_json(made()))
    assert [r["option_source"] for r in rows] == [kinds[i % 3] for i in range(200)]
