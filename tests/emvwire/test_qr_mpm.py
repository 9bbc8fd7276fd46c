"""Merchant-presented QR codes (EMV QRCPS-MPM): known answers, strictness, properties."""

from __future__ import annotations

import contextlib
import dataclasses
import doctest

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import emvwire.qr.mpm
from emvwire.errors import DecodeError, EmvWireError, QrError
from emvwire.qr.mpm import (
    AdditionalData,
    DataObject,
    LanguageTemplate,
    MerchantPresentedCode,
    Template,
    crc16,
)

#: The example payload of the EMV QRCPS-MPM specification: a Beijing transport
#: merchant, dynamic, 23.72 in currency 156, with an alternate-language (Chinese)
#: name and city, CRC A13A. Its objects are out of ID order (54 after 64).
SPEC_EXAMPLE = (
    "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678"
    "520441115802CN5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京"
    "540523.7253031565502016233030412340603***0708A60086670902ME"
    "91320016A0112233449988770708123456786304A13A"
)


def _with_crc(body: str) -> str:
    """``body`` (without 63) closed with its CRC, so that only the fault under test fails."""
    body += "6304"
    return f"{body}{crc16(body.encode()):04X}"


BASE = (
    "000201010211"
    "26260012net.tapstack0106M-0042"
    "52045812530397858" + "02FR5912CAFE DU PORT6009MARSEILLE"
)


# --- known answers ---------------------------------------------------------------------


def test_crc16_ccitt_false_check_value() -> None:
    # The catalogue check value of CRC-16/CCITT-FALSE (poly 1021, init FFFF).
    assert crc16(b"123456789") == 0x29B1
    assert crc16(b"") == 0xFFFF


def test_crc_of_the_specification_example_is_a13a() -> None:
    assert crc16(SPEC_EXAMPLE[:-4].encode("utf-8")) == 0xA13A


def test_specification_example_decodes() -> None:
    code = MerchantPresentedCode.decode(SPEC_EXAMPLE)
    assert code.dynamic
    assert code.amount == "23.72"
    assert code.currency == "156"
    assert code.country == "CN"
    assert (code.merchant_name, code.merchant_city) == ("BEST TRANSPORT", "BEIJING")
    assert code.merchant_category_code == "4111"
    assert code.tip_or_convenience == "01"
    assert [a.id for a in code.accounts] == ["29", "31"]
    assert [a.gui for a in code.accounts if isinstance(a, Template)] == [
        "D15600000000",
        "D15600000001",
    ]
    assert code.accounts[0].objects[1] == DataObject("05", "A93FO3230Q")
    assert code.language is not None
    assert (code.language.language, code.language.name, code.language.city) == (
        "ZH",
        "最佳运输",
        "北京",
    )
    extra = code.additional_data
    assert extra is not None
    assert (extra.store_label, extra.customer_label, extra.terminal_label) == (
        "1234",
        "***",
        "A6008667",
    )
    assert extra.consumer_data_request == "ME"
    assert extra.bill_number is None
    assert [t.id for t in code.unreserved] == ["91"]
    assert code.unreserved[0].gui == "A011223344998877"


def test_specification_example_round_trips_with_its_crc() -> None:
    code = MerchantPresentedCode.decode(SPEC_EXAMPLE)
    assert code.encode() == SPEC_EXAMPLE
    assert MerchantPresentedCode.decode(SPEC_EXAMPLE.encode("utf-8")) == code


