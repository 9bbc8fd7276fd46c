"""BER-TLV as EMV uses it (EMV Book 3 Annex B; ISO/IEC 8825-1 subset).

Tags are handled as unsigned integers of their encoded bytes (``0x9F26``), one to
three bytes long (Book 3 B1: the first byte's bits b5-b1 all set mean "more tag bytes
follow"; b8 of a following byte set means "another follows"). Lengths are one byte
below 0x80 or ``0x81``-``0x83`` followed by one to three length bytes (B2); the
indefinite form is not used by EMV and is refused. Bytes ``00`` and ``FF`` may stand
before, between and after data objects (Book 3 B1, "padding") and are skipped.

Every decoding failure is a :class:`~emvwire.errors.DecodeError` that carries the tag
being decoded, the offset of the failure and the objects decoded before it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

from emvwire.errors import DecodeError

__all__ = [
    "MAX_LENGTH",
    "Tlv",
    "decode",
    "decode_flat",
    "decode_leading",
    "decode_one",
    "encode",
    "encode_length",
    "find",
    "find_all",
    "flatten",
    "is_constructed",
    "read_length",
    "read_tag",
    "tag_bytes",
    "tag_hex",
]

#: Largest length accepted: three length bytes (Book 3 B2 allows up to 0x83).
MAX_LENGTH = 0xFFFFFF
#: Deepest nesting of constructed objects accepted before refusing the input.
MAX_DEPTH = 16
_PADDING = (0x00, 0xFF)


def is_constructed(tag: int) -> bool:
    """Whether ``tag`` is constructed: bit b6 of its first byte (Book 3 B1)."""
    first = tag
    while first > 0xFF:
        first >>= 8
    return bool(first & 0x20)


def tag_bytes(tag: int) -> bytes:
    """The encoded bytes of ``tag`` (one to three bytes)."""
    if tag < 0 or tag > 0xFFFFFF:
        raise ValueError(f"tag {tag:#x} is not a one- to three-byte tag")
    return tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")


def tag_hex(tag: int) -> str:
    """The tag as EMV writes it, e.g. ``9F26``."""
    return tag_bytes(tag).hex().upper()


def read_tag(data: bytes, offset: int = 0) -> tuple[int, int]:
    """Read one tag at ``offset``; return ``(tag, offset after the tag)`` (Book 3 B1)."""
    end = len(data)
    if offset >= end:
        raise DecodeError("tag expected, data ended", offset=offset)
    first = data[offset]
    tag = first
    pos = offset + 1
    if first & 0x1F == 0x1F:
        while True:
            if pos >= end:
                raise DecodeError("tag ended early", tag=tag, offset=pos)
            if pos - offset >= 3:
                raise DecodeError("tag longer than three bytes", tag=tag, offset=offset)
            b = data[pos]
            tag = (tag << 8) | b
            pos += 1
            if not b & 0x80:
                break
    return tag, pos


def read_length(data: bytes, offset: int = 0) -> tuple[int, int]:
    """Read a BER length at ``offset``; return ``(length, offset after it)`` (Book 3 B2)."""
    end = len(data)
    if offset >= end:
        raise DecodeError("length expected, data ended", offset=offset)
    first = data[offset]
    if first < 0x80:
        return first, offset + 1
    count = first & 0x7F
    if count == 0:
        raise DecodeError("indefinite length is not allowed in EMV", offset=offset)
    if count > 3:
        raise DecodeError(f"length of {count} bytes is too long", offset=offset)
    if offset + 1 + count > end:
        raise DecodeError("length ended early", offset=offset)
    length = int.from_bytes(data[offset + 1 : offset + 1 + count], "big")
    return length, offset + 1 + count


def encode_length(length: int) -> bytes:
    """Encode ``length`` in the shortest BER form (Book 3 B2)."""
    if length < 0 or length > MAX_LENGTH:
        raise ValueError(f"length {length} cannot be encoded")
    if length < 0x80:
        return bytes((length,))
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


class Tlv(NamedTuple):
    """One data object: its tag, its value bytes and, if constructed, its children.

    ``value`` is always the raw value field; for a constructed object ``children``
    holds the objects decoded from it. The repr shows tag and length only, so that a
    PAN or a key in a value never reaches a log through it.
    """

    tag: int
    value: bytes
    children: tuple[Tlv, ...] = ()

    @property
    def constructed(self) -> bool:
        """Whether the tag is constructed (Book 3 B1, bit b6 of the first byte)."""
        return is_constructed(self.tag)

    def encode(self) -> bytes:
        """The encoded object: tag, length, value."""
        return tag_bytes(self.tag) + encode_length(len(self.value)) + self.value

    def __repr__(self) -> str:
        kids = f", {len(self.children)} children" if self.children else ""
        return f"Tlv({tag_hex(self.tag)}, {len(self.value)} bytes{kids})"

    def __str__(self) -> str:
        return self.__repr__()


def _header_error(data: bytes, at: int, end: int, out: list[Tlv]) -> DecodeError:
    """The precise error for a malformed tag or length at ``at`` (the slow path)."""
    try:
        tag, pos = read_tag(data[:end], at)
        if pos >= end:
            return DecodeError(
                "length expected, data ended", tag=tag, offset=pos, decoded=list(out)
            )
        read_length(data[:end], pos)
    except DecodeError as exc:
        return DecodeError(exc.message, tag=exc.tag, offset=exc.offset, decoded=list(out))
    return DecodeError("malformed tag or length", offset=at, decoded=list(out))  # pragma: no cover


def _decode(
    data: bytes,
    start: int,
    end: int,
    depth: int,
    out: list[Tlv],
    flat: dict[int, bytes] | None = None,
) -> None:
    """Decode ``data[start:end]`` into ``out``, or with ``flat`` into a tag -> value map.

    The loop reads tags (B1) and lengths (B2) inline, as this is the hot path of every
    card answer; anything irregular goes to :func:`_header_error` for the exact message.
    With ``flat`` given, primitive objects go to it (first occurrence wins) and
    templates are only descended into, so no :class:`Tlv` is built.
    """
    pos = start
    append = out.append
    while pos < end:
        tag = data[pos]
        if tag == 0x00 or tag == 0xFF:  # padding between objects (B1)
            pos += 1
            continue
        tag_at = pos
        pos += 1
        if tag & 0x1F == 0x1F:  # subsequent tag bytes follow
            if pos >= end:
                raise _header_error(data, tag_at, end, out)
            b = data[pos]
            tag = (tag << 8) | b
            pos += 1
            if b & 0x80:
                if pos >= end or data[pos] & 0x80:
                    raise _header_error(data, tag_at, end, out)
                tag = (tag << 8) | data[pos]
                pos += 1
        if pos >= end:
            raise _header_error(data, tag_at, end, out)
        length = data[pos]
        pos += 1
        if length & 0x80:
            count = length & 0x7F
            if count == 0 or count > 3 or pos + count > end:
                raise _header_error(data, tag_at, end, out)
            length = int.from_bytes(data[pos : pos + count], "big")
            pos += count
        stop = pos + length
        if stop > end:
            raise DecodeError(
                f"value of {length} bytes runs past the end ({end - pos} left)",
                tag=tag,
                offset=tag_at,
                decoded=list(out),
            )
        value = data[pos:stop]
        first = tag
        while first > 0xFF:
            first >>= 8
        if first & 0x20 and length:  # constructed (B1, b6 of the first byte)
            if depth >= MAX_DEPTH:
                raise DecodeError("templates nested too deep", tag=tag, offset=tag_at)
            kids: list[Tlv] = []
            try:
                _decode(data, pos, stop, depth + 1, kids, flat)
            except DecodeError as exc:
                raise DecodeError(
                    exc.message,
                    tag=exc.tag if exc.tag is not None else tag,
                    offset=exc.offset,
                    decoded=[*out, Tlv(tag, value, tuple(kids))],
                ) from None
            if flat is None:
                append(Tlv(tag, value, tuple(kids)))
        elif flat is None:
            append(Tlv(tag, value))
        elif first & 0x20 == 0 and tag not in flat:
            flat[tag] = value
        pos = stop


def decode(data: bytes) -> list[Tlv]:
    """Decode a sequence of BER-TLV data objects, constructed ones recursively.

    Padding bytes 00 and FF between objects are skipped (Book 3 B1). Any malformed
    input raises :class:`DecodeError`; nothing else escapes.
    """
    data = bytes(data)
    out: list[Tlv] = []
    _decode(data, 0, len(data), 0, out)
    return out


def decode_flat(data: bytes) -> dict[int, bytes]:
    """Decode and :func:`flatten` in one pass: primitive tag -> first value.

    The same checks as :func:`decode` (any malformed input raises
    :class:`DecodeError`), without building the tree: the fast path for a kernel
    that only needs the data objects of a card answer.
    """
    data = bytes(data)
    flat: dict[int, bytes] = {}
    _decode(data, 0, len(data), 0, [], flat)
    return flat


def decode_one(data: bytes, tag: int | None = None) -> Tlv:
    """Decode exactly one object (e.g. a template ``77`` R-APDU body).

    With ``tag`` given the object must carry that tag. Trailing bytes other than
    padding are an error.
    """
    objects = decode(data)
    if len(objects) != 1:
        raise DecodeError(f"expected one data object, found {len(objects)}", decoded=objects)
    obj = objects[0]
    if tag is not None and obj.tag != tag:
        raise DecodeError(
            f"expected tag {tag_hex(tag)}, found {tag_hex(obj.tag)}", tag=obj.tag, decoded=objects
        )
    return obj


def decode_leading(data: bytes, tag: int) -> Tlv:
    """Decode the data object ``tag`` that opens ``data``; whatever follows it is ignored.

    For a template a card answers with more after it, such as the FCI template ``6F``
    of a SELECT answer: the template must be well formed, the bytes after its end are
    not read at all (they need not even be BER-TLV). Padding before it is skipped (Book 3
    B1). Anything else, or a template that runs past the end, is a :class:`DecodeError`.
    """
    data = bytes(data)
    start = 0
    while start < len(data) and data[start] in _PADDING:
        start += 1
    found, pos = read_tag(data, start)
    if found != tag:
        raise DecodeError(f"expected tag {tag_hex(tag)}, found {tag_hex(found)}", tag=found)
    length, pos = read_length(data, pos)
    if pos + length > len(data):
        raise DecodeError(
            f"value of {length} bytes runs past the end ({len(data) - pos} left)",
            tag=found,
            offset=start,
        )
    out: list[Tlv] = []
    _decode(data, start, pos + length, 0, out)
    return out[0]


def encode(tag: int, value: bytes | Iterable[Tlv | bytes]) -> bytes:
    """Encode one data object.

    ``value`` is either the raw value bytes or, for a template, an iterable of child
    :class:`Tlv` objects or already encoded children.
    """
    if isinstance(value, bytes | bytearray | memoryview):
        body = bytes(value)
    else:
        body = b"".join(v.encode() if isinstance(v, Tlv) else bytes(v) for v in value)
    return tag_bytes(tag) + encode_length(len(body)) + body


def _walk(objects: Iterable[Tlv]) -> Iterator[Tlv]:
    for obj in objects:
        yield obj
        if obj.children:
            yield from _walk(obj.children)


def find(objects: Sequence[Tlv], tag: int) -> Tlv | None:
    """The first object with ``tag``, searching templates depth first."""
    for obj in _walk(objects):
        if obj.tag == tag:
            return obj
    return None


def find_all(objects: Sequence[Tlv], tag: int) -> list[Tlv]:
    """Every object with ``tag`` (multiple occurrences, e.g. several ``61`` entries)."""
    return [obj for obj in _walk(objects) if obj.tag == tag]


def flatten(objects: Sequence[Tlv]) -> dict[int, bytes]:
    """Map each primitive tag to its first value, looking inside every template.

    The first occurrence wins, as a kernel stores a data object once (Book 3 §10.1:
    a second occurrence of a tag is an error the caller checks with :func:`find_all`).
    """
    out: dict[int, bytes] = {}
    stack = list(reversed(objects))
    pop, extend = stack.pop, stack.extend
    while stack:
        obj = pop()
        if obj.children:
            extend(reversed(obj.children))
        elif obj.tag not in out and not is_constructed(obj.tag):
            out[obj.tag] = obj.value
    return out
