"""Socket filters: plain-text search and ss-like expressions, compiled once to closures.

`compile_filter(text)` returns a predicate over `SocketRecord`; any text it cannot
understand raises `FilterError` (and nothing else), whose message names the column
and the token at fault, e.g. "expected a port after 'sport =' at column 8 (end of filter)".

Two modes, chosen from the tokens:

* Plain text, when the first token is not an expression keyword (or is quoted) and
  no operator appears: every word must occur, case-insensitively, in one of the
  record's addresses, ports, "addr:port" / "[addr]:port" forms, owners' process
  names, user names and pids, state (also its long ss name, e.g. "established"),
  protocol or device. `nginx 8080` = both words somewhere.
* An expression otherwise. Grammar (keywords case-insensitive):

      expr    := and_ (("or" | "||") and_)*
      and_    := unary (("and" | "&&")? unary)*        juxtaposition is "and", as in ss
      unary   := ("not" | "!")* primary
      primary := "(" expr ")" | term
      term    := ("sport" | "dport") [CMP] PORT       PORT = [":"]number | [":"]service
               | ("src" | "dst") [EQ] HOSTCOND
               | "state" [EQ] STATE | "exclude" STATE
               | ("uid" | "pid") [CMP] number          pid: any owner; "pid != N": no owner is N
               | "proto" [EQ] ("tcp" | "udp") | "tcp" | "udp"
               | ("process" | "user") [EQ] NAME       case-insensitive substring of any owner's
               | "dev" [EQ] NAME                      exact bound-device name
               | "netns" [EQ] NAME                    network namespace: its name, or its inode
               | WORD | "quoted text"                 a plain-text search term
      CMP     := EQ | ">" | "<" | ">=" | "<=" | "gt" | "lt" | "ge" | "le"    (default "=")
      EQ      := "=" | "==" | "eq" | "!=" | "ne"                              ("!=" negates)
      HOSTCOND:= ADDR[/LEN][:PORT] | [V6ADDR][/LEN][:PORT] | V6ADDR[/LEN] | [*]:PORT | *

  Precedence: not > and > or. `src`/`dst` match by prefix (ipaddress); an
  IPv4-mapped ::ffff:a.b.c.d address matches IPv4 networks, and a ::ffff:0:0/96
  network matches plain IPv4 addresses. STATE is an ss state name, with or
  without dashes/underscores, in any case (LISTEN, time-wait, TIME_WAIT,
  closed/unconn, ...), or a group: all, listening (LISTEN+UNCONN, as ss -l), connected
  (not LISTEN/UNCONN), synchronized, bucket, big. The words and groups are
  sockscope.states', shared with `list -s`.

Speed matters: the TUI filters up to 100,000 records per refresh, so each term is a
closure built at compile time (ports and networks pre-parsed to ints), and record
addresses are parsed once per distinct string through an LRU cache.
"""

from __future__ import annotations

import functools
import ipaddress
import operator
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass

from sockscope import states
from sockscope.formatting import endpoint
from sockscope.model import SocketRecord

Predicate = Callable[[SocketRecord], bool]

__all__ = ["FilterError", "Predicate", "compile_filter"]


