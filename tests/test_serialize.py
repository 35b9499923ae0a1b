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
