"""Decoder edge cases from hand-built netlink bytes (no kernel needed)."""

from __future__ import annotations

import errno
import socket
import struct

import pytest

from sockscope.collectors.inet_diag import INET_DIAG_MSG, Decoder, format_ipv6
from sockscope.collectors.netlink import (
    NLM_F_DUMP_INTR,
    NLM_F_MULTI,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSGHDR,
    SOCK_DIAG_BY_FAMILY,
    DumpInterrupted,
    DumpState,
    NetlinkError,
    dump,
)


def diag_msg(family=socket.AF_INET, state=10, src="127.0.0.1", dst="0.0.0.0", sport=8080, dport=0,
             ifindex=0, cookie=0x1_0000_0002, timer=0, expires=0, rq=0, wq=128, uid=1001, inode=4242) -> bytes:
    size = 4 if family == socket.AF_INET else 16
    s = socket.inet_pton(family, src).ljust(16, b"\0")[:16] if size == 16 else socket.inet_pton(family, src) + bytes(12)
    d = socket.inet_pton(family, dst).ljust(16, b"\0")[:16] if size == 16 else socket.inet_pton(family, dst) + bytes(12)
    return INET_DIAG_MSG.pack(family, state, timer, 0, socket.htons(sport), socket.htons(dport), s, d, ifindex,
                              cookie & 0xFFFFFFFF, cookie >> 32, expires, rq, wq, uid, inode)


def attr(atype: int, payload: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(payload), atype) + payload
    return raw + bytes((-len(raw)) % 4)


def nlmsg(mtype: int, payload: bytes, flags: int = NLM_F_MULTI, seq: int = 1) -> bytes:
    raw = NLMSGHDR.pack(NLMSGHDR.size + len(payload), mtype, flags, seq, 0) + payload
    return raw + bytes((-len(raw)) % 4)


def done() -> bytes:
    return nlmsg(NLMSG_DONE, struct.pack("=i", 0))


def decode(*buffers: bytes, proto: str = "tcp"):
    out = []
    consume = Decoder().consumer(proto, out)
    st = DumpState()
    for b in buffers:
        consume(b, st)
    return out, st


def test_decodes_ipv4_listener_fields():
    out, st = decode(nlmsg(SOCK_DIAG_BY_FAMILY, diag_msg()) + done())
    assert st.done and len(out) == 1
    r = out[0]
    assert (r.proto, r.family, r.state, r.local_addr, r.local_port, r.peer_addr, r.peer_port) == (
        "tcp", 4, "LISTEN", "127.0.0.1", 8080, "0.0.0.0", 0)
    assert (r.uid, r.inode, r.cookie, r.recv_q, r.send_q, r.timer) == (1001, 4242, 0x1_0000_0002, 0, 128, None)


def test_ipv6_attributes_unknown_ones_skipped_v6only_read():
    body = diag_msg(family=socket.AF_INET6, src="::", dst="::") + attr(99, b"xyzzy") + attr(8, b"\0") + attr(11, b"\1")
    out, _ = decode(nlmsg(SOCK_DIAG_BY_FAMILY, body) + done())
    assert out[0].v6only is True and out[0].local_addr == "::"
    assert out[0].option_source == {"v6only": "diag"}


def test_v4_mapped_and_ipv4_compatible_addresses_print_as_the_contract_says():
    assert format_ipv6(socket.inet_pton(socket.AF_INET6, "::ffff:127.0.0.1")) == "::ffff:127.0.0.1"
    assert format_ipv6(socket.inet_pton(socket.AF_INET6, "::1.2.3.4")) == "::102:304"
    assert format_ipv6(socket.inet_pton(socket.AF_INET6, "fd00:0:0:1::1")) == "fd00:0:0:1::1"


def test_time_wait_timer_and_udp_connected_state():
    out, _ = decode(nlmsg(SOCK_DIAG_BY_FAMILY, diag_msg(state=6, timer=3, expires=41_000, inode=0)) + done())
    assert out[0].state == "TIME-WAIT" and out[0].timer.kind == "timewait" and out[0].timer.expires_ms == 41_000
    out, _ = decode(nlmsg(SOCK_DIAG_BY_FAMILY, diag_msg(state=1)) + done(), proto="udp")
    assert out[0].state == "ESTAB" and out[0].proto == "udp"
    out, _ = decode(nlmsg(SOCK_DIAG_BY_FAMILY, diag_msg(state=7)) + done(), proto="udp")
    assert out[0].state == "UNCONN"


