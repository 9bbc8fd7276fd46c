"""Consumer-presented QR codes (EMV QRCPS-CPM): known answers, strictness, properties."""

from __future__ import annotations

import base64
import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emvwire import tlv
from emvwire.contract import FIELD_55_REQUIRED
from emvwire.crypto import CryptogramData, Cvn, generate_arqc, verify_arqc
from emvwire.crypto.kdf import derive_icc_mk_b
from emvwire.errors import DecodeError, QrError
from emvwire.qr.cpm import Application, CommonData, ConsumerPresentedCode
from emvwire.tags import Tag

H = bytes.fromhex

#: The two example codes of the EMV QRCPS-CPM specification (as public
#: implementations reproduce them): one application with track 2 equivalent data, and
#: two applications ("Product1", "Product2") sharing a common data template with the
#: PAN, the cardholder name, the language preference and a cryptogram.
SPEC_EXAMPLE_1 = "hQVDUFYwMWEaTwegAAAAVVVVVw8SNFZ4kBI0WNGRIgESNF8="
SPEC_EXAMPLE_2 = (
    "hQVDUFYwMWETTwegAAAAVVVVUAhQcm9kdWN0MWETTwegAAAAZmZmUAhQcm9kdWN0MmJJWggSNFZ4kBI0"
    "WF8gDkNBUkRIT0xERVIvRU1WXy0IcnVlc2RlZW5kIZ8QBwYBCgMAAACfJghYT9OF+iNLzJ82AgABnzcE"
    "bVjvEw=="
)

# The published CVN 18 vector of emvwire.crypto.cryptogram's docstring: issuer master
# key 0123456789ABCDEFFEDCBA9876543210, PAN 1234567890123456, PSN 00 (Option B).
IMK = H("0123456789ABCDEFFEDCBA9876543210")
PAN = "1234567890123456"
TRACK2 = H("1234567890123456D2512201000000000F")
#: The till's data, as a terminal puts it in field 55 beside the card's.
TERMINAL = {
    Tag.AMOUNT_AUTHORISED: H("000000004000"),
    Tag.AMOUNT_OTHER: bytes(6),
    Tag.TERMINAL_COUNTRY_CODE: H("0124"),
    Tag.TVR: H("8000048000"),
    Tag.TRANSACTION_CURRENCY_CODE: H("0124"),
    Tag.TRANSACTION_DATE: H("191105"),
    Tag.TRANSACTION_TYPE: H("01"),
}
CARD = {
    Tag.UNPREDICTABLE_NUMBER: H("52BF4585"),
    Tag.AIP: H("1800"),
    Tag.ATC: H("001C"),
    Tag.IAD: H("06011203A0B800"),
}
#: The known-answer code: Visa AID, label, track 2 and the transparent template with
#: the ARQC 7A788EA6B8A3E733, CID 80, IAD, ATC, UN and AIP.
KNOWN_HEX = (
    "8505435056303161544F07A0000000031010500B5649534120435245444954"
    "57111234567890123456D2512201000000000F"
    "6329"
    "9F26087A788EA6B8A3E733"
    "9F270180"
    "9F100706011203A0B800"
    "9F3602001C"
    "9F370452BF4585"
    "82021800"
)
KNOWN_BASE64 = (
    "hQVDUFYwMWFUTwegAAAAAxAQUAtWSVNBIENSRURJVFcREjRWeJASNFbSUSIBAAAAAA9jKZ8mCHp4jqa4"
    "o+cznycBgJ8QBwYBEgOguACfNgIAHJ83BFK/RYWCAhgA"
)


def _cryptogram_data(values: dict[int, bytes]) -> CryptogramData:
    return CryptogramData(
        tag_9f02=values[Tag.AMOUNT_AUTHORISED],
        tag_9f03=values[Tag.AMOUNT_OTHER],
        tag_9f1a=values[Tag.TERMINAL_COUNTRY_CODE],
        tag_95=values[Tag.TVR],
        tag_5f2a=values[Tag.TRANSACTION_CURRENCY_CODE],
        tag_9a=values[Tag.TRANSACTION_DATE],
        tag_9c=values[Tag.TRANSACTION_TYPE],
        tag_9f37=values[Tag.UNPREDICTABLE_NUMBER],
        tag_82=values[Tag.AIP],
        tag_9f36=values[Tag.ATC],
        tag_9f10=values[Tag.IAD],
    )