def test_built_code_known_answer() -> None:
    code = MerchantPresentedCode(
        accounts=(Template.of("26", "net.tapstack", {"01": "M-0042"}),),
        merchant_category_code="5812",
        currency="978",
        country="FR",
        merchant_name="CAFE DU PORT",
        merchant_city="MARSEILLE",
        point_of_initiation="12",
        amount="4.50",
        additional_data=AdditionalData.of(bill_number="INV-7", terminal_label="T1"),
        language=LanguageTemplate.of("fr", "CAFÉ DU PORT"),
    )
    # Written in ID order (no decoded order), 63 last; CRC over the UTF-8 bytes.
    assert code.encode() == (
        "000201010212"
        "26260012net.tapstack0106M-0042"
        "5204581253039785404" + "4.505802FR5912CAFE DU PORT6009MARSEILLE"
        "62150105INV-70702T1"
        "64220002fr0112CAFÉ DU PORT"
        "6304E994"
    )


def test_docstring_example_runs() -> None:
    result = doctest.testmod(emvwire.qr.mpm)
    assert result.attempted > 0
    assert result.failed == 0


def test_replace_keeps_the_decoded_order_and_places_new_objects() -> None:
    code = MerchantPresentedCode.decode(SPEC_EXAMPLE)
    changed = dataclasses.replace(code, amount="1.00", postal_code="100000")
    text = changed.encode()
    assert text.startswith(SPEC_EXAMPLE[: SPEC_EXAMPLE.index("540523.72")])
    assert "54041.00" in text
    assert text.index("6106100000") < text.index("6304")
    assert MerchantPresentedCode.decode(text) == changed


# --- strict decoding: the field at fault is named ------------------------------------

MALFORMED = [
    # (payload, field, words of the message)
    pytest.param(_with_crc(BASE.replace("5204", "52A4")), "52", "length", id="length-not-digits"),
    pytest.param(_with_crc(BASE.replace("5204", "5X04")), None, "ID", id="id-not-digits"),
    pytest.param(_with_crc(BASE.replace("5204", "5200")), "52", "length 00", id="length-zero"),
    pytest.param(BASE + "6304", "63", "runs past", id="crc-value-cut"),
    pytest.param(BASE + "63", None, "cut short", id="header-cut"),
    pytest.param(_with_crc(BASE.replace("52045812", "")), "52", "missing", id="no-mcc"),
    pytest.param(_with_crc(BASE.replace("5303978", "")), "53", "missing", id="no-currency"),
    pytest.param(_with_crc(BASE.replace("5802FR", "")), "58", "missing", id="no-country"),
    pytest.param(_with_crc(BASE.replace("5912CAFE DU PORT", "")), "59", "missing", id="no-name"),
    pytest.param(_with_crc(BASE.replace("6009MARSEILLE", "")), "60", "missing", id="no-city"),
    pytest.param(
        _with_crc(BASE.replace("26260012net.tapstack0106M-0042", "")),
        "02-51",
        "merchant account",
        id="no-account",
    ),
    pytest.param(_with_crc(BASE[6:12] + BASE[:6] + BASE[12:]), "00", "first", id="00-not-first"),
    pytest.param(_with_crc(BASE) + "5405" + "10.00", "63", "last", id="63-not-last"),
    pytest.param(BASE + "63040000", "63", "does not match", id="bad-crc"),
    pytest.param(BASE + "6304abcd", "63", "upper-case", id="crc-lower"),
    pytest.param(_with_crc(BASE + "540523,72"), "54", "amount", id="amount-comma"),
    pytest.param(_with_crc(BASE + "54040.00"), "54", "above zero", id="amount-zero"),
    pytest.param(_with_crc(BASE + "5402.5"), "54", "amount", id="amount-leading-dot"),
    pytest.param(
        _with_crc(BASE.replace("5303978", "530397A")), "53", "digits", id="currency-alpha"
    ),
    pytest.param(_with_crc(BASE.replace("5303978", "53049780")), "53", "3", id="currency-long"),
    pytest.param(
        _with_crc(BASE.replace("5802FR", "5802fr")), "58", "upper-case", id="country-lower"
    ),
    pytest.param(_with_crc(BASE.replace("5802FR", "5803FRA")), "58", "2", id="country-alpha3"),
    pytest.param(_with_crc(BASE + "5903BIS"), "59", "duplicate", id="duplicate-root"),
    pytest.param(_with_crc(BASE + "62100101A0101B"), "62.01", "duplicate", id="duplicate-sub"),
    pytest.param(_with_crc(BASE + "27080104ABCD"), "27.00", "missing", id="account-no-gui"),
    pytest.param(_with_crc(BASE + "7004ABCD"), "70", "reserved", id="rfu-root"),
    pytest.param(_with_crc(BASE + "62081204ABCD"), "62.12", "reserved", id="rfu-62"),
    pytest.param(_with_crc(BASE + "56031.0"), "56", "indicator", id="fee-without-55"),
    pytest.param(_with_crc(BASE + "550203"), "57", "indicator", id="55-03-without-57"),
    pytest.param(_with_crc(BASE + "5502035703100"), "57", "percentage", id="percent-100"),
    pytest.param(_with_crc(BASE + "550204"), "55", "01, 02 or 03", id="indicator-04"),
    pytest.param(_with_crc(BASE + "64060002ZH"), "64.01", "mandatory", id="language-no-name"),
    pytest.param(_with_crc(BASE + "62070903MMA"), "62.09", "A, M and E", id="data-request"),
    pytest.param(_with_crc(BASE.replace("000201", "000202")), "00", "01", id="format-02"),
    pytest.param(_with_crc(BASE.replace("010211", "010213")), "01", "11", id="initiation-13"),
    pytest.param(_with_crc(BASE + "6104A\tBC"), "61", "0x20-0x7E", id="control-char"),
    pytest.param(_with_crc(BASE + "6203ABC"), "62", "cut short", id="template-cut"),
    pytest.param(_with_crc(BASE + "9902X1"), "99", "cut short", id="unreserved-cut"),
    pytest.param("", "00", "empty", id="empty"),
    pytest.param(BASE + "x" * 600, None, "512", id="long"),
]