def test_multipart_over_several_buffers_keeps_dump_order():
    first = b"".join(nlmsg(SOCK_DIAG_BY_FAMILY, diag_msg(sport=p)) for p in (1, 2, 3))
    second = b"".join(nlmsg(SOCK_DIAG_BY_FAMILY, diag_msg(sport=p)) for p in (4, 5)) + done()
    out, st = decode(first, second)
    assert [r.local_port for r in out] == [1, 2, 3, 4, 5]
    assert [r.order for r in out] == [0, 1, 2, 3, 4]
    assert st.done


def test_truncated_header_message_and_attribute_raise_clear_errors():
    good = nlmsg(SOCK_DIAG_BY_FAMILY, diag_msg())
    with pytest.raises(ValueError, match="truncated netlink header"):
        decode(good[:10])
    with pytest.raises(ValueError, match="bad netlink message length"):
        decode(good[:-8])
    short = NLMSGHDR.pack(NLMSGHDR.size + 20, SOCK_DIAG_BY_FAMILY, NLM_F_MULTI, 1, 0) + bytes(20)
    with pytest.raises(ValueError, match="truncated inet_diag_msg"):
        decode(short)
    bad_attr = diag_msg(family=socket.AF_INET6, src="::1", dst="::") + struct.pack("=HH", 40, 11) + b"\1\0\0\0"
    with pytest.raises(ValueError, match="bad attribute length"):
        decode(nlmsg(SOCK_DIAG_BY_FAMILY, bad_attr))


def test_nlmsg_error_raises_with_errno():
    err = nlmsg(NLMSG_ERROR, struct.pack("=i", -errno.EPERM) + bytes(16))
    with pytest.raises(NetlinkError) as info:
        decode(err)
    assert info.value.errno == errno.EPERM


def test_unknown_family_is_skipped_not_misread():
    body = diag_msg()
    weird = bytes([99]) + body[1:]
    out, _ = decode(nlmsg(SOCK_DIAG_BY_FAMILY, weird) + nlmsg(SOCK_DIAG_BY_FAMILY, body) + done())
    assert len(out) == 1 and out[0].family == 4


class FakeSock:
    """Replays receive buffers: the dump loop's behaviour on DUMP_INTR, without a kernel."""

    def __init__(self, buffers):
        self.buffers = list(buffers)

    def send(self, data):
        return len(data)

    def recv(self, size):
        return self.buffers.pop(0)


def test_dump_intr_is_raised_after_reading_the_whole_dump():
    bufs = [nlmsg(SOCK_DIAG_BY_FAMILY, diag_msg(), flags=NLM_F_MULTI | NLM_F_DUMP_INTR), done()]
    sock = FakeSock(bufs)
    out = []
    with pytest.raises(DumpInterrupted):
        dump(sock, b"req", Decoder().consumer("tcp", out))
    assert sock.buffers == []  # drained: the socket is clean for the retry


def test_run_dump_retries_an_interrupted_dump_from_scratch():
    from sockscope.collectors.netlink import run_dump

    sock = FakeSock([
        nlmsg(SOCK_DIAG_BY_FAMILY, diag_msg(sport=1), flags=NLM_F_MULTI | NLM_F_DUMP_INTR), done(),
        nlmsg(SOCK_DIAG_BY_FAMILY, diag_msg(sport=2)), done(),
    ])
    out = []
    decoder = Decoder()

    def begin():
        del out[:]
        return decoder.consumer("tcp", out)

    run_dump(lambda: sock, lambda: sock, b"req", begin)
    assert [r.local_port for r in out] == [2]


# --- reuse across refreshes (what makes a warm refresh cheap) ---------------------------

def _refresh(dec: Decoder, *buffers: bytes, proto: str = "tcp", complete: bool = True):
    out: list = []
    consume = dec.consumer(proto, out)
    st = DumpState()
    for b in buffers:
        consume(b, st)
    dec.finish(complete=complete)
    return out


def _socks(n: int, first_cookie: int = 100, **kw) -> bytes:
    return b"".join(nlmsg(SOCK_DIAG_BY_FAMILY, diag_msg(sport=1000 + i, cookie=first_cookie + i, inode=5000 + i, **kw))
                    for i in range(n))


def test_an_identical_buffer_gives_back_the_same_records_and_the_same_index():
    dec = Decoder()
    buf, last = _socks(5), done()
    first = _refresh(dec, buf, last)
    index = dec._messages["tcp"]
    size = len(index)
    again = _refresh(dec, buf, last)
    assert [id(r) for r in again] == [id(r) for r in first]
    assert dec._messages["tcp"] is index and len(index) == size  # nothing changed, nothing rebuilt
    assert [r.order for r in again] == list(range(5))


