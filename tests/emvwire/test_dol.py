"""Tests of emvwire.dol: parsing, the Book 3 §5.4 filling rules and splitting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emvwire import dol
from emvwire.apdu import CApdu
from emvwire.dol import DolEntry, DolSyntaxError
from emvwire.errors import DolError, EmvWireError
from emvwire.tlv import decode, decode_one, find

# The public transcripts of MohamedHassanNasr/emv (fixtures/transcripts/README.md).
TRANSCRIPTS = Path(__file__).parents[2] / "fixtures" / "transcripts"
VISA_PDOL = bytes.fromhex("9F66049F02069F03069F1A0295055F2A029A039C019F3704")


def test_parse_visa_pdol() -> None:
    entries = dol.parse(VISA_PDOL)
    assert [(e.tag, e.length) for e in entries] == [
        (0x9F66, 4),
        (0x9F02, 6),
        (0x9F03, 6),
        (0x9F1A, 2),
        (0x95, 5),
        (0x5F2A, 2),
        (0x9A, 3),
        (0x9C, 1),
        (0x9F37, 4),
    ]
    assert dol.total_length(VISA_PDOL) == 33
    assert dol.encode(entries) == VISA_PDOL
    assert str(entries[0]) == "9F66:4"


def test_parse_three_byte_tags_and_long_lengths() -> None:
    # Kernel 2 tags (three bytes) and one-byte lengths >= 0x80 (not BER lengths).
    assert dol.parse(bytes.fromhex("DF812904DF830181")) == [
        DolEntry(0xDF8129, 4),
        DolEntry(0xDF8301, 0x81),
    ]
    assert dol.parse(b"") == []


@pytest.mark.parametrize(
    ("raw", "offset"),
    [
        ("9F", 1),  # tag cut short
        ("9F02", 2),  # no length byte
        ("9F0206 00", 3),  # 00 is not a tag
        ("9F02069F", 4),
        ("DF8181810102", 0),  # four-byte tag
    ],
)
def test_parse_malformed_raises_dol_error_with_offset(raw: str, offset: int) -> None:
    with pytest.raises(DolSyntaxError) as info:
        dol.parse(bytes.fromhex(raw.replace(" ", "")))
    assert isinstance(info.value, DolError)
    assert info.value.offset == offset
    assert f"offset {offset}" in str(info.value)


@given(st.binary(max_size=64))
def test_parse_arbitrary_bytes_only_dol_error(raw: bytes) -> None:
    try:
        entries = dol.parse(raw)
    except DolError:
        return
    assert dol.encode(entries) == raw


# --- Book 3 §5.4 rules, one example each ---


def test_absent_value_is_zeros() -> None:
    assert dol.build(bytes.fromhex("9F0306"), {}) == bytes(6)


def test_unknown_tag_with_value_is_binary() -> None:
    # DF7F is not in the dictionary: treated as format b (right truncation, 00 padding).
    assert dol.build(bytes.fromhex("DF7F03"), {0xDF7F: b"\x01\x02"}) == b"\x01\x02\x00"
    assert dol.build(bytes.fromhex("DF7F01"), {0xDF7F: b"\x01\x02"}) == b"\x01"


def test_numeric_too_long_loses_leftmost_bytes() -> None:
    assert dol.fit(0x9F02, bytes.fromhex("000000012345"), 4) == bytes.fromhex("00012345")


def test_numeric_too_short_gets_leading_zeros() -> None:
    assert dol.fit(0x9F02, bytes.fromhex("012345"), 6) == bytes.fromhex("000000012345")


def test_compressed_numeric_too_short_gets_trailing_ff() -> None:
    pan = bytes.fromhex("5413330089010434")
    assert dol.fit(0x5A, pan, 10) == pan + b"\xff\xff"


def test_compressed_numeric_too_long_loses_rightmost_bytes() -> None:
    assert dol.fit(0x5A, bytes.fromhex("5413330089010434"), 3) == bytes.fromhex("541333")


def test_binary_too_long_loses_rightmost_bytes() -> None:
    assert dol.fit(0x9F37, bytes.fromhex("11223344"), 2) == bytes.fromhex("1122")


def test_binary_too_short_gets_trailing_zeros() -> None:
    assert dol.fit(0x9F37, bytes.fromhex("1122"), 4) == bytes.fromhex("11220000")


def test_text_formats_pad_and_truncate_on_the_right() -> None:
    assert dol.fit(0x9F4E, b"SHOP", 6) == b"SHOP\x00\x00"  # ans
    assert dol.fit(0x9F1C, b"TERMINAL01", 8) == b"TERMINAL"  # an 8
    assert dol.fit(0x5F2D, b"en", 4) == b"en\x00\x00"


def test_constructed_tag_is_zeros_even_with_a_value() -> None:
    assert dol.build(bytes.fromhex("7003"), {0x70: b"\x01\x02\x03"}) == bytes(3)
    assert dol.fit(0xBF0C, b"\xaa", 2) == b"\x00\x00"


def test_exact_length_is_unchanged_and_repeated_tags_are_filled_twice() -> None:
    source = {0x9F37: bytes.fromhex("ABABABAB")}
    assert dol.build(bytes.fromhex("9F37049F3702"), source) == bytes.fromhex("ABABABABABAB")


def test_kernel_specific_format() -> None:
    # 9F5D is n 12 for Visa (Available Offline Spending Amount), b 3 for Mastercard.
    value = bytes.fromhex("0100")
    assert dol.fit(0x9F5D, value, 3) == bytes.fromhex("000100")
    assert dol.fit(0x9F5D, value, 3, kernel=2) == bytes.fromhex("010000")


def test_build_accepts_parsed_entries() -> None:
    entries = [DolEntry(0x9C, 1), DolEntry(0x9F1A, 2)]
    assert dol.build(entries, {0x9C: b"\x00", 0x9F1A: b"\x08\x40"}) == bytes.fromhex("000840")


def _visa_online() -> dict[str, object]:
    data: dict[str, object] = json.loads((TRANSCRIPTS / "mock-visa-online.json").read_text())
    return data


def test_visa_transcript_gpo_data_equals_built_pdol_data() -> None:
    t = _visa_online()
    apdus = t["apdus"]
    assert isinstance(apdus, list)
    fci = decode_one(bytes.fromhex(apdus[1]["resp"])[:-2], 0x6F)
    pdol = find([fci], 0x9F38)
    assert pdol is not None
    # Terminal data: the transaction request (amount, currency, type), the recorded
    # random and date, the TTQ the kernel sent (cfg_visa 24004000 with byte 2 set to
    # C0: online cryptogram and CVM required for 90.00 over the 80.00 limits), the
    # terminal country from cfg_visa. 9F03 and 95 are not provided: zeros.
    request = {o.tag: o.value for o in decode(bytes.fromhex(str(t["transaction-req"])))}
    source = {
        **request,
        0x9F37: bytes.fromhex(str(t["randoms"])),
        0x9A: bytes.fromhex(str(t["date"])),
        0x9F66: bytes.fromhex("24C04000"),
        0x9F1A: bytes.fromhex("0840"),
    }
    built = dol.build(pdol.value, source)
    gpo = CApdu.decode(bytes.fromhex(apdus[2]["cmd"]))
    assert gpo.ins == 0xA8
    sent = decode_one(gpo.data, 0x83).value
    assert built == sent
    # And the card side splits it back.
    parts = dol.split(pdol.value, sent)
    assert parts[0x9F02] == bytes.fromhex("000000009000")
    assert parts[0x9F37] == bytes.fromhex("ABABABAB")
    assert parts[0x95] == bytes(5)


def test_split_length_mismatch() -> None:
    with pytest.raises(DolError, match="asks for 33 bytes of data, 32 given"):
        dol.split(VISA_PDOL, bytes(32))
    with pytest.raises(DolError):
        dol.split(VISA_PDOL, bytes(34))


def test_split_entries_keeps_repeats() -> None:
    pairs = dol.split_entries(bytes.fromhex("9F37029F3702"), bytes.fromhex("11223344"))
    assert [v for _, v in pairs] == [b"\x11\x22", b"\x33\x44"]
    assert dol.split(bytes.fromhex("9F37029F3702"), bytes.fromhex("11223344")) == {
        0x9F37: b"\x11\x22"
    }


_TAGS = st.sampled_from([0x9F02, 0x5A, 0x9F37, 0x5F20, 0x9F4E, 0x70, 0xDF8129, 0xDF7F, 0x95])


@given(st.lists(st.tuples(_TAGS, st.integers(0, 255)), max_size=8), st.data())
def test_build_then_split_round_trip(pairs: list[tuple[int, int]], data: st.DataObject) -> None:
    entries = [DolEntry(t, n) for t, n in pairs]
    raw = dol.encode(entries)
    assert dol.parse(raw) == entries
    source = {t: data.draw(st.binary(max_size=20)) for t, _ in pairs}
    built = dol.build(raw, source)
    assert len(built) == dol.total_length(raw)
    for entry, value in dol.split_entries(raw, built):
        assert value == dol.fit(entry.tag, source.get(entry.tag), entry.length)


@given(st.binary(max_size=40), st.binary(max_size=40))
def test_split_arbitrary_only_emvwire_errors(raw: bytes, data: bytes) -> None:
    try:
        parts = dol.split_entries(raw, data)
    except EmvWireError:
        return
    assert b"".join(value for _, value in parts) == data
