"""Data object lists: PDOL, CDOL1, CDOL2, DDOL, TDOL, UDOL (EMV Book 3 §5.4).

A DOL is a concatenation of entries, each a tag (BER-TLV tag coding, Book 3 Annex B1)
and a one-byte length, naming the data the card wants in a command. :func:`parse`
reads the entries; :func:`build` concatenates the values of a data source following
the rules of Book 3 §5.4; :func:`split` cuts such concatenated data back into values.

The §5.4 rules applied by :func:`fit`, by the format of the data object
(:mod:`emvwire.dictionary`; a tag not in the dictionary is format ``b``):

* absent from the data source, or a constructed tag: the length in zeros;
* longer than the DOL length: numeric (``n``) loses its leftmost bytes, any other
  format its rightmost bytes;
* shorter: numeric is padded with leading ``00``, compressed numeric (``cn``) with
  trailing ``FF``, any other format with trailing ``00``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from emvwire.dictionary import Format, format_of
from emvwire.errors import DecodeError, DolError
from emvwire.tlv import is_constructed, read_tag, tag_bytes, tag_hex

__all__ = [
    "DolEntry",
    "DolSyntaxError",
    "build",
    "encode",
    "fit",
    "parse",
    "split",
    "split_entries",
    "total_length",
]


class DolSyntaxError(DolError):
    """Malformed DOL bytes; ``offset`` is where in the DOL the fault is."""

    def __init__(self, message: str, *, offset: int) -> None:
        self.offset = offset
        super().__init__(f"{message} (at offset {offset} of the DOL)")


@dataclass(frozen=True, slots=True)
class DolEntry:
    """One DOL entry: a tag and the number of value bytes wanted."""

    tag: int
    length: int

    def encode(self) -> bytes:
        """The entry as it stands in a DOL: tag bytes, one length byte."""
        return tag_bytes(self.tag) + bytes((self.length,))

    def __str__(self) -> str:
        return f"{tag_hex(self.tag)}:{self.length}"


def parse(dol: bytes) -> list[DolEntry]:
    """Read the entries of a DOL (Book 3 §5.4).

    Tags are BER-TLV tags of one to three bytes; each length is one byte (0-255).
    A tag of ``00`` (not a tag, Book 3 B1), a tag cut short or a missing length byte
    raise :class:`DolSyntaxError`, a :class:`~emvwire.errors.DolError`.
    """
    data = bytes(dol)
    entries: list[DolEntry] = []
    pos = 0
    while pos < len(data):
        if data[pos] == 0x00:
            raise DolSyntaxError("byte 00 is not a tag", offset=pos)
        try:
            tag, after = read_tag(data, pos)
        except DecodeError as exc:
            raise DolSyntaxError(exc.message, offset=exc.offset) from None
        if after >= len(data):
            raise DolSyntaxError(f"tag {tag_hex(tag)} has no length byte", offset=after)
        entries.append(DolEntry(tag, data[after]))
        pos = after + 1
    return entries


def _entries(dol: bytes | Iterable[DolEntry]) -> list[DolEntry]:
    if isinstance(dol, bytes | bytearray | memoryview):
        return parse(bytes(dol))
    return list(dol)


def encode(entries: Iterable[DolEntry]) -> bytes:
    """The DOL bytes of ``entries``."""
    return b"".join(e.encode() for e in entries)


def total_length(dol: bytes | Iterable[DolEntry]) -> int:
    """How many bytes of data the DOL asks for."""
    return sum(e.length for e in _entries(dol))


def fit(tag: int, value: bytes | None, length: int, *, kernel: int | None = None) -> bytes:
    """The ``length`` bytes a DOL entry gets for ``value`` (Book 3 §5.4 rules).

    ``value`` is ``None`` when the data source has no such data object. The format is
    the dictionary's (with ``kernel``'s meaning where it differs); unknown tags are
    ``b``, and templates are always filled with zeros.
    """
    if value is None or is_constructed(tag):
        return bytes(length)
    value = bytes(value)
    have = len(value)
    if have == length:
        return value
    fmt = format_of(tag, kernel)
    if have > length:
        return value[have - length :] if fmt is Format.N else value[:length]
    pad = length - have
    if fmt is Format.N:
        return bytes(pad) + value
    if fmt is Format.CN:
        return value + b"\xff" * pad
    return value + bytes(pad)


def build(
    dol: bytes | Iterable[DolEntry],
    source: Mapping[int, bytes],
    *,
    kernel: int | None = None,
) -> bytes:
    """Concatenate the values ``source`` holds for each DOL entry (Book 3 §5.4).

    ``dol`` is the DOL bytes (e.g. the value of ``9F38``) or parsed entries;
    ``source`` maps tags to terminal-side values. Each entry is filled by :func:`fit`.
    A tag listed twice is filled twice.
    """
    return b"".join(fit(e.tag, source.get(e.tag), e.length, kernel=kernel) for e in _entries(dol))


def split_entries(dol: bytes | Iterable[DolEntry], data: bytes) -> list[tuple[DolEntry, bytes]]:
    """Cut DOL-related ``data`` into each entry's value, in DOL order.

    The data must be exactly as long as the DOL asks; otherwise :class:`DolError`.
    """
    entries = _entries(dol)
    data = bytes(data)
    want = sum(e.length for e in entries)
    if len(data) != want:
        raise DolError(f"DOL asks for {want} bytes of data, {len(data)} given")
    out: list[tuple[DolEntry, bytes]] = []
    pos = 0
    for entry in entries:
        out.append((entry, data[pos : pos + entry.length]))
        pos += entry.length
    return out


def split(dol: bytes | Sequence[DolEntry], data: bytes) -> dict[int, bytes]:
    """Cut DOL-related ``data`` into a tag to value mapping (the card side of §5.4).

    For a tag listed more than once the first occurrence's value is kept (use
    :func:`split_entries` to see every one). Length mismatch raises :class:`DolError`.
    """
    out: dict[int, bytes] = {}
    for entry, value in split_entries(dol, data):
        out.setdefault(entry.tag, value)
    return out
