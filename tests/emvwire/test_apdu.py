"""Tests of emvwire.apdu: APDU cases, status words, EMV command builders and the AFL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emvwire import apdu
from emvwire.apdu import (
    AflEntry,
    ApduError,
    CApdu,
    RApdu,
    StatusWordError,
    command_name,
    describe_sw,
    parse_afl,
)
from emvwire.errors import DecodeError, EmvWireError

# The public transcripts of MohamedHassanNasr/emv (fixtures/transcripts/README.md).
TRANSCRIPTS = Path(__file__).parents[2] / "fixtures" / "transcripts"

# --- ISO/IEC 7816-3 cases, exact bytes ---

CASES = [
    # case 1
    (CApdu(0x00, 0x70, 0x00, 0x00), "00700000"),
    # case 2 short: Ne 1, 255, 256 (Le 00)
    (CApdu(0x00, 0xC0, 0x00, 0x00, le=1), "00C0000001"),
    (CApdu(0x00, 0xC0, 0x00, 0x00, le=255), "00C00000FF"),
    (CApdu(0x00, 0xB2, 0x01, 0x0C, le=256), "00B2010C00"),
    # case 3 short
    (CApdu(0x00, 0x20, 0x00, 0x80, bytes.fromhex("241234FFFFFFFFFF")),
     "0020008008241234FFFFFFFFFF"),
    # case 4 short
    (CApdu(0x80, 0xA8, 0x00, 0x00, b"\x83\x00", le=256), "80A8000002830000"),
    (CApdu(0x00, 0xA4, 0x04, 0x00, bytes.fromhex("A0000000031010"), le=256),
     "00A4040007A000000003101000"),
    # case 2 extended: Ne 257, 65536 (Le 0000), and Ne 256 when asked for extended
    (CApdu(0x00, 0xC0, 0x00, 0x00, le=257), "00C00000000101"),
    (CApdu(0x00, 0xC0, 0x00, 0x00, le=65536), "00C00000000000"),
    (CApdu(0x00, 0xC0, 0x00, 0x00, le=256, extended=True), "00C00000000100"),
    # case 3 extended: Nc 256 forces it; Nc 1 when asked for
    (CApdu(0x00, 0xD6, 0x00, 0x00, bytes(256)), "00D6000000" + "0100" + "00" * 256),
    (CApdu(0x00, 0xD6, 0x00, 0x00, b"\x01", extended=True), "00D600000000" + "0101"),
    # case 4 extended: Lc 00 xx xx, data, Le xx xx (no leading 00)
    (CApdu(0x00, 0x88, 0x00, 0x00, b"\x01\x02", le=65536, extended=True),
     "00880000000002" + "0102" + "0000"),
    (CApdu(0x00, 0x88, 0x00, 0x00, bytes(300), le=256), "0088000000012C" + "00" * 300 + "0100"),
]  # fmt: skip


@pytest.mark.parametrize(("command", "hexed"), CASES)
def test_encode_exact_bytes(command: CApdu, hexed: str) -> None:
    assert command.encode().hex().upper() == hexed.upper()
    assert bytes(command) == command.encode()


@pytest.mark.parametrize(("command", "hexed"), CASES)
def test_decode_exact_bytes(command: CApdu, hexed: str) -> None:
    decoded = CApdu.decode(bytes.fromhex(hexed))
    assert (decoded.cla, decoded.ins, decoded.p1, decoded.p2) == (
        command.cla,
        command.ins,
        command.p1,
        command.p2,
    )
    assert decoded.data == command.data
    assert decoded.le == command.le
    assert decoded.uses_extended == command.uses_extended
    assert decoded.encode() == command.encode()


def test_case_numbers() -> None:
    assert CApdu(0, 0, 0, 0).case == 1
    assert CApdu(0, 0, 0, 0, le=5).case == 2
    assert CApdu(0, 0, 0, 0, b"x").case == 3
    assert CApdu(0, 0, 0, 0, b"x", le=5).case == 4


@pytest.mark.parametrize(
    "hexed",
    [
        "",
        "00A404",
        "00A4040005A0000000",  # short Lc 5, only 3 bytes
        "00A4040002A0000000",  # short Lc 2, 2 bytes too many for case 3 or 4
        "00A404000000",  # 00 00: extended field cut short
        "00A40400000000AA",  # extended Lc 0
        "00A40400000002AA",  # extended Lc 2, one byte
        "00A40400000001AABB",  # extended Lc 1, one byte too many for 3E, one short of 4E
    ],
)
def test_decode_inconsistent_lengths(hexed: str) -> None:
    with pytest.raises(DecodeError):
        CApdu.decode(bytes.fromhex(hexed))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cla": 256},
        {"p1": -1},
        {"le": 0},
        {"le": 65537},
        {"data": bytes(65536)},
    ],
)
def test_invalid_fields(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = {"cla": 0, "ins": 0xA4, "p1": 4, "p2": 0}
    fields.update(kwargs)
    with pytest.raises(ApduError):
        CApdu(**fields)  # type: ignore[arg-type]


def test_repr_hides_data() -> None:
    pin_block = bytes.fromhex("241234FFFFFFFFFF")
    text = repr(CApdu(0x00, 0x20, 0x00, 0x80, pin_block))
    assert "1234" not in text
    assert text == "CApdu(00 20 00 80, Nc=8)"
    r = RApdu.decode(bytes.fromhex("700E5A0854133300896010345F3401019000"))
    assert repr(r) == "RApdu(16 bytes, SW=9000)"
    assert "5413" not in str(r)


_CAPDU = st.builds(
    CApdu,
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.one_of(st.binary(max_size=300), st.integers(65530, 65535).map(lambda n: b"\x5a" * n)),
    st.one_of(st.none(), st.integers(1, 65536)),
    st.booleans(),
)


@given(_CAPDU)
def test_capdu_round_trip(command: CApdu) -> None:
    raw = command.encode()
    back = CApdu.decode(raw)
    assert back.encode() == raw
    assert (back.cla, back.ins, back.p1, back.p2, back.data, back.le) == (
        command.cla,
        command.ins,
        command.p1,
        command.p2,
        command.data,
        command.le,
    )


@given(st.binary(max_size=600))
def test_capdu_decode_arbitrary_bytes(raw: bytes) -> None:
    try:
        command = CApdu.decode(raw)
    except DecodeError:
        return
    assert command.encode() == raw


@given(st.binary(max_size=64))
def test_rapdu_decode_arbitrary_bytes(raw: bytes) -> None:
    try:
        response = RApdu.decode(raw)
    except DecodeError:
        assert len(raw) < 2
        return
    assert response.encode() == raw
    assert response.sw == int.from_bytes(raw[-2:], "big")


# --- Responses and status words ---


def test_rapdu_properties() -> None:
    r = RApdu.decode(bytes.fromhex("6F009000"))
    assert r.data == b"\x6f\x00"
    assert (r.sw1, r.sw2, r.sw) == (0x90, 0x00, 0x9000)
    assert r.ok
    assert not r.warning
    assert r.check() is r
    warn = RApdu.decode(bytes.fromhex("6283"))
    assert not warn.ok
    assert warn.warning
    assert warn.check(accept=(0x9000, 0x6283)) is warn


def test_check_raises_status_word_error() -> None:
    r = RApdu.decode(bytes.fromhex("6A82"))
    with pytest.raises(StatusWordError) as info:
        r.check("SELECT")
    err = info.value
    assert isinstance(err, EmvWireError)
    assert (err.sw1, err.sw2, err.sw) == (0x6A, 0x82, 0x6A82)
    assert err.text == "File or application not found"
    assert str(err) == "SELECT: SW 6A82: File or application not found"


@pytest.mark.parametrize(
    ("sw", "text"),
    [
        (0x9000, "Normal processing"),
        (0x6283, "selected file deactivated"),
        (0x6285, "termination state"),
        (0x6400, "Execution error"),
        (0x6581, "memory failure"),
        (0x6700, "Wrong length"),
        (0x6881, "Logical channel not supported"),
        (0x6882, "Secure messaging not supported"),
        (0x6982, "Security status not satisfied"),
        (0x6983, "Authentication method blocked"),
        (0x6984, "Reference data not usable"),
        (0x6985, "Conditions of use not satisfied"),
        (0x6986, "no current EF"),
        (0x6A80, "Incorrect parameters in the command data field"),
        (0x6A81, "Function not supported"),
        (0x6A82, "File or application not found"),
        (0x6A83, "Record not found"),
        (0x6A84, "Not enough memory"),
        (0x6A86, "Incorrect parameters P1-P2"),
        (0x6A88, "Referenced data or reference data not found"),
        (0x6B00, "Wrong parameters P1-P2"),
        (0x6D00, "Instruction code not supported"),
        (0x6E00, "Class not supported"),
        (0x6F00, "No precise diagnosis"),
    ],
)
def test_status_word_table(sw: int, text: str) -> None:
    assert text in describe_sw(sw >> 8, sw & 0xFF)


def test_status_word_families() -> None:
    assert describe_sw(0x61, 0x1C) == (
        "Normal processing: 28 response bytes still available (GET RESPONSE)"
    )
    assert "28 data bytes available" in describe_sw(0x6C, 0x1C)
    assert "2 tries left" in describe_sw(0x63, 0xC2)
    assert "0 tries left" in describe_sw(0x63, 0xC0)
    assert "SW2 12h" in describe_sw(0x6A, 0x12)
    assert describe_sw(0x91, 0x00).startswith("Application-specific")
    assert describe_sw(0x12, 0x34) == "Unknown status word"


@given(st.integers(0, 255), st.integers(0, 255))
def test_describe_sw_total(sw1: int, sw2: int) -> None:
    assert describe_sw(sw1, sw2)


# --- EMV command builders ---


def test_select_builders_match_transcript() -> None:
    t = json.loads((TRANSCRIPTS / "mock-visa-online.json").read_text())
    assert apdu.select("2PAY.SYS.DDF01").encode() == bytes.fromhex(t["apdus"][0]["cmd"])
    aid = bytes.fromhex("A0000000031010")
    assert apdu.select(aid).encode() == bytes.fromhex(t["apdus"][1]["cmd"])
    assert apdu.select(aid, first=False).encode().hex().upper() == "00A4040207A000000003101000"


def test_select_name_length() -> None:
    with pytest.raises(ApduError):
        apdu.select(b"")
    with pytest.raises(ApduError):
        apdu.select(bytes(17))


def test_gpo_matches_transcripts() -> None:
    t = json.loads((TRANSCRIPTS / "mock-visa-online.json").read_text())
    sent = bytes.fromhex(t["apdus"][2]["cmd"])
    pdol_data = sent[7:-1]
    assert apdu.get_processing_options(pdol_data).encode() == sent
    assert apdu.get_processing_options().encode().hex().upper() == "80A8000002830000"


def test_read_record() -> None:
    assert apdu.read_record(1, 1).encode().hex().upper() == "00B2010C00"
    assert apdu.read_record(2, 1).encode().hex().upper() == "00B2011400"
    assert apdu.read_record(4, 2).encode().hex().upper() == "00B2022400"
    assert apdu.read_record(30, 255).encode().hex().upper() == "00B2FFF400"
    for sfi, rec in [(0, 1), (31, 1), (1, 0), (1, 256)]:
        with pytest.raises(ApduError):
            apdu.read_record(sfi, rec)


def test_generate_ac_matches_mastercard_transcript() -> None:
    t = json.loads((TRANSCRIPTS / "mock-msc-online.json").read_text())
    sent = bytes.fromhex(t["apdus"][-1]["cmd"])
    command = apdu.generate_ac(apdu.ARQC | apdu.CDA_REQUESTED, sent[5:-1])
    assert command.encode() == sent
    assert command.p1 == 0x90


@pytest.mark.parametrize("p1", [0xC0, 0x20, 0x01, 0xD0])
def test_generate_ac_rejects_rfu(p1: int) -> None:
    with pytest.raises(ApduError):
        apdu.generate_ac(p1, b"")


def test_other_builders() -> None:
    assert apdu.get_data(0x9F36).encode().hex().upper() == "80CA9F3600"
    assert apdu.get_data(0x9F17).encode().hex().upper() == "80CA9F1700"
    with pytest.raises(ApduError):
        apdu.get_data(0xDF8129)
    assert apdu.get_response(0x1C).encode().hex().upper() == "00C000001C"
    assert apdu.get_response(0).encode().hex().upper() == "00C0000000"
    entropy = bytes.fromhex("01020304")
    assert apdu.exchange_relay_resistance_data(entropy).encode().hex().upper() == (
        "80EA0000040102030400"
    )
    with pytest.raises(ApduError):
        apdu.exchange_relay_resistance_data(b"\x01")
    assert apdu.internal_authenticate(b"\xab\xab\xab\xab").encode().hex().upper() == (
        "0088000004ABABABAB00"
    )
    assert apdu.compute_cryptographic_checksum(b"\x00\x00\x00\x01").encode().hex().upper() == (
        "802A8E80040000000100"
    )


# --- AFL (Book 3 §10.2) ---


def test_parse_afl_mastercard_transcript() -> None:
    afl = bytes.fromhex("08010100100102011801020020010200")
    assert parse_afl(afl) == [
        AflEntry(1, 1, 1, 0),
        AflEntry(2, 1, 2, 1),
        AflEntry(3, 1, 2, 0),
        AflEntry(4, 1, 2, 0),
    ]
    entry = parse_afl(afl)[1]
    assert list(entry.records) == [1, 2]
    assert list(entry.oda_records) == [1]
    assert parse_afl(b"") == []
    # Every record of an entry may be signed.
    assert parse_afl(bytes.fromhex("08010202")) == [AflEntry(1, 1, 2, 2)]


@pytest.mark.parametrize(
    ("hexed", "offset", "message"),
    [
        ("080101", 0, "not a multiple of 4"),
        ("00010100", 0, "SFI 0"),
        ("F8010100", 0, "SFI 31"),
        ("09010100", 0, "bits 3-1"),
        ("08000100", 0, "first record number is 0"),
        ("0801010008030200", 4, "before first"),
        ("08010203", 0, "3 ODA records in an entry of 2"),
    ],
)
def test_parse_afl_invalid(hexed: str, offset: int, message: str) -> None:
    raw = bytes.fromhex(hexed)
    with pytest.raises(DecodeError, match=message) as info:
        parse_afl(raw)
    assert info.value.offset == offset


@given(st.binary(max_size=40))
def test_parse_afl_arbitrary(raw: bytes) -> None:
    try:
        entries = parse_afl(raw)
    except DecodeError:
        return
    for e in entries:
        assert 1 <= e.sfi <= 30
        assert 1 <= e.first <= e.last
        assert e.oda_count <= e.last - e.first + 1


@pytest.mark.parametrize(
    ("c_apdu", "name"),
    [
        ("00A404000E325041592E5359532E444446303100", "SELECT"),
        ("80A8000002830000", "GET PROCESSING OPTIONS"),
        ("00B2010C00", "READ RECORD"),
        ("80AE9000", "GENERATE AC"),
        ("00A8000000", "INS A8"),  # GPO is proprietary: not an interindustry command
        ("80CA9F3600", "GET DATA"),
        ("00CA9F3600", "GET DATA"),
        ("00A4", "malformed"),
    ],
)
def test_command_name_by_class_and_instruction(c_apdu: str, name: str) -> None:
    assert command_name(bytes.fromhex(c_apdu)) == name