def _known_code() -> ConsumerPresentedCode:
    mk = derive_icc_mk_b(IMK, PAN)
    arqc = generate_arqc(Cvn.VISA_18, mk, _cryptogram_data({**TERMINAL, **CARD}))
    assert arqc == H("7A788EA6B8A3E733")
    data = {
        Tag.APPLICATION_CRYPTOGRAM: arqc,
        Tag.CID: H("80"),
        Tag.IAD: CARD[Tag.IAD],
        Tag.ATC: CARD[Tag.ATC],
        Tag.UNPREDICTABLE_NUMBER: CARD[Tag.UNPREDICTABLE_NUMBER],
        Tag.AIP: CARD[Tag.AIP],
    }
    app = Application.of(H("A0000000031010"), label="VISA CREDIT", track2=TRACK2, data=data)
    return ConsumerPresentedCode((app,))


# --- known answers ---------------------------------------------------------------------


def test_specification_example_1_decodes_and_round_trips() -> None:
    code = ConsumerPresentedCode.decode(SPEC_EXAMPLE_1)
    assert len(code.applications) == 1
    assert code.applications[0].aid == H("A0000000555555")
    assert code.track2() == H("1234567890123458D191220112345F")
    assert code.common is None
    assert code.encode() == SPEC_EXAMPLE_1


def test_specification_example_2_decodes_and_round_trips() -> None:
    code = ConsumerPresentedCode.decode(SPEC_EXAMPLE_2)
    assert [a.aid for a in code.applications] == [H("A0000000555555"), H("A0000000666666")]
    assert [a.label for a in code.applications] == ["Product1", "Product2"]
    assert code.common is not None
    assert code.pan(1) == H("1234567890123458")
    assert code.common.get(Tag.CARDHOLDER_NAME) == b"CARDHOLDER/EMV"
    assert code.common.get(Tag.LANGUAGE_PREFERENCE) == b"ruesdeen"
    assert code.common.data == {
        Tag.IAD: H("06010A03000000"),
        Tag.APPLICATION_CRYPTOGRAM: H("584FD385FA234BCC"),
        Tag.ATC: H("0001"),
        Tag.UNPREDICTABLE_NUMBER: H("6D58EF13"),
    }
    assert code.encode() == SPEC_EXAMPLE_2


def test_known_answer_code_from_a_published_cryptogram() -> None:
    code = _known_code()
    assert base64.b64decode(KNOWN_BASE64) == H(KNOWN_HEX)
    assert code.encode() == KNOWN_BASE64
    assert ConsumerPresentedCode.decode(KNOWN_BASE64) == code


def test_icc_data_is_field_55_the_issuer_verifies() -> None:
    code = ConsumerPresentedCode.decode(KNOWN_BASE64)
    field_55 = code.icc_data(terminal=TERMINAL)
    objects = tlv.decode(field_55)
    tags = [o.tag for o in objects]
    # The contract's order: cryptogram, CID, IAD, UN, ATC, TVR, ... and the DF name.
    assert tags[:5] == [
        Tag.APPLICATION_CRYPTOGRAM,
        Tag.CID,
        Tag.IAD,
        Tag.UNPREDICTABLE_NUMBER,
        Tag.ATC,
    ]
    values = tlv.decode_flat(field_55)
    assert set(FIELD_55_REQUIRED) <= set(values)
    assert values[Tag.DF_NAME] == H("A0000000031010")
    # The issuer's check: the ARQC verifies under the card's key from field 55 alone.
    mk = derive_icc_mk_b(IMK, PAN)
    verify_arqc(Cvn.VISA_18, mk, _cryptogram_data(values), values[Tag.APPLICATION_CRYPTOGRAM])
    assert code.track2() == TRACK2


def test_icc_data_without_terminal_data_has_the_codes_own() -> None:
    code = ConsumerPresentedCode.decode(SPEC_EXAMPLE_2)
    values = tlv.decode_flat(code.icc_data(1))
    assert values == {
        Tag.APPLICATION_CRYPTOGRAM: H("584FD385FA234BCC"),
        Tag.IAD: H("06010A03000000"),
        Tag.UNPREDICTABLE_NUMBER: H("6D58EF13"),
        Tag.ATC: H("0001"),
        Tag.DF_NAME: H("A0000000666666"),
    }