@pytest.mark.parametrize(("payload", "field", "words"), MALFORMED)
def test_malformed_payload_names_its_field(payload: str, field: str | None, words: str) -> None:
    with pytest.raises(QrError) as info:
        MerchantPresentedCode.decode(payload)
    assert info.value.field == field
    assert words in info.value.message


def test_the_error_is_part_of_emvwires_tree() -> None:
    with pytest.raises(QrError) as info:
        MerchantPresentedCode.decode(BASE + "63040000")
    assert isinstance(info.value, DecodeError)
    assert isinstance(info.value, EmvWireError)
    assert isinstance(info.value, ValueError)
    assert "field 63" in str(info.value)


def test_error_offset_points_at_the_object() -> None:
    payload = _with_crc(BASE + "540523,72")
    with pytest.raises(QrError) as info:
        MerchantPresentedCode.decode(payload)
    assert payload[info.value.offset :].startswith("5405")
    payload = _with_crc(BASE + "62100101A0101B")
    with pytest.raises(QrError) as info:
        MerchantPresentedCode.decode(payload)
    assert payload[info.value.offset :].startswith("0101B")


def test_bytes_that_are_not_utf8_are_refused() -> None:
    with pytest.raises(QrError, match="UTF-8"):
        MerchantPresentedCode.decode(SPEC_EXAMPLE.encode()[:-1] + b"\xff")


def test_lone_surrogate_is_refused() -> None:
    with pytest.raises(QrError, match="surrogate"):
        MerchantPresentedCode.decode(BASE + "\ud800")


# --- encoding produces only valid payloads ----------------------------------------------


