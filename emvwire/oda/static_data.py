"""The static data to be authenticated (EMV Book 3 §10.3; Book 2 §5.4, §6.4).

Records named by the AFL for offline data authentication are concatenated in AFL
order: for SFI 1-10 the value of the record's template ``70`` (its tag and length
left out), for SFI 11-30 the whole record, tag and length included. A record of SFI
1-10 that is not a template ``70`` makes ODA fail. If the Static Data Authentication
Tag List (``9F4A``) is present it may name only the AIP (``82``), whose value is then
appended; any other tag makes ODA fail.
"""

from __future__ import annotations

from collections.abc import Iterable

from emvwire import tlv
from emvwire.apdu import parse_afl
from emvwire.errors import DecodeError, OdaError
from emvwire.tags import Tag

__all__ = ["StaticData", "build_static_data", "oda_records"]


def oda_records(afl: bytes) -> list[tuple[int, int]]:
    """The ``(sfi, record number)`` pairs the AFL marks for ODA, in AFL order.

    Each four-byte AFL entry (Book 3 §10.2) counts, in its fourth byte, the records
    from its first that take part in offline data authentication. A malformed AFL
    raises :class:`DecodeError` (from :func:`emvwire.apdu.parse_afl`).
    """
    return [
        (entry.sfi, number)
        for entry in parse_afl(afl)
        for number in range(entry.first, entry.first + entry.oda_count)
    ]


def _record_part(sfi: int, record: bytes) -> bytes:
    if not 1 <= sfi <= 30:
        raise OdaError(f"SFI {sfi} is not 1-30")
    if sfi > 10:
        return record
    try:
        tag, pos = tlv.read_tag(record)
        length, pos = tlv.read_length(record, pos)
    except DecodeError:
        raise OdaError(f"record of SFI {sfi} is not a template 70") from None
    if tag != Tag.RECORD_TEMPLATE:
        raise OdaError(f"record of SFI {sfi} is not a template 70")
    if pos + length != len(record):
        raise OdaError(f"record of SFI {sfi}: template 70 length does not match the record")
    return record[pos:]


def _sda_tag_list_part(aip: bytes | None, sda_tag_list: bytes | None) -> bytes:
    if not sda_tag_list:
        return b""
    if bytes(sda_tag_list) != bytes((Tag.AIP,)):
        raise OdaError("SDA tag list names tags other than 82")
    if aip is None:
        raise OdaError("SDA tag list names 82 but the AIP is missing")
    return bytes(aip)


class StaticData:
    """Builds the static data to be authenticated, one record at a time (Book 3 §10.3).

    Add the records the AFL marks for ODA (see :func:`oda_records`) in AFL order with
    :meth:`add_record`, then take :meth:`value` with the AIP and the SDA tag list.
    """

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def add_record(self, sfi: int, record: bytes) -> None:
        """Add a READ RECORD response body (without status word) read from ``sfi``."""
        self._parts.append(_record_part(sfi, bytes(record)))

    def value(self, *, aip: bytes | None = None, sda_tag_list: bytes | None = None) -> bytes:
        """The concatenation, with the AIP if ``sda_tag_list`` (``9F4A``) names it."""
        return b"".join(self._parts) + _sda_tag_list_part(aip, sda_tag_list)

    def __len__(self) -> int:
        return sum(map(len, self._parts))

    def __repr__(self) -> str:
        return f"StaticData({len(self._parts)} records, {len(self)} bytes)"


def build_static_data(
    records: Iterable[tuple[int, bytes]],
    *,
    aip: bytes | None = None,
    sda_tag_list: bytes | None = None,
) -> bytes:
    """The static data to be authenticated from ``(sfi, record)`` pairs in AFL order."""
    builder = StaticData()
    for sfi, record in records:
        builder.add_record(sfi, record)
    return builder.value(aip=aip, sda_tag_list=sda_tag_list)
