"""The test kit itself: a holder really binds in its namespace and reports kernel errors."""

import pytest

pytestmark = pytest.mark.root


def test_holder_bind_conflict_and_uid(netns, holders):
    a = holders(uid=0)
    b = holders(uid=1001)
    s1 = a.socket("tcp", 4)
    assert a.bind(s1, "127.0.0.1", 8080) is None
    assert a.listen(s1) is None
    s2 = b.socket("tcp", 4)
    assert b.bind(s2, "0.0.0.0", 8080) == "EADDRINUSE"
    assert b.bind(s2, "0.0.0.0", 80) == "EACCES"
    out = netns.ss("-tlnH")
    assert "127.0.0.1:8080" in out