def _kwargs() -> dict[str, object]:
    return {
        "accounts": (DataObject("02", "4111111111111111"),),
        "merchant_category_code": "5812",
        "currency": "978",
        "country": "FR",
        "merchant_name": "CAFE",
        "merchant_city": "PARIS",
    }


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": "4,50"}, "54"),
        ({"currency": "EUR"}, "53"),
        ({"country": "FRA"}, "58"),
        ({"merchant_name": "X" * 26}, "59"),
        ({"point_of_initiation": "10"}, "01"),
        ({"accounts": ()}, "02-51"),
        ({"accounts": (DataObject("30", "x"),)}, "30"),
        ({"tip_or_convenience": "02"}, "56"),
        ({"merchant_city": None}, "60"),
        ({"postal_code": ""}, "61"),
    ],
)
def test_invalid_values_cannot_be_built(change: dict[str, object], field: str) -> None:
    with pytest.raises(QrError) as info:
        MerchantPresentedCode(**{**_kwargs(), **change})  # type: ignore[arg-type]
    assert info.value.field == field


def test_template_over_99_characters_cannot_be_built() -> None:
    with pytest.raises(QrError) as info:
        Template.of("26", "g" * 32, {"01": "x" * 40, "02": "y" * 40})
    assert info.value.field == "26"


def test_template_without_gui_or_out_of_range_cannot_be_built() -> None:
    with pytest.raises(QrError):
        Template("26", (DataObject("01", "x"),))
    with pytest.raises(QrError):
        Template("62", (DataObject("00", "x"),))
    with pytest.raises(QrError):
        AdditionalData.of(invoice="1")


def test_payload_over_512_characters_cannot_be_built() -> None:
    accounts = tuple(Template.of(str(n), "g" * 32, {"01": "x" * 55}) for n in range(26, 32))
    with pytest.raises(QrError, match="512"):
        MerchantPresentedCode(**{**_kwargs(), "accounts": accounts})  # type: ignore[arg-type]


# --- properties --------------------------------------------------------------------------

ANS = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
S = st.characters(blacklist_categories=("Cc", "Cs"))


def _ans(low: int, high: int) -> st.SearchStrategy[str]:
    return st.text(ANS, min_size=low, max_size=high)


@st.composite
def _templates(draw: st.DrawFn, ids: range, max_size: int) -> list[Template]:
    chosen = draw(st.lists(st.sampled_from(ids), unique=True, max_size=max_size))
    out = []
    for id_ in chosen:
        others = draw(
            st.dictionaries(
                st.integers(1, 99).map("{:02d}".format),
                st.text(S, min_size=1, max_size=20),
                max_size=2,
            )
        )
        out.append(Template.of(f"{id_:02d}", draw(_ans(1, 32)), others))
    return out


@st.composite
def codes(draw: st.DrawFn) -> MerchantPresentedCode:
    """Valid merchant-presented codes, their root objects in a random order."""
    primitive = draw(
        st.lists(
            st.builds(DataObject, st.integers(2, 25).map("{:02d}".format), _ans(1, 30)),
            max_size=2,
            unique_by=lambda o: o.id,
        )
    )
    accounts = primitive + draw(_templates(range(26, 52), 2))
    assume(accounts)
    tip = draw(
        st.sampled_from(
            [(None, None, None), ("01", None, None), ("02", "1.50", None), ("03", None, "2.5")]
        )
    )
    extra = draw(
        st.one_of(
            st.none(),
            st.builds(
                AdditionalData.of,
                bill_number=st.one_of(st.none(), _ans(1, 25)),
                terminal_label=_ans(1, 25),
                consumer_data_request=st.sampled_from([None, "A", "ME", "AME"]),
            ),
        )
    )
    language = draw(
        st.one_of(
            st.none(),
            st.builds(
                LanguageTemplate.of,
                st.from_regex(r"[a-zA-Z]{2}", fullmatch=True),
                st.text(S, min_size=1, max_size=25),
                st.one_of(st.none(), st.text(S, min_size=1, max_size=15)),
            ),
        )
    )
    kwargs = {
        "accounts": tuple(accounts),
        "merchant_category_code": draw(st.from_regex(r"[0-9]{4}", fullmatch=True)),
        "currency": draw(st.from_regex(r"[0-9]{3}", fullmatch=True)),
        "country": draw(st.from_regex(r"[A-Z]{2}", fullmatch=True)),
        "merchant_name": draw(_ans(1, 25)),
        "merchant_city": draw(_ans(1, 15)),
        "point_of_initiation": draw(st.sampled_from([None, "11", "12"])),
        "amount": draw(
            st.one_of(st.none(), st.from_regex(r"[1-9][0-9]{0,9}(\.[0-9]{2})?", fullmatch=True))
        ),
        "tip_or_convenience": tip[0],
        "convenience_fee_fixed": tip[1],
        "convenience_fee_percentage": tip[2],
        "postal_code": draw(st.one_of(st.none(), _ans(1, 10))),
        "additional_data": extra,
        "language": language,
        "unreserved": tuple(draw(_templates(range(80, 100), 1))),
    }
    try:
        code = MerchantPresentedCode(**kwargs)  # type: ignore[arg-type]
    except QrError:  # over 512 characters
        assume(False)
        raise
    present = MerchantPresentedCode.decode(code.encode()).order
    order = draw(st.permutations(present))
    return dataclasses.replace(code, order=tuple(order))


