"""emvwire.iso8583 against messages written out in the test (tests/support/iso8583.py,
independent of the codec): both directions, the malformed ones, the contract's
messages mapped to the fields, and masking."""

from __future__ import annotations

import pytest

from emvwire import iso8583
from emvwire.contract import Decision, DeclineReason
from emvwire.iso8583 import FormatError, Message
from tests.support.iso8583 import build, ll, lll, parse

PAN = "4761739001010010"
TRACK2 = bytes.fromhex("4761739001010010D25122011143804400000F")
ICC = bytes.fromhex("9F02060000000012345F2A0209789C01005F340101")


def test_the_bitmap_and_fields_of_a_handwritten_sign_on() -> None:
    # 0800 with fields 7, 11, 41, 48, 70: primary bitmap bits 1 (secondary), 7, 11,
    # 41, 48; secondary bit 6 (field 70).
    raw = (
        b"0800"
        + bytes.fromhex("8220000000810000")
        + bytes.fromhex("0400000000000000")
        + b"1206134501" + b"000042" + b"abcdefgh" + b"011trm_x:tsk_y" + b"001"
    )  # fmt: skip
    message = iso8583.decode(raw)
    assert message.mti == "0800"
    assert message.fields == {
        7: "1206134501", 11: "000042", 41: "abcdefgh", 48: "trm_x:tsk_y", 70: "001",
    }  # fmt: skip
    assert iso8583.encode_message(message) == raw


def test_an_authorisation_both_ways() -> None:
    fields: dict[int, bytes | str] = {
        2: ll(PAN), 3: "000000", 4: "000000001234", 7: "1206134501", 11: "000042",
        35: ll("4761739001010010=25122011143804400000"), 41: "abcdefgh", 49: "978",
        55: lll(ICC),
    }  # fmt: skip
    raw = build("0100", fields)
    message = iso8583.decode(raw)
    assert message.fields[55] == ICC
    assert message.text(2) == PAN
    assert iso8583.encode_message(message) == raw
    mti, parsed = parse(iso8583.encode_message(message))
    assert (mti, parsed[55], parsed[35]) == ("0100", ICC, b"4761739001010010=25122011143804400000")


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        # The bitmap announces field 55, which is not there.
        (build("0100", {11: "000042"}, bits={11, 55}), "55"),
        # Field 55 says 300 bytes (above its 255) / 20 bytes with 14 sent.
        (build("0100", {11: "000042", 55: b"300" + ICC}), "55"),
        (build("0100", {11: "000042", 55: b"020" + ICC}), "55"),
        # A numeric field with a letter; a length that is not digits.
        (build("0100", {11: "00004A"}), "11"),
        (build("0100", {2: b"1X" + PAN.encode()}), "2"),
        # A field the specification does not define (field 5).
        (build("0100", {5: "000000000001"}), "5"),
        # Bytes after the last field.
        (build("0100", {11: "000042"}) + b"99", "11"),
        # A bitmap cut short.
        (b"0100" + bytes.fromhex("0020"), "p"),
    ],
)
def test_malformed_messages_name_the_field(raw: bytes, field: str) -> None:
    with pytest.raises(FormatError) as caught:
        iso8583.decode(raw)
    assert caught.value.mti == "0100"
    assert caught.value.field == field


def test_a_format_error_keeps_the_fields_an_answer_echoes_and_no_value() -> None:
    raw = build(
        "0100",
        {2: ll(PAN), 7: "1206134501", 11: "000042", 41: "abcdefgh", 55: b"200" + ICC},
    )
    with pytest.raises(FormatError) as caught:
        iso8583.decode(raw)
    assert caught.value.echo == {7: "1206134501", 11: "000042", 41: "abcdefgh"}
    assert PAN not in str(caught.value)
    assert ICC.hex() not in str(caught.value).lower()
    assert iso8583.salvage(raw) == caught.value.echo


def test_an_unreadable_mti() -> None:
    with pytest.raises(FormatError) as caught:
        iso8583.decode(b"01A0" + bytes(8))
    assert caught.value.mti is None
    assert iso8583.readable_mti(b"01") is None


def test_the_repr_masks_pan_track2_icc_and_the_credential() -> None:
    message = Message(
        "0100",
        {2: PAN, 35: "4761739001010010=2512201", 48: "trm_x:tsk_secret", 55: ICC},
    )
    text = repr(message)
    assert PAN not in text
    assert "2512201" not in text
    assert "tsk_secret" not in text
    assert ICC.hex() not in text.lower()
    assert "476173******0010" in text


