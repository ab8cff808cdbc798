"""The canonical binary encoding of spec/encoding.md: a reader that checks in the specified order, and writers
that refuse values breaking a field rule with the same errors decoding would give."""

import re
import struct

from .errors import fail


def prefix_width(hi: int) -> int:
    """encoding.md §Length prefixes: the width follows from the declared maximum only."""
    if hi <= 255:
        return 1
    if hi <= 65535:
        return 2
    return 4


def check_text(data: bytes, where=None) -> None:
    """encoding.md §Text: well-formed UTF-8 (RFC 3629) and no control character except TAB and LF."""
    try:
        text = bytes(data).decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        fail("invalid_text", where)
    for ch in text:
        cp = ord(ch)
        if (cp <= 0x1F and cp not in (0x09, 0x0A)) or 0x7F <= cp <= 0x9F:
            fail("invalid_text", where)


_HANDLE = re.compile(rb"[a-z0-9](?:[._-]?[a-z0-9])*")


def handle_is_valid(data: bytes) -> bool:
    return 1 <= len(data) <= 64 and _HANDLE.fullmatch(bytes(data)) is not None


def check_handle(data: bytes, where=None) -> None:
    """Handle checks for a value built in memory: length first (as decoding would), then the grammar."""
    if not 1 <= len(data) <= 64:
        fail("length_out_of_bounds", where)
    if _HANDLE.fullmatch(bytes(data)) is None:
        fail("invalid_handle", where)


def handle_from_text(text) -> bytes:
    """Read a handle given as a string (vectors, command lines)."""
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    check_handle(data, "handle")
    return data


class Reader:
    """Reads one input front to back; the first broken rule raises its error (encoding.md §Order of checks)."""

    def __init__(self, data: bytes, base: int = 0):
        self.data = bytes(data)
        self.pos = 0
        self.base = base  # offset of data[0] in the outermost input, for error reports

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def where(self, name):
        return f"{name} at offset {self.base + self.pos}" if name else f"offset {self.base + self.pos}"

    def _take(self, n: int, name=None) -> bytes:
        if self.remaining() < n:
            fail("truncated", self.where(name))
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def uint(self, width: int, name=None) -> int:
        return int.from_bytes(self._take(width, name), "big")

    def u8(self, name=None):
        return self.uint(1, name)

    def u16(self, name=None):
        return self.uint(2, name)

    def u32(self, name=None):
        return self.uint(4, name)

    def u64(self, name=None):
        return self.uint(8, name)

    def time(self, name=None) -> int:
        """A timestamp (encoding.md §Times): a uint64 of at most LATEST_TIME, else invalid_value."""
        where = self.where(name)
        value = self.uint(8, name)
        if value > LATEST_TIME:
            fail("invalid_value", where)
        return value

    def fixed(self, n: int, name=None) -> bytes:
        return self._take(n, name)

    def _length(self, lo: int, hi: int, name=None) -> int:
        width = prefix_width(hi)
        where = self.where(name)
        n = self.uint(width, name)
        if n < lo or n > hi:
            fail("length_out_of_bounds", where)
        return n

    def opaque(self, lo: int, hi: int, name=None) -> bytes:
        n = self._length(lo, hi, name)
        return self._take(n, name)

    def text(self, lo: int, hi: int, name=None) -> str:
        where = self.where(name)
        raw = self.opaque(lo, hi, name)
        check_text(raw, where)
        return raw.decode("utf-8")

    def handle(self, name="handle") -> bytes:
        where = self.where(name)
        raw = self.opaque(1, 64, name)
        if _HANDLE.fullmatch(raw) is None:
            fail("invalid_handle", where)
        return raw

    def enum(self, values, name=None) -> int:
        where = self.where(name)
        v = self.u8(name)
        if v not in values:
            fail("unknown_enum", where)
        return v

    def version(self, supported=(1,), name="version") -> int:
        where = self.where(name)
        v = self.u8(name)
        if v not in supported:
            fail("unsupported_version", where)
        return v

    def optional(self, read, name=None):
        present = self.enum((0, 1), name)
        return read(self) if present == 1 else None

    def list(self, read, lo: int, hi: int, name=None):
        n = self._length(lo, hi, name)
        return [read(self) for _ in range(n)]

    def nested(self, read, lo: int, hi: int, name=None):
        n = self._length(lo, hi, name)
        inner_base = self.base + self.pos
        raw = self._take(n, name)
        inner = Reader(raw, inner_base)
        value = read(inner)
        inner.done(name)
        return value

    def done(self, name=None) -> None:
        if self.remaining() != 0:
            fail("trailing_bytes", self.where(name))


def decode_top(data: bytes, read):
    """Decode one top-level value: `read`, then no byte may remain (encoding.md §Top-level values)."""
    r = Reader(data)
    value = read(r)
    r.done()
    return value


# --- writers -------------------------------------------------------------------------------------------------

def u8(v: int) -> bytes:
    return struct.pack(">B", v)


def u16(v: int) -> bytes:
    return struct.pack(">H", v)


def u32(v: int) -> bytes:
    return struct.pack(">I", v)


#: 9999-12-31T23:59:59.999Z in milliseconds: the latest time any timestamp field may carry (encoding.md §Times).
LATEST_TIME = 253402300799999


def u64(v: int) -> bytes:
    return struct.pack(">Q", v)


def uint(v: int, width: int) -> bytes:
    return v.to_bytes(width, "big")


def fixed(data: bytes, n: int, where=None, error="invalid_value") -> bytes:
    """A fixed-size field; a value of the wrong size cannot be built (`error` says with which code)."""
    if len(data) != n:
        fail(error, where)
    return bytes(data)


def opaque(data: bytes, lo: int, hi: int, where=None) -> bytes:
    if not lo <= len(data) <= hi:
        fail("length_out_of_bounds", where)
    return uint(len(data), prefix_width(hi)) + bytes(data)


def text(value, lo: int, hi: int, where=None) -> bytes:
    raw = value.encode("utf-8", errors="surrogatepass") if isinstance(value, str) else bytes(value)
    if not lo <= len(raw) <= hi:
        fail("length_out_of_bounds", where)
    check_text(raw, where)
    return uint(len(raw), prefix_width(hi)) + raw


def handle(value: bytes) -> bytes:
    check_handle(value, "handle")
    return opaque(value, 1, 64)


def optional(value, write) -> bytes:
    return b"\x00" if value is None else b"\x01" + write(value)


def list_(items, write, lo: int, hi: int, where=None) -> bytes:
    if not lo <= len(items) <= hi:
        fail("length_out_of_bounds", where)
    return uint(len(items), prefix_width(hi)) + b"".join(write(x) for x in items)


def nested(encoded: bytes, lo: int, hi: int, where=None) -> bytes:
    return opaque(encoded, lo, hi, where)