@given(codes())
@settings(max_examples=150)
def test_encode_decode_round_trip(code: MerchantPresentedCode) -> None:
    text = code.encode()
    decoded = MerchantPresentedCode.decode(text)
    assert decoded == code
    assert decoded.encode() == text
    assert text.startswith("000201")
    assert text[-8:-4] == "6304"


@given(codes(), st.data())
@settings(max_examples=100)
def test_any_single_character_change_is_caught(
    code: MerchantPresentedCode, data: st.DataObject
) -> None:
    text = code.encode()
    # An ASCII character replaced by another is a one-byte change of the UTF-8 bytes the
    # CRC covers (or of the CRC itself): CRC-16 detects every such change. Changes that
    # involve multi-byte characters are tried exhaustively on the example below.
    ascii_at = [i for i, c in enumerate(text) if c.isascii()]
    for pos in data.draw(st.lists(st.sampled_from(ascii_at), min_size=1, max_size=20)):
        new = data.draw(ANS.filter(lambda c, old=text[pos]: c != old))
        with pytest.raises(QrError):
            MerchantPresentedCode.decode(text[:pos] + new + text[pos + 1 :])


def test_every_single_character_change_of_the_example_is_caught() -> None:
    replacements = [chr(c) for c in range(0x20, 0x7F)] + ["é", "中", "京", "😀", "\n"]
    for pos, old in enumerate(SPEC_EXAMPLE):
        for new in replacements:
            if new == old:
                continue
            changed = SPEC_EXAMPLE[:pos] + new + SPEC_EXAMPLE[pos + 1 :]
            with pytest.raises(QrError):
                MerchantPresentedCode.decode(changed)


@given(st.text(max_size=600))
@settings(max_examples=1000)
def test_arbitrary_text_raises_only_qr_error(text: str) -> None:
    with contextlib.suppress(QrError):
        MerchantPresentedCode.decode(text)


@given(st.binary(max_size=600))
@settings(max_examples=500)
def test_arbitrary_bytes_raise_only_qr_error(data: bytes) -> None:
    with contextlib.suppress(QrError):
        MerchantPresentedCode.decode(data)


@given(codes(), st.data())
@settings(max_examples=100)
def test_structured_mutations_raise_only_qr_error(
    code: MerchantPresentedCode, data: st.DataObject
) -> None:
    # Mutations that keep the text close to valid (a cut, a duplicated slice, a fixed
    # CRC) reach the checks behind the CRC: they fail with QrError or decode.
    text = code.encode()[:-8]
    a = data.draw(st.integers(0, len(text)))
    b = data.draw(st.integers(a, len(text)))
    body = data.draw(st.sampled_from([text[:a] + text[b:], text[:b] + text[a:b] + text[b:]]))
    with contextlib.suppress(QrError):
        MerchantPresentedCode.decode(_with_crc(body))
