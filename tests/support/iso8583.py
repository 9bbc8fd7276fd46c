"""ISO 8583 messages written and read by the tests themselves, independent of the
product's codec (emvwire.iso8583): the 1987 field layout as the tests read it (ASCII
MTI and fields, binary bitmaps, LL/LLL lengths in ASCII, field 55 binary), bitmaps
computed bit by bit, fields concatenated as bytes the test writes out.

- :func:`build` a message from field bytes (``ll``, ``lll`` make variable fields),
  :func:`framed` adds the 2-byte length header;
- :func:`parse` reads a message into ``{field: bytes}`` by :data:`LAYOUT`;
- :class:`Wire` a raw socket to a listener: send frames, read answers.
"""

from __future__ import annotations

import socket
from typing import Final

__all__ = ["LAYOUT", "Wire", "bitmap", "build", "framed", "ll", "lll", "parse"]

#: Field number -> fixed length, or ("LL"|"LLL", maximum): ISO 8583:1987 §4.3.
LAYOUT: Final[dict[int, int | tuple[str, int]]] = {
    2: ("LL", 19), 3: 6, 4: 12, 7: 10, 11: 6, 12: 6, 13: 4, 14: 4, 18: 4, 22: 3, 23: 3,
    32: ("LL", 11), 35: ("LL", 37), 37: 12, 38: 6, 39: 2, 41: 8, 42: 15, 43: 40,
    44: ("LL", 25), 48: ("LLL", 999), 49: 3, 55: ("LLL", 255), 56: ("LLL", 255),
    62: ("LLL", 255), 70: 3, 90: 42,
}  # fmt: skip


def bitmap(numbers: set[int] | list[int]) -> bytes:
    """The primary (and, for a field above 64, secondary) bitmap: bit 1 is the most
    significant bit of the first byte."""
    wanted = set(numbers)
    size = 16 if any(n > 64 for n in wanted) else 8
    if size == 16:
        wanted.add(1)
    value = 0
    for n in wanted:
        value |= 1 << (size * 8 - n)
    return value.to_bytes(size, "big")


def ll(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return b"%02d" % len(data) + data


def lll(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return b"%03d" % len(data) + data


def build(mti: str, fields: dict[int, bytes | str], *, bits: set[int] | None = None) -> bytes:
    """MTI, bitmap, then the fields' bytes in order; ``bits`` overrides the bitmap
    (to announce fields that are not there)."""
    encoded = {n: v.encode() if isinstance(v, str) else v for n, v in fields.items()}
    return (
        mti.encode()
        + bitmap(bits if bits is not None else set(encoded))
        + b"".join(encoded[n] for n in sorted(encoded))
    )


def framed(body: bytes) -> bytes:
    return len(body).to_bytes(2, "big") + body


def parse(data: bytes) -> tuple[str, dict[int, bytes]]:
    """(MTI, field bytes without length prefixes) of an answer, by :data:`LAYOUT`."""
    mti = data[:4].decode()
    at = 4
    primary = int.from_bytes(data[at : at + 8], "big")
    at += 8
    numbers = [n for n in range(1, 65) if primary & (1 << (64 - n))]
    if 1 in numbers:
        secondary = int.from_bytes(data[at : at + 8], "big")
        at += 8
        numbers += [n + 64 for n in range(1, 65) if secondary & (1 << (64 - n))]
    fields: dict[int, bytes] = {}
    for n in sorted(set(numbers) - {1}):
        form = LAYOUT[n]
        if isinstance(form, int):
            size = form
        else:
            digits = len(form[0])
            size = int(data[at : at + digits])
            at += digits
        fields[n] = data[at : at + size]
        at += size
    assert at == len(data), f"{len(data) - at} bytes after the last field"
    return mti, fields


class Wire:
    """A raw TCP connection to an ISO 8583 listener."""

    def __init__(self, address: tuple[str, int], timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)

    def send(self, raw: bytes) -> None:
        self.sock.sendall(raw)

    def read(self) -> tuple[str, dict[int, bytes]]:
        header = self._exactly(2)
        return parse(self._exactly(int.from_bytes(header, "big")))

    def ask(self, body: bytes) -> tuple[str, dict[int, bytes]]:
        self.send(framed(body))
        return self.read()

    def closed(self) -> bool:
        """Whether the listener closed the connection (reads end-of-file)."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def _exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            part = self.sock.recv(size - len(data))
            if not part:
                raise ConnectionError("closed by the listener")
            data += part
        return data

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
