"""Tests of emvwire.dump: names, decoded values, explanations and masking."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from emvwire import dictionary
from emvwire.apdu import RApdu
from emvwire.dump import dump, explain, render_value
from emvwire.mask import mask_pan
from emvwire.tlv import Tlv, decode, encode

# The public transcripts of MohamedHassanNasr/emv (fixtures/transcripts/README.md).
TRANSCRIPTS = Path(__file__).parents[2] / "fixtures" / "transcripts"


def _responses(name: str) -> list[bytes]:
    t = json.loads((TRANSCRIPTS / name).read_text())
    return [RApdu.decode(bytes.fromhex(a["resp"])).data for a in t["apdus"]]


def test_visa_gpo_response_names_and_masks() -> None:
    gpo = _responses("mock-visa-online.json")[2]
    text = dump(gpo)
    lines = text.splitlines()
    assert lines[0] == "77 Response Message Template Format 2 [87]"
    assert "  82 Application Interchange Profile [2]: 2000" in lines
    assert "      - byte 1 bit 6: DDA supported" in lines
    assert "  57 Track 2 Equivalent Data [17]: 476173******0010D***************** (masked)" in lines
    assert "  5F20 Cardholder Name [22]: ********************** (masked)" in lines
    assert "  9F26 Application Cryptogram [8]: 48325309BE82CBA2" in lines
    assert "      - cryptogram type: ARQC" in lines
    assert "  9F6C Card Transaction Qualifiers (CTQ) [2]: 9000" in lines
    assert "      - byte 1 bit 8: Online PIN required" in lines
    # No PAN digits beyond the first six and last four, no expiry, no name.
    assert "4761739001010010" not in text
    assert "739001" not in text
    assert "D2212" not in text
    assert "VISA CREDIT/CARDHOLDER" not in text
    assert "CARDHOLDER" not in text


def test_reveal_shows_sensitive_values() -> None:
    gpo = _responses("mock-visa-online.json")[2]
    text = dump(gpo, reveal=True)
    assert "4761739001010010D22122011143844489" in text
    assert '"VISA CREDIT/CARDHOLDER"' in text
    assert "(masked)" not in text


def test_mastercard_record_masks_pan_and_explains() -> None:
    records = _responses("mock-msc-online.json")
    text = dump(records[3], kernel=2)
    assert "5A Application Primary Account Number (PAN) [8]: 541333******1034 (masked)" in text
    assert "5413330089601034" not in text
    text = dump(records[4], kernel=2)
    assert "5F24 Application Expiration Date [3]: 251231 (2025-12-31)" in text
    assert "      - 9F02 [6] Amount, Authorised (Numeric)" in text  # CDOL1 entries
    assert "      - 91 [10] Issuer Authentication Data" in text  # CDOL2 entries
    assert "      - 4203: Enciphered PIN verified online, if terminal supports the CVM" in text
    assert "5413330089601034" not in text
    gpo = dump(records[2], kernel=2)
    assert "      - SFI 2: records 1-2, 1 for offline data authentication" in gpo
    assert "      - byte 1 bit 1: CDA supported" in gpo


def test_text_and_numbers() -> None:
    fci = _responses("mock-msc-online.json")[1]
    text = dump(fci)
    assert '50 Application Label [9]: "MC CREDIT"' in text
    assert '5F2D Language Preference [8]: "enfresde"' in text
    assert render_value(0x9F02, bytes.fromhex("000000009000")) == "000000009000"
    assert render_value(0x9F02, bytes.fromhex("00000000900A")) == "00000000900A (not BCD)"
    assert render_value(0x50, b'A"\x01') == '"A\\x22\\x01"'


def test_unknown_tags_as_hex() -> None:
    text = dump(encode(0xDF7F, b"\x01\x02") + encode(0x9F2B, b"\xaa"))
    assert text.splitlines() == [
        "DF7F (unknown tag) [2]: 0102",
        "9F2B (unknown tag) [1]: AA",
    ]


def test_an_unknown_tag_is_scrubbed_and_a_known_one_shown_whole() -> None:
    """A PAN may hide in a proprietary tag: its digits are masked as a PAN's; a known
    tag that is not sensitive (an AID) is never masked."""
    pan = bytes.fromhex("4761739001010010")
    text = dump(encode(0xDF7F, pan) + encode(0x4F, bytes.fromhex("A0000000031010")))
    assert text.splitlines() == [
        "DF7F (unknown tag) [8]: 476173******0010",
        "4F Application Identifier (AID) - card [7]: A0000000031010",
    ]
    assert "4761739001010010" in dump(encode(0xDF7F, pan), reveal=True)


def test_kernel_specific_meaning_disables_visa_bits() -> None:
    obj = encode(0x9F6C, b"\x90\x00")
    assert "Online PIN required" in dump(obj)
    mc = dump(obj, kernel=2)
    assert "Mag-stripe Application Version Number (Card)" in mc
    assert "Online PIN required" not in mc
    assert explain(0x9F69, bytes.fromhex("9F6A04"), kernel=2) == [
        "9F6A [4] Unpredictable Number (Numeric)"
    ]
    assert explain(0x9F69, bytes.fromhex("9F6A04")) == []


def test_tvr_and_cid_explanations() -> None:
    assert explain(0x95, bytes.fromhex("8000048000")) == [
        "byte 1 bit 8: Offline data authentication was not performed",
        "byte 3 bit 3: Online PIN entered",
        "byte 4 bit 8: Transaction exceeds floor limit",
    ]
    assert explain(0x95, bytes.fromhex("0000000002")) == [
        "byte 5 bit 2: Relay resistance performed (Book C-2, code 10b)"
    ]
    assert explain(0x9F66, bytes.fromhex("24C04000")) == [
        "byte 1 bit 6: EMV mode (qVSDC) supported",
        "byte 1 bit 3: Online PIN supported",
        "byte 2 bit 8: Online cryptogram required",
        "byte 2 bit 7: CVM required",
        "byte 3 bit 7: Consumer device CVM supported",
    ]
    assert explain(0x9F27, b"\x0a") == [
        "cryptogram type: AAC",
        "advice required",
        "reason/advice code: PIN Try Limit exceeded",
    ]
    assert explain(0x9F27, b"\x40") == ["cryptogram type: TC"]


def test_malformed_explanations_do_not_raise() -> None:
    assert explain(0x94, b"\x00\x01\x01") == [
        "malformed AFL: AFL length 3 is not a multiple of 4 (at offset 0 in tag 94)"
    ]
    assert explain(0x9F38, b"\x9f")[0].startswith("malformed DOL")
    assert explain(0x8E, b"\x00") == ["malformed CVM List"]


def test_decode_failure_shows_what_was_decoded() -> None:
    raw = encode(0x9F36, b"\x00\x77") + bytes.fromhex("9F2608AABB")
    lines = dump(raw).splitlines()
    assert lines[0] == "9F36 Application Transaction Counter (ATC) [2]: 0077"
    assert lines[1].startswith("!! decoding stopped: value of 8 bytes runs past the end")


def test_accepts_tlv_objects_and_dictionary_entry_point() -> None:
    gpo = _responses("mock-visa-online.json")[2]
    objects = decode(gpo)
    assert dump(objects) == dump(gpo) == dump(objects[0]) == dictionary.dump(gpo)
    assert dump(Tlv(0x70, b"")) == "70 READ RECORD Response Message Template [0]"


@given(st.binary(max_size=120))
def test_dump_never_raises(raw: bytes) -> None:
    assert isinstance(dump(raw), str)
    assert isinstance(dump(raw, kernel=2, reveal=True), str)


_PAN = st.text(alphabet="0123456789", min_size=13, max_size=19)


@given(_PAN, st.sampled_from([0x70, 0x77]))
def test_dump_never_shows_middle_pan_digits(pan: str, template: int) -> None:
    padded = pan + "F" * (len(pan) % 2)
    track = pan + "D2512201" + "1234567890123"
    track += "F" * (len(track) % 2)
    body = encode(0x5A, bytes.fromhex(padded)) + encode(0x57, bytes.fromhex(track))
    lines = dump(encode(template, body)).splitlines()
    pan_value = lines[1].split(": ", 1)[1]
    track_value = lines[2].split(": ", 1)[1]
    assert pan_value == f"{mask_pan(pan)} (masked)"
    assert track_value.startswith(f"{mask_pan(pan)}D")
    # Positions 7 .. L-4 of the PAN are hidden in both, and nothing after the separator shows.
    for value in (pan_value, track_value):
        assert set(value[6 : len(pan) - 4]) == {"*"}
    assert set(track_value[len(pan) + 1 :].removesuffix(" (masked)")) == {"*"}