def test_icc_data_refuses_a_till_that_contradicts_the_code() -> None:
    code = ConsumerPresentedCode.decode(KNOWN_BASE64)
    with pytest.raises(QrError) as info:
        code.icc_data(terminal={**TERMINAL, Tag.ATC: H("001D")})
    assert info.value.field == "terminal.9F36"


# --- strict decoding -------------------------------------------------------------------


def _b64(hex_: str) -> str:
    return base64.b64encode(H(hex_)).decode()


PFI = "85054350563031"  # 85 "CPV01"
AID = "4F07A0000000031010"
T2 = "57021234"
APP = "610D" + AID + T2  # a 61 with an AID and a (short) track 2
MALFORMED = [
    pytest.param("not base64!", None, "not Base64", id="not-base64"),
    pytest.param(SPEC_EXAMPLE_2.rstrip("="), None, "not Base64", id="padding-missing"),
    pytest.param(SPEC_EXAMPLE_1[:-2] + "9=", None, "canonical", id="non-canonical-bits"),
    pytest.param(SPEC_EXAMPLE_1 + "\n", None, "not Base64", id="newline"),
    pytest.param("é", None, "ASCII", id="non-ascii"),
    pytest.param(_b64(PFI + "61"), "61", "not BER-TLV", id="truncated"),
    pytest.param(_b64("85810543505630316109" + AID), "85", "shortest", id="long-length"),
    pytest.param(_b64("00" + PFI + "6109" + AID), "85", "shortest", id="padding-before"),
    pytest.param(_b64(PFI + "610E" + AID + T2 + "00"), "61", "shortest", id="padding-inside"),
    pytest.param(_b64("8505435056303261" + "0D" + AID + T2), "85", "CPV01", id="wrong-indicator"),
    pytest.param(_b64("610D" + AID + T2 + PFI), "85", "first", id="85-not-first"),
    pytest.param(
        _b64(PFI + "6204" + T2 + "6109" + AID), "61", "after the common", id="62-before-61"
    ),
    pytest.param(_b64(PFI + APP + "6204" + T2 + "6204" + T2), "62", "second", id="two-62"),
    pytest.param(_b64(PFI + APP + "5A021234"), "5A", "top", id="tag-at-top"),
    pytest.param(_b64(PFI + "6104" + T2), "61.4F", "AID", id="no-aid"),
    pytest.param(_b64(PFI + "6108" + "4F02A000" + T2), "61.4F", "bytes", id="aid-short"),
    pytest.param(_b64(PFI + "6111" + AID + T2 + T2), "61.57", "twice", id="tag-twice"),
    pytest.param(_b64(PFI + "6109" + AID), "61", "neither", id="no-track2-or-pan"),
    pytest.param(
        _b64(PFI + "6114" + "9F2608" + "00" * 8 + AID),
        "61.9F26",
        "does not belong",
        id="cryptogram-outside-63",
    ),
    pytest.param(
        _b64(PFI + "6113" + AID + T2 + "6304" + "70020000"),
        "61.63.70",
        "template inside",
        id="template-in-63",
    ),
    pytest.param(
        _b64(PFI + "6112" + AID + T2 + "6303" + "9F3601"), "9F36", "not BER-TLV", id="bad-63"
    ),
    pytest.param(_b64(PFI + "6100"), "61.4F", "AID", id="empty-61"),
    pytest.param(
        _b64(PFI + "6111" + AID + T2 + "500201FF"), "61.50", "0x20-0x7E", id="label-binary"
    ),
    pytest.param(_b64(PFI + APP + "6200"), "62", "holds data objects", id="empty-62"),
    pytest.param("", "85", "first", id="empty"),
]


@pytest.mark.parametrize(("text", "field", "words"), MALFORMED)
def test_malformed_code_names_its_field(text: str, field: str | None, words: str) -> None:
    with pytest.raises(QrError) as info:
        ConsumerPresentedCode.decode(text)
    assert info.value.field == field
    assert words in info.value.message
    assert isinstance(info.value, DecodeError)


