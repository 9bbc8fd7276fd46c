"""Tests of emvwire.dictionary: coverage of the kernels' tags and consistency of the table."""

from __future__ import annotations

import pytest

from emvwire.dictionary import (
    DICTIONARY,
    KERNEL_DICTIONARIES,
    Format,
    Kernel,
    Source,
    describe,
    entries,
    format_of,
    name_of,
    sensitive_tags,
)
from emvwire.mask import MASK_STRATEGIES
from emvwire.tlv import is_constructed

REQUIRED = [
    0x42, 0x4F, 0x50, 0x57, 0x5A, 0x5F20, 0x5F24, 0x5F25, 0x5F28, 0x5F2A, 0x5F2D, 0x5F30,
    0x5F34, 0x5F36, 0x61, 0x6F, 0x70, 0x71, 0x72, 0x73, 0x77, 0x80, 0x82, 0x84, 0x87, 0x88,
    0x8A, 0x8C, 0x8D, 0x8E, 0x8F, 0x90, 0x91, 0x92, 0x93, 0x94, 0x95, 0x9A, 0x9B, 0x9C, 0x9D,
    0xA5, 0xBF0C, 0x9F6E, 0x9F6C, 0x9F66, 0x9F69, 0x9F5D, 0x9F7C, 0x9F19, 0x9F24, 0x9F25,
    0x9F6D, 0x9F7E, 0xDF60, 0xDF61, 0xDF62, 0xDF63,
    *range(0xDF8301, 0xDF8306),
    *range(0xDF812A, 0xDF812E),
    *range(0xDF8130, 0xDF8138),
    *(t for t in range(0xDF8101, 0xDF812A) if t != 0xDF8103),
    # Field 55 of an authorisation request (ISO 8583), as issuer hosts receive it.
    0x9F02, 0x9F03, 0x9F09, 0x9F10, 0x9F1A, 0x9F1E, 0x9F26, 0x9F27, 0x9F33, 0x9F34, 0x9F35,
    0x9F36, 0x9F37, 0x9F41, 0x9F53,
]  # fmt: skip


@pytest.mark.parametrize("tag", REQUIRED, ids=lambda t: f"{t:X}")
def test_required_tags_are_described(tag: int) -> None:
    info = describe(tag)
    assert info is not None
    assert info.tag == tag
    assert info.name
    assert info.ref.startswith(("EMV", "Visa", "ISO"))


def test_every_9f_tag_from_9f01_to_9f7f_that_emv_uses() -> None:
    # Book 3 leaves 9F0C, 9F28, 9F2B, 9F2C, 9F30, 9F31, 9F3E, 9F3F unallocated.
    unallocated = {0x9F0C, 0x9F28, 0x9F2B, 0x9F2C, 0x9F30, 0x9F31, 0x9F3E, 0x9F3F}
    for tag in range(0x9F01, 0x9F50):
        assert (describe(tag) is None) == (tag in unallocated), f"{tag:X}"


def test_entries_are_consistent() -> None:
    for info in entries():
        assert 0 <= info.min_len <= info.max_len <= 261, info.hex
        assert info.constructed == is_constructed(info.tag)
        if info.constructed:
            assert info.format is Format.VAR, info.hex
        for template in info.templates:
            # 80 (Response Message Template Format 1) is primitive: values without TL.
            assert is_constructed(template) or template == 0x80, (info.hex, template)
            assert template in DICTIONARY, (info.hex, template)
        assert isinstance(info.source, Source)


def test_numeric_lengths_are_whole_bytes_of_digits() -> None:
    assert describe(0x9F02).format is Format.N  # type: ignore[union-attr]
    assert describe(0x9F02).max_len == 6  # type: ignore[union-attr]
    assert describe(0x5A).format is Format.CN  # type: ignore[union-attr]
    assert describe(0x5F2D).format is Format.AN  # type: ignore[union-attr]
    assert describe(0x50).format is Format.ANS  # type: ignore[union-attr]
    assert format_of(0x9F37) is Format.B
    assert format_of(0xDF7F) is Format.B  # unknown tags are treated as binary


def test_sources() -> None:
    assert describe(0x9F37).source is Source.TERMINAL  # type: ignore[union-attr]
    assert describe(0x9F26).source is Source.CARD  # type: ignore[union-attr]
    assert describe(0x91).source is Source.ISSUER  # type: ignore[union-attr]
    assert describe(0x8A).source is Source.ISSUER  # type: ignore[union-attr]


def test_kernel_specific_meanings() -> None:
    assert name_of(0x9F66) == "Terminal Transaction Qualifiers (TTQ)"
    assert name_of(0x9F66, Kernel.VISA) == "Terminal Transaction Qualifiers (TTQ)"
    assert "PUNATC(Track2)" in name_of(0x9F66, Kernel.MASTERCARD)
    assert name_of(0x9F6C) == "Card Transaction Qualifiers (CTQ)"
    assert name_of(0x9F6C, 2) == "Mag-stripe Application Version Number (Card)"
    assert name_of(0x9F69, 2) == "UDOL"
    assert name_of(0x9F6E, 2) == "Third Party Data"
    assert name_of(0x9F7C, 2) == "Merchant Custom Data"
    assert describe(0x9F5D, 2).format is Format.B  # type: ignore[union-attr]
    assert describe(0x9F5D, 3).format is Format.N  # type: ignore[union-attr]
    # A kernel without overrides, or an unknown kernel number, falls back to the default.
    assert describe(0x9F26, 2) is DICTIONARY[0x9F26]
    assert describe(0x9F66, 7) is DICTIONARY[0x9F66]
    for table in KERNEL_DICTIONARIES.values():
        for tag in table:
            assert tag in DICTIONARY


def test_unknown_tag() -> None:
    assert describe(0xDF7F) is None
    assert name_of(0xDF7F) == "Unknown tag DF7F"


def test_sensitive_flags() -> None:
    must = {0x56, 0x57, 0x5A, 0x5F20, 0x99, 0x9F0B, 0x9F1F, 0x9F20, 0x9F6B, 0x9F5E}
    assert must <= sensitive_tags()
    # Every tag mask.py has a strategy for is flagged in the dictionary too.
    assert set(MASK_STRATEGIES) <= sensitive_tags()
    # Cryptograms and counters are not cardholder data.
    assert not {0x9F26, 0x9F36, 0x82, 0x9F24, 0x9F25} & sensitive_tags()


def test_kernel_2_relay_resistance_names() -> None:
    assert name_of(0xDF8301) == "Terminal Relay Resistance Entropy"
    assert name_of(0xDF8302) == "Device Relay Resistance Entropy"
    assert name_of(0xDF8129) == "Outcome Parameter Set"
    assert describe(0xDF8129).max_len == 8  # type: ignore[union-attr]
    assert name_of(0xDF8136) == "Relay Resistance Accuracy Threshold"
    assert describe(0xDF8124).format is Format.N  # type: ignore[union-attr]


def test_tables_are_read_only() -> None:
    with pytest.raises(TypeError):
        DICTIONARY[0x01] = DICTIONARY[0x9F26]  # type: ignore[index]
