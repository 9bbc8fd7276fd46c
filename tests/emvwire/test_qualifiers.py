"""emvwire.qualifiers: each named bit is one bit of its object, none named twice, and
is_set reads a value too short for a bit as clear."""

from __future__ import annotations

import pytest

from emvwire.qualifiers import AIP, CTQ, TTQ, TVR_BITS, Bit, is_set


def _bits(namespace: type) -> dict[str, Bit]:
    return {n: v for n, v in vars(namespace).items() if isinstance(v, Bit)}


@pytest.mark.parametrize(
    ("bits", "length"),
    [(_bits(TTQ), 4), (_bits(CTQ), 2), (_bits(AIP), 2), (dict(TVR_BITS), 5)],
    ids=["TTQ", "CTQ", "AIP", "TVR"],
)
def test_one_bit_each_and_none_twice(bits: dict[str, Bit], length: int) -> None:
    assert bits
    for name, bit in bits.items():
        assert 0 <= bit.byte < length, name
        assert bin(bit.mask).count("1") == 1, name
    assert len(set(bits.values())) == len(bits)


def test_known_positions() -> None:
    # Book C-3 Annex A and Book 3 Annex C5, as the specifications number them.
    assert Bit(1, 0x80) == TTQ.ONLINE_CRYPTOGRAM_REQUIRED  # byte 2 bit 8
    assert Bit(1, 0x80) == CTQ.CDCVM_PERFORMED  # byte 2 bit 8
    assert Bit(0, 0x01) == AIP.CDA  # byte 1 bit 1
    assert TVR_BITS["cda_failed"] == Bit(0, 0x04)  # byte 1 bit 3
    assert TVR_BITS["relay_resistance_time_limits_exceeded"] == Bit(4, 0x04)


def test_is_set() -> None:
    assert is_set(bytes.fromhex("0080"), CTQ.CDCVM_PERFORMED)
    assert not is_set(bytes.fromhex("FF7F"), CTQ.CDCVM_PERFORMED)
    assert not is_set(b"\xff", CTQ.CDCVM_PERFORMED)  # too short: clear
    assert not is_set(b"", TTQ.OFFLINE_ONLY)