def test_errors_and_reprs_never_show_the_pan() -> None:
    code = ConsumerPresentedCode.decode(KNOWN_BASE64)
    assert PAN not in repr(code)
    assert TRACK2.hex() not in repr(code).lower()
    duplicate = H(
        KNOWN_HEX.replace("6154", "6167").replace("63299F", "5711" + TRACK2.hex() + "63299F")
    )
    with pytest.raises(QrError) as info:
        ConsumerPresentedCode.decode(base64.b64encode(duplicate).decode())
    assert info.value.field == "61.57"
    assert PAN not in str(info.value)


# --- encoding produces only valid codes ------------------------------------------------


def test_invalid_codes_cannot_be_built() -> None:
    with pytest.raises(QrError):
        ConsumerPresentedCode(())
    with pytest.raises(QrError, match="neither"):
        ConsumerPresentedCode((Application.of(H("A0000000031010")),))
    with pytest.raises(QrError):
        Application.of(H("A000"), track2=TRACK2)
    with pytest.raises(QrError):
        Application.of(H("A0000000031010"), pan=H("12") * 11)
    with pytest.raises(QrError) as info:
        Application.of(H("A0000000031010"), track2=TRACK2, label="CAFÉ")
    assert info.value.field == "61.50"
    with pytest.raises(QrError) as info:
        Application.of(H("A0000000031010"), track2=TRACK2, more={Tag.PAR: b"\x00" * 29})
    assert info.value.field == "61.9F24"
    with pytest.raises(QrError):
        CommonData(())
    common = CommonData.of(pan=H("1234567890123458"))
    assert ConsumerPresentedCode((Application.of(H("A0000000031010")),), common).pan() == H(
        "1234567890123458"
    )


# --- properties --------------------------------------------------------------------------

_TRANSPARENT = st.dictionaries(
    st.sampled_from(
        [Tag.APPLICATION_CRYPTOGRAM, Tag.CID, Tag.IAD, Tag.ATC, Tag.UNPREDICTABLE_NUMBER, Tag.AIP]
    ),
    st.binary(min_size=1, max_size=32),
    max_size=6,
)


@st.composite
def codes(draw: st.DrawFn) -> ConsumerPresentedCode:
    """Valid consumer-presented codes: applications, with or without common data."""
    common = draw(
        st.one_of(
            st.none(),
            st.builds(
                CommonData.of,
                pan=st.binary(min_size=1, max_size=10),
                cardholder_name=st.one_of(
                    st.none(), st.from_regex(r"[A-Z/ ]{2,26}", fullmatch=True)
                ),
                data=_TRANSPARENT,
            ),
        )
    )
    apps = draw(
        st.lists(
            st.builds(
                Application.of,
                st.binary(min_size=5, max_size=16),
                label=st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9 ]{1,16}", fullmatch=True)),
                track2=st.binary(min_size=1, max_size=19)
                if common is None
                else st.one_of(st.none(), st.binary(min_size=1, max_size=19)),
                data=_TRANSPARENT,
            ),
            min_size=1,
            max_size=3,
        )
    )
    return ConsumerPresentedCode(tuple(apps), common)


@given(codes())
@settings(max_examples=200)
def test_encode_decode_round_trip(code: ConsumerPresentedCode) -> None:
    text = code.encode()
    decoded = ConsumerPresentedCode.decode(text)
    assert decoded == code
    assert decoded.encode() == text


@given(st.binary(max_size=300))
@settings(max_examples=1000)
def test_arbitrary_data_raises_only_qr_error(data: bytes) -> None:
    with contextlib.suppress(QrError):
        ConsumerPresentedCode.decode(base64.b64encode(data))


@given(st.text(max_size=300))
@settings(max_examples=500)
def test_arbitrary_text_raises_only_qr_error(text: str) -> None:
    with contextlib.suppress(QrError):
        ConsumerPresentedCode.decode(text)


@given(codes(), st.data())
@settings(max_examples=200)
def test_changed_bytes_raise_only_qr_error(
    code: ConsumerPresentedCode, data: st.DataObject
) -> None:
    raw = bytearray(base64.b64decode(code.encode()))
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] = data.draw(st.integers(0, 255))
    with contextlib.suppress(QrError):
        ConsumerPresentedCode.decode(base64.b64encode(bytes(raw)))
