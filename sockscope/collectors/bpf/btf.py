"""A small reader of the kernel's BTF (/sys/kernel/btf/vmlinux): type ids, struct member
offsets (bitfields included), function ids and enum values, looked up by name.

Everything sockscope's BPF programs need from the running kernel comes from here, so no
offset or id is hard-coded: BTF ids differ per kernel build and struct layouts per
version and config (include/uapi/linux/btf.h describes the format).

Parsing is one pass over the type records, read as 32-bit words, that keeps only where
each record starts (about 25 ms for 126,000 types; every cold root command pays it); a
name is found by searching the string section, then the type section for its offset. Parsed blobs are cached by a hash of their bytes, so several Collectors (one per
namespace) parse the kernel's BTF once.
"""

from __future__ import annotations

import hashlib
import os
import struct
import sys
from array import array
from dataclasses import dataclass

VMLINUX = "/sys/kernel/btf/vmlinux"
BTF_MAGIC = 0xEB9F

# BTF kinds (include/uapi/linux/btf.h)
INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT = range(1, 12)
FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(12, 20)
_MODIFIERS = frozenset({TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG})

# Bytes that follow the 12-byte common header: (fixed, per vlen entry)
_EXTRA: dict[int, tuple[int, int]] = {
    INT: (4, 0), PTR: (0, 0), ARRAY: (12, 0), STRUCT: (0, 12), UNION: (0, 12), ENUM: (0, 8),
    FWD: (0, 0), TYPEDEF: (0, 0), VOLATILE: (0, 0), CONST: (0, 0), RESTRICT: (0, 0),
    FUNC: (0, 0), FUNC_PROTO: (0, 8), VAR: (4, 0), DATASEC: (0, 12), FLOAT: (0, 0),
    DECL_TAG: (4, 0), TYPE_TAG: (0, 0), ENUM64: (0, 12),
}
_EXTRA_WORDS = {kind: (fixed // 4, per // 4) for kind, (fixed, per) in _EXTRA.items()}


class BtfError(Exception):
    """The BTF blob is malformed, or a name the caller needs is not in it (one sentence)."""


@dataclass(frozen=True, slots=True)
class Member:
    """A struct/union member: `offset` in bits from the start of the outermost struct the
    lookup began at; `bits` is the bitfield width (0 = not a bitfield)."""

    name: str
    type_id: int
    offset: int
    bits: int

    @property
    def byte(self) -> int:
        return self.offset // 8


class Btf:
    """One parsed BTF blob. Type ids start at 1 (0 is void)."""

    def __init__(self, blob: bytes) -> None:
        if len(blob) < 24:
            raise BtfError("BTF blob too short")
        magic, version, _flags, hdr_len = struct.unpack_from("<HBBI", blob, 0)
        if magic != BTF_MAGIC:
            raise BtfError("not a BTF blob (bad magic or big-endian)")
        if version != 1:
            raise BtfError(f"unsupported BTF version {version}")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", blob, 8)
        base = hdr_len
        if base + type_off + type_len > len(blob) or base + str_off + str_len > len(blob):
            raise BtfError("BTF sections run past the end of the blob")
        types = memoryview(blob)[base + type_off : base + type_off + type_len]
        self._strs = bytes(blob[base + str_off : base + str_off + str_len])
        if type_len % 4:
            raise BtfError("BTF type section is not a whole number of 32-bit words")
        self._words = array("I")
        self._words.frombytes(types)
        if sys.byteorder == "little":
            # The words' own bytes are the type section: the 5 MB blob is not kept twice.
            self._types = memoryview(self._words).cast("B")
        else:  # the blob is little-endian (the magic said so): swap the words, keep the bytes
            self._words.byteswap()
            self._types = types
        self._starts = self._index()  # type id -> word index of its record
        self._by_name: dict[bytes, list[int]] = {}
        self._names: bytes | None = None  # type id -> name offset, as little-endian words

    def _name_column(self) -> bytes:
        if self._names is None:
            column = array("I", map(self._words.__getitem__, self._starts))
            column[0] = 0  # void has no name (its "start" is the first record's)
            if sys.byteorder != "little":
                column.byteswap()
            self._names = column.tobytes()
        return self._names

    def _index(self) -> array:
        """One pass over the records: the word where each starts. Every BTF record and
        every per-kind extra is a whole number of 32-bit words, so the walk indexes an
        array of words instead of unpacking tuples (it runs on every cold start)."""
        words = self._words
        end = len(words)
        starts = array("I", [0])  # id 0 = void
        extra = _EXTRA_WORDS
        i = 0
        add_start = starts.append
        try:
            while i < end:
                info = words[i + 1]
                fixed, per = extra[(info >> 24) & 0x1F]
                add_start(i)
                i += 3 + fixed + per * (info & 0xFFFF)
        except KeyError:
            raise BtfError(f"unknown BTF kind at offset {4 * i}") from None
        except IndexError:
            raise BtfError("truncated BTF type record") from None
        if i != end:
            raise BtfError("BTF type section does not end on a record boundary")
        return starts

    # ---- raw access
    def __len__(self) -> int:
        return len(self._starts) - 1

    def string(self, off: int) -> str:
        end = self._strs.find(b"\0", off)
        if end < 0:
            raise BtfError(f"string offset {off} is not terminated")
        return self._strs[off:end].decode()

    def _header(self, type_id: int) -> tuple[int, int, int, int, int]:
        """(kind, vlen, kind_flag, size_or_type, record position)"""
        if not 0 < type_id < len(self._starts):
            raise BtfError(f"type id {type_id} out of range")
        word = self._starts[type_id]
        words = self._words
        info = words[word + 1]
        return (info >> 24) & 0x1F, info & 0xFFFF, info >> 31, words[word + 2], 4 * word

    def kind(self, type_id: int) -> int:
        return self._header(type_id)[0]

    def name(self, type_id: int) -> str:
        return self.string(self._words[self._starts[type_id]]) if type_id else ""

    # ---- lookups by name
    def ids_named(self, name: str) -> list[int]:
        """Every type id whose name is `name` (any kind)."""
        key = name.encode()
        found = self._by_name.get(key)
        if found is not None:
            return found
        found = []
        # BTF strings are deduplicated: a name is at most once a whole string (a leading
        # NUL excludes tails of longer strings; offset 0 is the empty string).
        strs = self._strs
        needle = b"\0" + key + b"\0"
        offsets = []
        at = strs.find(needle) if key else -1
        while at >= 0:  # once in the kernel's BTF; a non-deduplicated blob may repeat it
            offsets.append(at + 1)
            at = strs.find(needle, at + 1)
        # The records naming it: the offset's four bytes at a word boundary of the column
        # of record names (made once, on the first lookup).
        names = self._name_column()
        for off in offsets:
            pattern = struct.pack("<I", off)
            at = names.find(pattern)
            while at >= 0:
                if not at % 4:
                    found.append(at // 4)
                at = names.find(pattern, at + 1)
        found.sort()
        if len(self._by_name) < 4096:  # bounded: lookups come from a fixed set of names
            self._by_name[key] = found
        return found

    def find(self, name: str, kind: int) -> int:
        """The id of the type called `name` of `kind`; BtfError if there is none."""
        for type_id in self.ids_named(name):
            if self.kind(type_id) == kind:
                return type_id
        raise BtfError(f"this kernel's BTF has no {_KIND_NAMES.get(kind, kind)} {name!r}")

    def find_struct(self, name: str) -> int:
        for type_id in self.ids_named(name):
            k, vlen, _kf, size, _ = self._header(type_id)
            if k == STRUCT and (vlen or size):  # skip empty forward-ish duplicates
                return type_id
        raise BtfError(f"this kernel's BTF has no struct {name!r}")

    def resolve(self, type_id: int) -> int:
        """Skip typedefs and qualifiers."""
        seen = 0
        while type_id:
            k, _v, _kf, ref, _ = self._header(type_id)
            if k not in _MODIFIERS:
                return type_id
            type_id = ref
            seen += 1
            if seen > 64:
                raise BtfError("BTF type chain loops")
        return type_id

    def size(self, type_id: int) -> int:
        type_id = self.resolve(type_id)
        k, _v, _kf, size, pos = self._header(type_id)
        if k in (INT, STRUCT, UNION, ENUM, ENUM64, FLOAT):
            return size
        if k == PTR:
            return 8
        if k == ARRAY:
            elem, _index, nelems = struct.unpack_from("<III", self._types, pos + 12)
            return self.size(elem) * nelems
        raise BtfError(f"type {type_id} has no size")

    def members(self, type_id: int) -> list[Member]:
        """Direct members of a struct or union (offsets relative to it)."""
        type_id = self.resolve(type_id)
        k, vlen, kflag, _size, pos = self._header(type_id)
        if k not in (STRUCT, UNION):
            raise BtfError(f"type {self.name(type_id) or type_id} is not a struct or union")
        out = []
        for i in range(vlen):
            name_off, mtype, off = struct.unpack_from("<III", self._types, pos + 12 + 12 * i)
            bits = off >> 24 if kflag else 0
            bit_off = off & 0xFFFFFF if kflag else off
            if not kflag:
                # Without kind_flag a bitfield is an INT with its own bit size.
                rt = self.resolve(mtype)
                rk, _v, _kf, _s, rpos = self._header(rt) if rt else (0, 0, 0, 0, 0)
                if rk == INT:
                    enc = struct.unpack_from("<I", self._types, rpos + 12)[0]
                    nbits = enc & 0xFF
                    if nbits and nbits != 8 * self.size(rt):
                        bits = nbits
            out.append(Member(self.string(name_off), mtype, bit_off, bits))
        return out

    def member(self, type_id: int, path: str) -> Member:
        """Member `path` ("a.b.c") of a struct, descending into anonymous structs and
        unions on the way; the offset is relative to `type_id`."""
        offset = 0
        current = type_id
        found: Member | None = None
        for part in path.split("."):
            found = self._find_member(current, part)
            if found is None:
                raise BtfError(f"struct {self.name(self.resolve(current))!r} has no member {part!r} on this kernel")
            offset += found.offset
            current = found.type_id
        assert found is not None
        return Member(path, found.type_id, offset, found.bits)

    def _find_member(self, type_id: int, name: str, depth: int = 0) -> Member | None:
        if depth > 16:
            return None
        for m in self.members(type_id):
            if m.name == name:
                return m
            if not m.name:
                rt = self.resolve(m.type_id)
                if self.kind(rt) in (STRUCT, UNION):
                    inner = self._find_member(rt, name, depth + 1)
                    if inner is not None:
                        return Member(inner.name, inner.type_id, m.offset + inner.offset, inner.bits)
        return None

    def offset_of(self, struct_name: str, path: str) -> int:
        """Byte offset of `path` in `struct struct_name` (not for bitfields)."""
        m = self.member(self.find_struct(struct_name), path)
        if m.bits or m.offset % 8:
            raise BtfError(f"{struct_name}.{path} is a bitfield")
        return m.offset // 8

    def enum_values(self, enum_name: str) -> dict[str, int]:
        for type_id in self.ids_named(enum_name):
            k, vlen, kflag, _size, pos = self._header(type_id)
            if k == ENUM:
                fmt = "<Ii" if not kflag else "<II"
                return {
                    self.string(n): v
                    for n, v in (struct.unpack_from(fmt, self._types, pos + 12 + 8 * i) for i in range(vlen))
                }
            if k == ENUM64:
                out = {}
                for i in range(vlen):
                    n, lo, hi = struct.unpack_from("<III", self._types, pos + 12 + 12 * i)
                    out[self.string(n)] = lo | (hi << 32)
                return out
        raise BtfError(f"this kernel's BTF has no enum {enum_name!r}")

    def enum_value(self, enum_name: str, name: str) -> int:
        values = self.enum_values(enum_name)
        if name not in values:
            raise BtfError(f"this kernel's enum {enum_name} has no {name}")
        return values[name]


_KIND_NAMES = {STRUCT: "struct", UNION: "union", ENUM: "enum", FUNC: "function", TYPEDEF: "typedef", INT: "int"}

_CACHE: dict[bytes, Btf] = {}
_CACHE_MAX = 2  # the running kernel's blob, and one more (tests)


# path -> (the file's identity when parsed, the parse). The socket and task-file iterators
# both load the kernel's BTF in one command: the second load is a stat, not a second 5 MB
# read and hash (with the first one's hash, ~16 ms). The running kernel's file never
# changes; a changed identity (a test's rewritten file) is read again.
_BY_PATH: dict[str, tuple[tuple[int, int, int, int], Btf]] = {}


def load(path: str = VMLINUX) -> Btf:
    """Parse the BTF at `path`, reusing an earlier parse of the same file. Raises OSError
    when it cannot be read and BtfError when it is malformed."""
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        ident = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        known = _BY_PATH.get(path)
        if known is not None and known[0] == ident:
            return known[1]
        blob = f.read()
    btf = Btf(blob)  # not from_bytes: hashing the blob for its cache costs ~8 ms more
    if len(_BY_PATH) >= _CACHE_MAX:
        _BY_PATH.pop(next(iter(_BY_PATH)))
    _BY_PATH[path] = (ident, btf)
    return btf


def from_bytes(blob: bytes) -> Btf:
    key = hashlib.blake2b(blob, digest_size=16).digest()
    btf = _CACHE.get(key)
    if btf is None:
        btf = Btf(blob)
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = btf
    return btf