def test_a_changed_socket_is_decoded_anew_and_the_rest_reused():
    dec = Decoder()
    a, b = _socks(3), _socks(3, first_cookie=200)
    first = _refresh(dec, a, b, done())
    changed = b[: -len(nlmsg(SOCK_DIAG_BY_FAMILY, diag_msg()))] + nlmsg(
        SOCK_DIAG_BY_FAMILY, diag_msg(sport=1002, cookie=202, inode=5002, rq=7))
    second = _refresh(dec, a, changed, done())
    assert [r is s for r, s in zip(first, second)] == [True] * 5 + [False]
    assert second[5].recv_q == 7 and second[5].cookie == 202
    third = _refresh(dec, a, changed, done())
    assert all(r is s for r, s in zip(second, third))  # the new record is reusable in turn


def test_a_buffer_at_another_position_is_renumbered_in_dump_order():
    dec = Decoder()
    a, b = _socks(2), _socks(3, first_cookie=300)
    _refresh(dec, a, b, done())
    out = _refresh(dec, b, done())  # the first buffer's sockets closed
    assert [r.order for r in out] == [0, 1, 2] and [r.cookie for r in out] == [300, 301, 302]
    assert dec._live["tcp"] == 3


def test_buffers_with_done_errors_or_dump_intr_are_never_reused_whole():
    dec = Decoder()
    tail = _socks(2) + done()
    _refresh(dec, tail)
    assert not any(v[0] == tail for v in dec._previous_buffers.values())  # it ends the dump: parsed for DONE
    intr = nlmsg(SOCK_DIAG_BY_FAMILY, diag_msg(cookie=9), flags=NLM_F_MULTI | NLM_F_DUMP_INTR)
    out: list = []
    consume = dec.consumer("tcp", out)
    st = DumpState()
    consume(intr, st)
    consume(done(), st)
    dec.finish()
    assert st.interrupted and not any(v[0] == intr for v in dec._previous_buffers.values())
    st2 = DumpState()
    out2: list = []
    dec.consumer("tcp", out2)(intr, st2)
    assert st2.interrupted  # parsed again, so the interruption is seen again


def test_a_retried_dump_forgets_the_failed_attempts_records():
    dec = Decoder()
    out: list = []
    st = DumpState()
    dec.consumer("tcp", out)(_socks(3), st)  # an attempt the kernel interrupted
    del out[0:]  # run_dump's begin(): the retry starts from scratch
    consume = dec.consumer("tcp", out)
    consume(_socks(2, first_cookie=400), st)
    consume(done(), st)
    dec.finish()
    assert dec._live["tcp"] == 2  # the failed attempt's three are not counted as delivered


def test_messages_of_changed_sockets_are_dropped_once_they_exceed_the_bound(monkeypatch):
    from sockscope.collectors import inet_diag

    monkeypatch.setattr(inet_diag, "ADDR_CACHE_SLACK", 8)
    dec = Decoder()
    steady = _socks(4)
    for i in range(50):
        # one socket whose queue changes every refresh: a new message each time
        out = _refresh(dec, steady, nlmsg(SOCK_DIAG_BY_FAMILY, diag_msg(cookie=7, rq=i)), done())
        assert len(dec._messages["tcp"]) <= 2 * 5 + 8
        assert sorted(r.cookie for r in out) == [7, 100, 101, 102, 103]
    kept = dec._messages["tcp"]
    assert all(kept.get(k) is r for k, r in zip(
        [m[16:] for m in (nlmsg(SOCK_DIAG_BY_FAMILY, diag_msg(sport=1000 + i, cookie=100 + i, inode=5000 + i)) for i in range(4))],
        out[:4]))


def test_the_same_bytes_from_another_protocol_are_not_taken_for_its_records():
    dec = Decoder()
    buf = _socks(2)
    _refresh(dec, buf, done(), proto="udp")
    out = _refresh(dec, buf, done(), proto="tcp")
    assert {r.proto for r in out} == {"tcp"}


def test_partial_refreshes_that_keep_changing_cannot_grow_the_kept_buffers_without_bound():
    from sockscope.collectors.inet_diag import BUFFER_SLACK

    dec = Decoder()
    _refresh(dec, _socks(3), done())
    for i in range(3 * BUFFER_SLACK):
        # a listener whose queue changes every time, alone in its buffer
        _refresh(dec, nlmsg(SOCK_DIAG_BY_FAMILY, diag_msg(cookie=7, rq=i)), done(), complete=False)
        assert len(dec._previous_buffers) <= 2 * dec._complete_buffers + BUFFER_SLACK