class FilterError(ValueError):
    """A filter text that cannot be compiled. `column` is 1-based (len(text)+1 = end of text)."""

    def __init__(self, message: str, column: int | None = None, token: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.column = column
        self.token = token


# ---------------------------------------------------------------- tokens

# Characters that end a bare word. "&" and "|" alone are tokens too, so that "a & b"
# gets a pointed error ("use '&&'") instead of silently searching for "&".
_OP_CHARS = frozenset("=<>!()&|")
_OPS2 = frozenset({"==", "!=", ">=", "<=", "&&", "||"})
_QUOTES = frozenset("\"'")


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # "word" (bare), "str" (quoted), "op", "end"
    text: str
    col: int  # 1-based column of the first character


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c in _QUOTES:
            end = text.find(c, i + 1)
            if end < 0:
                raise FilterError(f"unterminated quote {c} opened at column {i + 1}", i + 1, c)
            toks.append(_Tok("str", text[i + 1 : end], i + 1))
            i = end + 1
        elif text[i : i + 2] in _OPS2:
            toks.append(_Tok("op", text[i : i + 2], i + 1))
            i += 2
        elif c in _OP_CHARS:
            toks.append(_Tok("op", c, i + 1))
            i += 1
        else:
            j = i + 1
            while j < n and not text[j].isspace() and text[j] not in _OP_CHARS and text[j] not in _QUOTES:
                j += 1
            toks.append(_Tok("word", text[i:j], i + 1))
            i = j
    toks.append(_Tok("end", "", n + 1))
    return toks


# ---------------------------------------------------------------- record views (cached)


@functools.lru_cache(maxsize=65536)
def _addr_ints(addr: str) -> tuple[int | None, int | None]:
    """(IPv4 value, IPv6 value) of a record address; the IPv4 value is also set for ::ffff:a.b.c.d.

    Cached because the same few addresses (0.0.0.0, ::, local ones) recur across
    thousands of records and ipaddress parsing costs microseconds.
    """
    # inet_pton first: several times faster than ipaddress, which matters when a dump holds
    # tens of thousands of distinct addresses and the cache starts cold.
    try:
        if ":" in addr:
            v6 = int.from_bytes(socket.inet_pton(socket.AF_INET6, addr), "big")
            return (v6 & 0xFFFFFFFF if v6 >> 32 == 0xFFFF else None, v6)
        return (int.from_bytes(socket.inet_pton(socket.AF_INET, addr), "big"), None)
    except (OSError, ValueError):
        pass  # e.g. a scoped "fe80::1%eth0", which ipaddress understands
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return (None, None)  # "*" or anything else a collector may write: matches no network
    if ip.version == 4:
        return (int(ip), None)
    assert isinstance(ip, ipaddress.IPv6Address)
    mapped = ip.ipv4_mapped
    return (int(mapped) if mapped is not None else None, int(ip))


# ss's long state names, so that plain text "established" or "listening" finds records.
_LONG_STATE = {
    "ESTAB": "established",
    "LISTEN": "listening",
    "UNCONN": "unconnected closed",
}


def _haystack(r: SocketRecord) -> str:
    """Everything plain text searches, lowercased, NUL-separated so no word spans two fields."""
    la, lp, pa, pp = r.local_addr, r.local_port, r.peer_addr, r.peer_port
    parts = [la, pa, str(lp), str(pp), f"{la}:{lp}", f"{pa}:{pp}", r.state, r.proto]
    if ":" in la or ":" in pa:  # IPv6 as users type it with a port
        parts += [f"[{la}]:{lp}", f"[{pa}]:{pp}"]
    long = _LONG_STATE.get(r.state)
    if long:
        parts.append(long)
    if r.device:
        parts.append(r.device)
        parts.append(endpoint(la, lp, r.family, r.device))  # "[::1]%lo:53", as list shows it
    if r.netns is not None:
        parts.append(r.netns.name)
    for o in r.owners:
        parts.append(o.process)
        parts.append(str(o.pid))
        if o.user:
            parts.append(o.user)
    return "\x00".join(parts).lower()


# ---------------------------------------------------------------- predicate builders


def _accept_all(r: SocketRecord) -> bool:
    return True


def _all_of(parts: list[Predicate]) -> Predicate:
    # Flat lists, not nested binary closures: long "a b c d ..." chains stay one call deep.
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        return lambda r: a(r) and b(r)
    fs = tuple(parts)

    def all_of(r: SocketRecord) -> bool:
        for f in fs:
            if not f(r):
                return False
        return True

    return all_of


def _any_of(parts: list[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        return lambda r: a(r) or b(r)
    fs = tuple(parts)

    def any_of(r: SocketRecord) -> bool:
        for f in fs:
            if f(r):
                return True
        return False

    return any_of


def _negate(p: Predicate) -> Predicate:
    return lambda r: not p(r)


def _text_term(words: list[str]) -> Predicate:
    needles = tuple(w.lower() for w in words)
    if not needles:
        return _accept_all
    if any("\x00" in w for w in needles):
        # NUL is the haystack's field separator and occurs in no field: such a needle
        # could only match by bridging two fields, so it matches nothing.
        return lambda r: False

    def text(r: SocketRecord) -> bool:
        h = _haystack(r)
        for w in needles:
            if w not in h:
                return False
        return True

    return text


_CMP_FUNCS: dict[str, Callable[[int, int], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "lt": operator.lt,
    "ge": operator.ge,
    "le": operator.le,
}


def _int_attr_term(attr: str, op: str, value: int) -> Predicate:
    """`r.<attr> <op> value`; equality (the common case) gets a closure with no extra call."""
    get = operator.attrgetter(attr)  # C-level getter: cheaper than a Python attribute lambda
    if op == "eq":
        return lambda r: get(r) == value
    if op == "ne":
        return lambda r: get(r) != value
    cmp = _CMP_FUNCS[op]
    return lambda r: cmp(get(r), value)


def _pid_term(op: str, value: int) -> Predicate:
    if op in ("eq", "ne"):
        def has_pid(r: SocketRecord) -> bool:
            for o in r.owners:
                if o.pid == value:
                    return True
            return False

        # "pid != N" reads as "not owned by N", so ownerless sockets pass it.
        return has_pid if op == "eq" else _negate(has_pid)
    cmp = _CMP_FUNCS[op]

    def any_pid(r: SocketRecord) -> bool:
        for o in r.owners:
            if cmp(o.pid, value):
                return True
        return False

    return any_pid


def _owner_text_term(field: str, needle: str) -> Predicate:
    needle = needle.lower()
    get = operator.attrgetter(field)

    def owner_text(r: SocketRecord) -> bool:
        for o in r.owners:
            v = get(o)
            if v and needle in v.lower():
                return True
        return False

    return owner_text


# Address matching. A matcher takes the record's address string.
AddrMatch = Callable[[str], bool]
_V4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def _net_matcher(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> AddrMatch:
    if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96 and net.subnet_of(_V4_MAPPED):
        # ::ffff:10.0.0.0/104 means 10.0.0.0/8: test the IPv4 view, which covers both
        # plain IPv4 records and v4-mapped IPv6 ones.
        mapped = net.network_address.ipv4_mapped
        assert mapped is not None
        net = ipaddress.IPv4Network((int(mapped), net.prefixlen - 96))
    mask, base = int(net.netmask), int(net.network_address)
    slot = 0 if net.version == 4 else 1  # index into _addr_ints' (v4, v6)
    addr_ints = _addr_ints

    def in_net(addr: str) -> bool:
        v = addr_ints(addr)[slot]
        return v is not None and v & mask == base

    return in_net


def _addr_term(addr_attr: str, port_attr: str, match: AddrMatch | None, port: int | None) -> Predicate:
    get_addr = operator.attrgetter(addr_attr)
    get_port = operator.attrgetter(port_attr)
    if match is None and port is None:
        return _accept_all  # "src *"
    if match is None:
        return lambda r: get_port(r) == port
    if port is None:
        return lambda r: match(get_addr(r))
    return lambda r: get_port(r) == port and match(get_addr(r))


# ---------------------------------------------------------------- argument parsing

_NUMBER = re.compile(r"[0-9]{1,12}")  # ASCII only (int() would take other scripts' digits); bounded
_SERVICE = re.compile(r"[A-Za-z][A-Za-z0-9._+-]{0,63}")


def _parse_port(text: str) -> int | str:
    """A port number or service name, with an optional leading ":"; returns the port or an error."""
    s = text[1:] if text.startswith(":") else text
    if _NUMBER.fullmatch(s):
        port = int(s)
        return port if port <= 65535 else f"port {port} is out of range 0-65535"
    if _SERVICE.fullmatch(s):
        try:
            return socket.getservbyname(s)  # /etc/services, as ss resolves ":ssh"
        except (OSError, ValueError, UnicodeError):
            return f"unknown service name {s!r}"
    return "expected a port"


def _parse_hostcond(text: str) -> tuple[AddrMatch | None, int | None] | str:
    """ss HOSTCOND: "10.0.0.0/8", "127.0.0.1:8080", "[::1]:8080", "::1", ":8080", "*", "*:53".

    Returns (address matcher or None for any, port or None for any), or an error message.
    """
    port_text: str | None = None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return "missing ']' in address"
        host, rest = text[1:end], text[end + 1 :]
        if rest.startswith("/"):  # "[fd00::]/8" as well as "[fd00::/8]"
            prefix, sep, after = rest.partition(":")
            host += prefix
            rest = ":" + after if sep else ""
        if rest:
            if not rest.startswith(":"):
                return f"unexpected {rest!r} after ']'"
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")  # IPv4 (or empty / "*") with a port
    else:
        host = text  # IPv4 without port, or a bare IPv6 address (which cannot carry one)
    match: AddrMatch | None = None
    if host not in ("", "*"):
        try:
            net = ipaddress.ip_network(host, strict=False)
        except ValueError:
            return f"{host!r} is not an IP address or network (host names are not resolved)"
        match = _net_matcher(net)
    port: int | None = None
    if port_text is not None and port_text != "*":
        got = _parse_port(port_text)
        if isinstance(got, str):
            return got if got != "expected a port" else f"{port_text!r} is not a port number or service name"
        port = got
    if match is None and port_text is None and host == "":
        return "expected an address"
    return (match, port)


def _state_term(states: frozenset[str], negate: bool) -> Predicate:
    """`states` is one of sockscope.states' sets (the same vocabulary as `list -s`)."""
    get = operator.attrgetter("state")
    if negate:
        return lambda r: get(r) not in states
    if len(states) == 1:
        (only,) = states
        return lambda r: get(r) == only
    return lambda r: get(r) in states


# ---------------------------------------------------------------- parser

_CMP_OPS = {
    "=": "eq", "==": "eq", "eq": "eq",
    "!=": "ne", "ne": "ne",
    ">": "gt", "gt": "gt",
    "<": "lt", "lt": "lt",
    ">=": "ge", "ge": "ge",
    "<=": "le", "le": "le",
}  # fmt: skip
_TERM_KEYWORDS = frozenset(
    {"sport", "dport", "src", "dst", "state", "exclude", "uid", "pid", "proto", "tcp", "udp", "process", "user", "dev",
     "netns"}
)
_START_KEYWORDS = _TERM_KEYWORDS | {"not"}
_MAX_DEPTH = 100  # parenthesis nesting; keeps recursion far below Python's limit


class _Parser:
    def __init__(self, toks: list[_Tok]) -> None:
        self.toks = toks
        self.i = 0
        self.depth = 0

    # -- token helpers

    def peek(self, ahead: int = 0) -> _Tok:
        return self.toks[min(self.i + ahead, len(self.toks) - 1)]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    def fail(self, message: str, tok: _Tok) -> FilterError:
        if tok.kind == "end":
            text = f"{message} at column {tok.col} (end of filter)"
        else:
            shown = tok.text if tok.kind != "str" else f'"{tok.text}"'
            text = f"{message}, got {shown!r} at column {tok.col}"
            if tok.kind == "op" and tok.text in ("&", "|"):
                text += f" (use '{tok.text * 2}')"
        return FilterError(text, tok.col, tok.text)

    def unexpected(self, tok: _Tok, why: str = "") -> FilterError:
        hint = f" (use '{tok.text * 2}')" if tok.kind == "op" and tok.text in ("&", "|") else ""
        # The '&&' hint is the likelier fix, so it replaces the generic reason.
        return FilterError(f"unexpected {tok.text!r} at column {tok.col}{hint or why}", tok.col, tok.text)

    @staticmethod
    def is_word(tok: _Tok, *words: str) -> bool:
        return tok.kind == "word" and tok.text.lower() in words

    def is_or(self, tok: _Tok) -> bool:
        return (tok.kind == "op" and tok.text == "||") or self.is_word(tok, "or")

    def is_and(self, tok: _Tok) -> bool:
        return (tok.kind == "op" and tok.text == "&&") or self.is_word(tok, "and")

    def is_not(self, tok: _Tok) -> bool:
        return (tok.kind == "op" and tok.text == "!") or self.is_word(tok, "not")

    def starts_unary(self, tok: _Tok) -> bool:
        if tok.kind == "str":
            return True
        if tok.kind == "op":
            return tok.text in ("(", "!")
        return tok.kind == "word" and tok.text.lower() not in ("and", "or")

    # -- grammar

    def parse(self) -> Predicate:
        pred = self.or_expr()
        tok = self.peek()
        if tok.kind != "end":
            if tok.kind == "op" and tok.text == ")":
                raise FilterError(f"unexpected ')' at column {tok.col}: no '(' to close", tok.col, ")")
            raise self.unexpected(tok)
        return pred

    def or_expr(self) -> Predicate:
        parts = [self.and_expr()]
        while self.is_or(self.peek()):
            self.take()
            parts.append(self.and_expr())
        return _any_of(parts)

    def and_expr(self) -> Predicate:
        parts = [self.unary()]
        while True:
            tok = self.peek()
            if self.is_and(tok):
                self.take()
            elif not self.starts_unary(tok):  # juxtaposition: "tcp sport = :80" is an "and"
                break
            parts.append(self.unary())
        return _all_of(parts)

    def unary(self) -> Predicate:
        # Iterative, so "! ! ! ... x" of any length costs no recursion.
        negations = 0
        while self.is_not(self.peek()):
            self.take()
            negations += 1
        pred = self.primary()
        return _negate(pred) if negations % 2 else pred

    def primary(self) -> Predicate:
        tok = self.peek()
        if tok.kind == "op" and tok.text == "(":
            self.take()
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise FilterError(f"parentheses nested deeper than {_MAX_DEPTH} at column {tok.col}", tok.col, "(")
            pred = self.or_expr()
            close = self.peek()
            if close.kind == "end":
                raise FilterError(
                    f"missing ')' to close the '(' at column {tok.col} (end of filter at column {close.col})",
                    close.col,
                    "",
                )
            if not (close.kind == "op" and close.text == ")"):
                raise self.unexpected(close, f" (expected ')' to close the '(' at column {tok.col})")
            self.take()
            self.depth -= 1
            return pred
        if tok.kind == "str":
            self.take()
            return _text_term([tok.text])
        if tok.kind == "word":
            kw = tok.text.lower()
            if kw in _TERM_KEYWORDS:
                self.take()
                return getattr(self, "term_" + kw)(tok)
            if kw not in ("and", "or"):
                self.take()
                nxt = self.peek()
                if nxt.kind == "op" and nxt.text in _CMP_OPS:
                    # "sprot = 80": a typo'd keyword, not a search for "sprot"
                    raise FilterError(
                        f"unknown filter keyword {tok.text!r} at column {tok.col} (before {nxt.text!r})",
                        tok.col,
                        tok.text,
                    )
                return _text_term([tok.text])
        raise self.fail("expected a filter term", tok)

    # -- term helpers

    def take_op(self, allowed: frozenset[str], word_op_needs_arg: bool) -> _Tok | None:
        """An optional comparison operator. Word operators (eq, ne...) are also plain words:
        after a name-taking keyword, "user ne" means the user "ne", hence `word_op_needs_arg`."""
        tok = self.peek()
        if tok.kind == "op" and tok.text in _CMP_OPS:
            op = _CMP_OPS[tok.text]
        elif tok.kind == "word" and tok.text.lower() in _CMP_OPS:
            if word_op_needs_arg and self.peek(1).kind not in ("word", "str"):
                return None
            op = _CMP_OPS[tok.text.lower()]
        else:
            return None
        if op not in allowed:
            raise FilterError(f"operator {tok.text!r} cannot be used here, at column {tok.col}", tok.col, tok.text)
        return self.take()

    def argument(self, what: str, kw: _Tok, op: _Tok | None) -> _Tok:
        tok = self.peek()
        if tok.kind == "str" or (tok.kind == "word" and tok.text.lower() not in ("and", "or", "not")):
            return self.take()
        context = f"{kw.text} {op.text}" if op is not None else kw.text
        raise self.fail(f"expected {what} after {context!r}", tok)

    def bad_argument(self, message: str, arg: _Tok, detail: str | None = None) -> FilterError:
        text = f"{message} at column {arg.col}" + (f": {detail}" if detail else "")
        return FilterError(text, arg.col, arg.text)

    def eq_op(self, kw: _Tok, names: bool) -> tuple[_Tok | None, bool]:
        """Optional '=' / '!=' for keywords without ordering; returns (token, negate)."""
        op = self.take_op(frozenset({"eq", "ne"}), word_op_needs_arg=names)
        return op, op is not None and _CMP_OPS[op.text.lower()] == "ne"

    def numeric(self, kw: _Tok, what: str) -> tuple[str, _Tok, int]:
        op_tok = self.take_op(frozenset(_CMP_FUNCS), word_op_needs_arg=False)
        op = _CMP_OPS[op_tok.text.lower()] if op_tok else "eq"
        arg = self.argument(what, kw, op_tok)
        if what == "a port":
            got = _parse_port(arg.text)
            if isinstance(got, str):
                context = f"{kw.text} {op_tok.text}" if op_tok else kw.text
                if got == "expected a port":
                    raise self.fail(f"expected a port after {context!r}", arg)
                raise self.bad_argument(f"bad port {arg.text!r} after {context!r}", arg, got)
            return op, arg, got
        if not _NUMBER.fullmatch(arg.text):
            context = f"{kw.text} {op_tok.text}" if op_tok else kw.text
            raise self.fail(f"expected {what} after {context!r}", arg)
        return op, arg, int(arg.text)

    # -- terms (dispatched by keyword)

    def term_sport(self, kw: _Tok) -> Predicate:
        op, _, port = self.numeric(kw, "a port")
        return _int_attr_term("local_port", op, port)

    def term_dport(self, kw: _Tok) -> Predicate:
        op, _, port = self.numeric(kw, "a port")
        return _int_attr_term("peer_port", op, port)

    def term_uid(self, kw: _Tok) -> Predicate:
        op, _, uid = self.numeric(kw, "a uid number")
        return _int_attr_term("uid", op, uid)

    def term_pid(self, kw: _Tok) -> Predicate:
        op, _, pid = self.numeric(kw, "a pid number")
        return _pid_term(op, pid)

    def _host(self, kw: _Tok, addr_attr: str, port_attr: str) -> Predicate:
        op, negate = self.eq_op(kw, names=True)
        arg = self.argument("an address", kw, op)
        got = _parse_hostcond(arg.text)
        if isinstance(got, str):
            raise self.bad_argument(f"bad address {arg.text!r} after {kw.text!r}", arg, got)
        pred = _addr_term(addr_attr, port_attr, *got)
        return _negate(pred) if negate else pred

    def term_src(self, kw: _Tok) -> Predicate:
        return self._host(kw, "local_addr", "local_port")

    def term_dst(self, kw: _Tok) -> Predicate:
        return self._host(kw, "peer_addr", "peer_port")

    def _state(self, kw: _Tok, negate: bool) -> Predicate:
        op, neg_op = self.eq_op(kw, names=True)
        arg = self.argument("a state name", kw, op)
        try:
            found = states.lookup(arg.text)
        except states.StateError:
            raise self.bad_argument(f"unknown state {arg.text!r}", arg, f"expected one of {states.STATE_WORDS_HELP}") from None
        return _state_term(found.states, found.negate ^ negate ^ neg_op)

    def term_state(self, kw: _Tok) -> Predicate:
        return self._state(kw, negate=False)

    def term_exclude(self, kw: _Tok) -> Predicate:
        return self._state(kw, negate=True)

    def term_tcp(self, kw: _Tok) -> Predicate:
        return _proto_term("tcp")

    def term_udp(self, kw: _Tok) -> Predicate:
        return _proto_term("udp")

    def term_proto(self, kw: _Tok) -> Predicate:
        op, negate = self.eq_op(kw, names=True)
        arg = self.argument("'tcp' or 'udp'", kw, op)
        proto = arg.text.lower()
        if proto not in ("tcp", "udp"):
            raise self.bad_argument(f"unknown protocol {arg.text!r} (expected 'tcp' or 'udp')", arg)
        pred = _proto_term(proto)
        return _negate(pred) if negate else pred

    def _owner(self, kw: _Tok, field: str, what: str) -> Predicate:
        op, negate = self.eq_op(kw, names=True)
        arg = self.argument(what, kw, op)
        pred = _owner_text_term(field, arg.text)
        return _negate(pred) if negate else pred

    def term_process(self, kw: _Tok) -> Predicate:
        return self._owner(kw, "process", "a process name")

    def term_user(self, kw: _Tok) -> Predicate:
        return self._owner(kw, "user", "a user name")

    def term_dev(self, kw: _Tok) -> Predicate:
        op, negate = self.eq_op(kw, names=True)
        name = self.argument("a device name", kw, op).text
        get = operator.attrgetter("device")
        if negate:
            return lambda r: get(r) != name
        return lambda r: get(r) == name


    def term_netns(self, kw: _Tok) -> Predicate:
        op, negate = self.eq_op(kw, names=True)
        name = self.argument("a network namespace name", kw, op).text
        inode = int(name) if name.isascii() and name.isdigit() else None

        def in_netns(r: SocketRecord) -> bool:
            ns = r.netns
            return ns is not None and (ns.name == name or ns.inode == inode)

        return _negate(in_netns) if negate else in_netns


def _proto_term(proto: str) -> Predicate:
    get = operator.attrgetter("proto")
    return lambda r: get(r) == proto


# ---------------------------------------------------------------- entry point


def compile_filter(text: str) -> Predicate:
    """Compile `text` (plain words or an ss-like expression, see module doc) into a predicate.

    Raises FilterError, and only FilterError, for text that is not a valid filter.
    """
    if not isinstance(text, str):
        raise TypeError(f"filter text must be str, not {type(text).__name__}")
    toks = _tokenize(text)
    if len(toks) == 1:
        return _accept_all
    first = toks[0]
    has_ops = any(t.kind == "op" for t in toks)
    if not has_ops and (first.kind == "str" or first.text.lower() not in _START_KEYWORDS):
        # Plain text: "nginx 8080". One haystack per record, however many words.
        return _text_term([t.text for t in toks[:-1]])
    try:
        return _Parser(toks).parse()
    except FilterError:
        raise
    except RecursionError as exc:  # belt and braces: depth is bounded above
        raise FilterError("filter is nested too deeply") from exc