def test_frames_mtis_and_identifiers() -> None:
    assert iso8583.frame(b"0800") == b"\x00\x040800"
    with pytest.raises(iso8583.Iso8583Error):
        iso8583.frame(bytes(iso8583.MAX_MESSAGE + 1))
    assert iso8583.response_mti("0100") == "0110"
    assert iso8583.response_mti("0101") == "0110"
    assert iso8583.response_mti("0120") == "0130"
    assert iso8583.response_mti("0800") == "0810"
    assert iso8583.response_mti("0110") is None
    assert iso8583.response_mti("0104") is None
    assert iso8583.request_id("1206134501", "000042") == "iso8583:1206134501:000042"
    data = iso8583.original_data("0100", "000042", "1206134501")
    assert data == "01000000421206134501" + "0" * 22
    assert iso8583.original_of(data) == ("0100", "000042", "1206134501")
    with pytest.raises(FormatError):
        iso8583.original_of("0100")
    assert iso8583.terminal_code("trm_abcdefghijklmnop") == "ijklmnop"


def test_track2_between_field_35_and_tag_57() -> None:
    text = iso8583.track2_field(TRACK2)
    assert text == "4761739001010010=25122011143804400000"
    assert iso8583.track2_value(text) == TRACK2
    assert iso8583.track2_value("4761739001010010D2512") == bytes.fromhex("4761739001010010D2512F")
    with pytest.raises(FormatError):
        iso8583.track2_value("47617390=01=2512")


def test_the_authorisation_request_maps_to_the_fields() -> None:
    from datetime import datetime

    message = iso8583.authorisation_message(
        ICC, TRACK2, mti="0100", stan="000042", transmitted="1206134501",
        terminal="abcdefgh", local=datetime(2026, 12, 6, 13, 45, 1),
    )  # fmt: skip
    _, fields = parse(iso8583.encode_message(message))
    assert fields[3] == b"000000"
    assert fields[4] == b"000000001234"
    assert fields[14] == b"2512"
    assert fields[22] == b"071"
    assert fields[23] == b"001"
    assert fields[49] == b"978"
    assert (fields[12], fields[13]) == (b"134501", b"1206")
    assert 2 not in fields  # field 35 carries the PAN
    assert iso8583.authorisation_of(message) == (ICC, TRACK2)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({4: "000000009999"}, "4"),
        ({49: "840"}, "49"),
        ({2: "4000000000000002"}, "2"),
        ({55: bytes.fromhex("9F0206")}, "55"),
    ],
)
def test_the_fields_must_agree_with_field_55(changes: dict[int, str | bytes], field: str) -> None:
    message = Message(
        "0100",
        {4: "000000001234", 35: "4761739001010010=2512201", 49: "978", 55: ICC},
    )
    message.fields.update(changes)
    with pytest.raises(FormatError) as caught:
        iso8583.authorisation_of(message)
    assert caught.value.field == field


def test_the_pan_and_expiry_stand_for_track_2() -> None:
    message = Message("0100", {2: PAN, 14: "2512", 55: ICC})
    assert iso8583.authorisation_of(message)[1] == bytes.fromhex("4761739001010010D2512F")
    with pytest.raises(FormatError):
        iso8583.authorisation_of(Message("0100", {55: ICC}))


def test_a_decision_travels_in_the_answer() -> None:
    request = iso8583.decode(
        build("0100", {4: "000000001234", 7: "1206134501", 11: "000042", 41: "abcdefgh",
                       49: "978", 55: lll(ICC)})
    )  # fmt: skip
    decision = Decision(
        id="txn_abcdefghijklmnop", approved=False, response_code="51", amount=1234,
        currency="EUR", status="closed", reason=DeclineReason.INSUFFICIENT_FUNDS,
        arpc="0102030405060708", issuer_authentication_data="01020304050607083531",
        par="V0010013018298108246178855912",
    )  # fmt: skip
    answer = iso8583.decision_answer(request, decision)
    mti, fields = parse(iso8583.encode_message(answer))
    assert mti == "0110"
    assert fields[39] == b"51"
    assert fields[44] == b"INSUFFICIENT_FUNDS"
    assert fields[55] == bytes.fromhex("910A01020304050607083531")
    assert fields[62] == b"txn_abcdefghijklmnop"
    assert (fields[7], fields[11], fields[41]) == (b"1206134501", b"000042", b"abcdefgh")
    assert 38 not in fields
    assert 2 not in fields
    assert 35 not in fields
    back = iso8583.decision_of(iso8583.decode(iso8583.encode_message(answer)))
    assert back.reason is DeclineReason.INSUFFICIENT_FUNDS
    assert (back.arpc, back.par, back.currency, back.amount) == (
        "0102030405060708", decision.par, "EUR", 1234,
    )  # fmt: skip


def test_an_approval_has_an_approval_code_and_a_method_2_arpc() -> None:
    request = Message("0100", {7: "1206134501", 11: "000042"})
    decision = Decision(
        id="txn_abcdefghijklmnop", approved=True, response_code="00", amount=1,
        currency="EUR", status="pending", issuer_authentication_data="0A0B0C0D00800000",
    )  # fmt: skip
    answer = iso8583.decision_answer(request, decision)
    assert answer.text(38) == "KLMNOP"
    assert iso8583.decision_of(answer).arpc == "0A0B0C0D"
    with pytest.raises(FormatError):
        iso8583.decision_of(iso8583.answer_to(request, "30"))