def test_a_rebuild_after_a_partial_refresh_keeps_working_with_buffers_kept_from_before(monkeypatch):
    """A partial refresh can rebuild the message index without the other states'
    messages while their whole buffers stay kept; the next complete refresh gives those
    records back from the buffers and may rebuild again: no record may be lost or crash it."""
    from sockscope.collectors import inet_diag

    monkeypatch.setattr(inet_diag, "ADDR_CACHE_SLACK", 0)
    dec = Decoder()
    estab = _socks(6, state=1)
    first = _refresh(dec, estab, done())
    for i in range(3):  # listening-only refreshes of a listener whose queue changes
        _refresh(dec, nlmsg(SOCK_DIAG_BY_FAMILY, diag_msg(cookie=900, rq=i)), done(), complete=False)
    again = _refresh(dec, estab, nlmsg(SOCK_DIAG_BY_FAMILY, diag_msg(cookie=900, rq=5)), done())
    assert [r.cookie for r in again] == [r.cookie for r in first] + [900]
    assert all(a is b for a, b in zip(again, first))  # the kept buffer's records, unchanged
    out = _refresh(dec, estab, done())
    assert [r.cookie for r in out] == [r.cookie for r in first]


def test_a_socket_in_both_dumps_of_a_family_is_kept_once_as_time_wait():
    from sockscope.collectors.sockdiag import _drop_overtaken
    from sockscope.model import SocketRecord

    def rec(state, cookie):
        return SocketRecord("tcp", 4, state, "127.0.0.1", 1000 + cookie, "127.0.0.1", 80, 0, 0, cookie)

    udp_before = rec("UNCONN", 1)
    out = [udp_before, rec("ESTAB", 2), rec("FIN-WAIT-2", 3), rec("LISTEN", 4), rec("TIME-WAIT", 3), rec("TIME-WAIT", 5)]
    _drop_overtaken(out, 1, 4)
    assert [(r.cookie, r.state) for r in out] == [(1, "UNCONN"), (2, "ESTAB"), (4, "LISTEN"), (3, "TIME-WAIT"), (5, "TIME-WAIT")]
    same = [rec("ESTAB", 2), rec("TIME-WAIT", 9)]
    _drop_overtaken(same, 0, 1)
    assert len(same) == 2


def test_a_kept_buffer_is_renumbered_after_a_partial_refresh_moved_one_of_its_records():
    """A listening-only refresh delivers a record of a kept buffer through another buffer,
    renumbering it; the next complete refresh gives the kept buffer back and must number
    every record by its place again (UDP chain order is read from it)."""
    dec = Decoder()
    msgs = [nlmsg(SOCK_DIAG_BY_FAMILY, diag_msg(sport=1000 + i, cookie=100 + i, inode=5000 + i)) for i in range(3)]
    whole = b"".join(msgs)
    _refresh(dec, whole, done())
    _refresh(dec, msgs[1], done(), complete=False)  # the middle one alone, at position 0
    out = _refresh(dec, whole, done())
    assert [r.order for r in out] == [0, 1, 2]


def test_a_one_port_dump_decodes_that_port_alone_and_keeps_no_buffer():
    dec = Decoder()
    buf = _socks(5) + _socks(2, first_cookie=900)  # ports 1000-1004, then 1000-1001 again
    out: list = []
    ports: set[int] = set()
    consume = dec.consumer("tcp", out, 1001, ports)
    st = DumpState()
    consume(buf, st)
    consume(done(), st)
    dec.finish(complete=False)
    assert st.done and [(r.local_port, r.cookie) for r in out] == [(1001, 101), (1001, 901)]
    assert [r.order for r in out] == [0, 1] and ports == {1000, 1001, 1002, 1003, 1004}
    # The same bytes in a whole refresh: every socket, none missing for a kept buffer.
    whole = _refresh(dec, buf, done())
    assert [r.cookie for r in whole] == [100, 101, 102, 103, 104, 900, 901]
    assert [r.order for r in whole] == list(range(7))


def test_a_decoder_for_one_refresh_keeps_nothing_and_decodes_the_same():
    v6 = nlmsg(SOCK_DIAG_BY_FAMILY, diag_msg(family=socket.AF_INET6, src="::", dst="::", cookie=77, inode=7)
               + attr(11, b"\1"))
    bufs = (_socks(5) + v6, _socks(3, first_cookie=200), done())
    kept = _refresh(Decoder(), *bufs)
    once = Decoder(keep=False)
    got = _refresh(once, *bufs)
    assert [r.to_json() for r in got] == [r.to_json() for r in kept]
    assert [r.order for r in got] == list(range(9))
    assert once.reusable == 0 and not once._previous_buffers
    # Asked again (no one-shot command does), it decodes everything anew, still right.
    again = _refresh(once, *bufs)
    assert [r.to_json() for r in again] == [r.to_json() for r in kept]
    assert not {id(r) for r in again} & {id(r) for r in got}
