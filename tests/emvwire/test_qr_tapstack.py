"""emvwire.qr.tapstack (how tapstack fills the QR codes), emvwire.qr.image (real
pictures: segno draws, zxing-cpp reads) and emvwire.country."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFilter

from emvwire.country import COUNTRIES, country_by_alpha2, country_by_numeric
from emvwire.currency import CURRENCIES, currency_by_code
from emvwire.errors import QrError
from emvwire.qr import image
from emvwire.qr.cpm import ConsumerPresentedCode
from emvwire.qr.mpm import MerchantPresentedCode
from emvwire.qr.tapstack import (
    CLOCK_SKEW,
    CODE_LIFETIME,
    amount_minor,
    amount_text,
    ans_text,
    is_fresh,
    merchant_code,
    merchant_id,
    stamp,
    stamped_at,
)

EUR = currency_by_code("EUR")
FR = country_by_alpha2("FR")
#: The CPM specification's first example (tests/emvwire/test_qr_cpm.py) and the MPM
#: specification's example, whose CRC is A13A.
CPM_EXAMPLE = "hQVDUFYwMWEaTwegAAAAVVVVVw8SNFZ4kBI0WNGRIgESNF8="
MPM_EXAMPLE = (
    "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678"
    "520441115802CN5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京"
    "540523.7253031565502016233030412340603***0708A60086670902ME"
    "91320016A0112233449988770708123456786304A13A"
)


# --- merchant-presented codes of tapstack ---------------------------------------------------


def test_a_static_code_names_the_terminal_and_the_merchant() -> None:
    code = merchant_code("term_abcdefghijklmnop", name="Café de la Gare, Besançon",
                         city="Besançon", mcc="5812", currency=EUR, country=FR)  # fmt: skip
    text = code.encode()
    assert text.startswith("000201010211" + "26410012org.tapstack0121term_abcdefghijklmnop")
    back = MerchantPresentedCode.decode(text)
    assert merchant_id(back) == "term_abcdefghijklmnop"
    assert (back.merchant_name, back.merchant_city) == ("Cafe de la Gare, Besancon", "Besancon")
    assert (back.currency, back.country, back.amount, back.dynamic) == ("978", "FR", None, False)


def test_a_dynamic_code_carries_the_amount_and_the_bill() -> None:
    code = merchant_code("term_abcdefghijklmnop", name="Shop", city="Paris", mcc="5411",
                         currency=EUR, country=FR, amount=1999, bill="B-7")  # fmt: skip
    back = MerchantPresentedCode.decode(code.encode())
    assert (back.dynamic, back.amount, amount_minor(back, EUR)) == (True, "19.99", 1999)
    assert back.additional_data is not None
    assert back.additional_data.bill_number == "B-7"
    with pytest.raises(QrError, match="amount and a bill"):
        merchant_code("term_x", name="S", city="P", mcc="5411", currency=EUR, country=FR,
                      amount=100)  # fmt: skip


def test_a_code_naming_another_network_names_no_tapstack_merchant() -> None:
    assert merchant_id(MerchantPresentedCode.decode(MPM_EXAMPLE)) is None


@pytest.mark.parametrize(
    ("minor", "alpha", "text"), [(1250, "EUR", "12.50"), (7, "EUR", "0.07"), (1250, "JPY", "1250"),
                                 (12345, "KWD", "12.345")],
)  # fmt: skip
def test_amounts_as_the_code_writes_them(minor: int, alpha: str, text: str) -> None:
    assert amount_text(minor, currency_by_code(alpha)) == text


def test_an_amount_with_more_decimals_than_the_currency_is_the_codes_fault() -> None:
    code = merchant_code("term_x", name="S", city="P", mcc="5411", currency=EUR, country=FR)
    with pytest.raises(QrError, match="54"):
        amount_minor(replace(code, amount="1.234"), EUR)


def test_ans_text_keeps_the_common_character_set() -> None:
    assert ans_text("Zoë's Café", 25) == "Zoe's Cafe"
    assert ans_text("北京", 15) == "??"
    assert ans_text("  ", 15) == "?"
    assert ans_text("A very long merchant name indeed", 25) == "A very long merchant name"


# --- the stamp of a consumer-presented code --------------------------------------------------


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2049, 12, 31)))
@settings(max_examples=200, deadline=None)
def test_a_stamp_gives_back_its_time_to_two_seconds(when: datetime) -> None:
    moment = when.replace(tzinfo=UTC)
    date, un = stamp(moment, b"\xab\xcd")
    assert un[2:] == b"\xab\xcd"
    back = stamped_at(date, un)
    assert back is not None
    assert timedelta(0) <= moment - back < timedelta(seconds=2)


def test_a_code_is_fresh_within_its_lifetime_only() -> None:
    made = datetime(2026, 12, 6, 23, 59, 58, tzinfo=UTC)
    date, un = stamp(made, b"\x00\x00")
    assert is_fresh(date, un, made)
    assert is_fresh(date, un, made + CODE_LIFETIME)  # over midnight
    assert not is_fresh(date, un, made + CODE_LIFETIME + timedelta(seconds=3))
    assert is_fresh(date, un, made - CLOCK_SKEW)
    assert not is_fresh(date, un, made - CLOCK_SKEW - timedelta(seconds=1))


@pytest.mark.parametrize(
    ("tag_9a", "tag_9f37"),
    [(b"\x26\x13\x01", b"\x00\x00\x00\x00"), (b"\x26\x12\x06", b"\xa8\xc0\x00\x00"),
     (b"\x26\x12", b"\x00\x00\x00\x00"), (b"\x2f\x12\x06", b"\x00\x00\x00\x00")],
)  # fmt: skip
def test_what_was_not_stamped_is_never_fresh(tag_9a: bytes, tag_9f37: bytes) -> None:
    assert stamped_at(tag_9a, tag_9f37) is None
    assert not is_fresh(tag_9a, tag_9f37, datetime(2026, 12, 6, tzinfo=UTC))


# --- real images --------------------------------------------------------------------------


@pytest.mark.parametrize("text", [CPM_EXAMPLE, MPM_EXAMPLE])
def test_a_code_drawn_by_segno_is_read_by_zxing(text: str) -> None:
    picture = image.png(text)
    assert picture.startswith(b"\x89PNG\r\n\x1a\n")
    assert image.read(picture) == text


def test_a_camera_frame_is_read_too() -> None:
    """The code small, off-centre, grey on a noisy background, as a JPEG."""
    code = Image.open(io.BytesIO(image.png(CPM_EXAMPLE, scale=4))).convert("L")
    frame = Image.effect_noise((640, 480), 40).point(lambda v: 120 + v // 4)
    frame.paste(code.point(lambda v: 40 if v < 128 else 220), (300, 140))
    out = io.BytesIO()
    frame.filter(ImageFilter.GaussianBlur(0.6)).save(out, "JPEG", quality=80)
    assert image.read(out.getvalue()) == CPM_EXAMPLE
    assert ConsumerPresentedCode.decode(image.read(out.getvalue())).applications


def test_what_is_not_one_code_is_refused_by_name() -> None:
    with pytest.raises(QrError, match="not an image"):
        image.read(b"GIF89a not really")
    blank = io.BytesIO()
    Image.new("L", (200, 200), 255).save(blank, "PNG")
    with pytest.raises(QrError, match="no QR code"):
        image.read(blank.getvalue())
    one = Image.open(io.BytesIO(image.png("first", scale=4)))
    two = Image.new("L", (one.width * 2 + 20, one.height), 255)
    two.paste(one, (0, 0))
    two.paste(Image.open(io.BytesIO(image.png("second", scale=4))), (one.width + 20, 0))
    both = io.BytesIO()
    two.save(both, "PNG")
    with pytest.raises(QrError, match="2 QR codes"):
        image.read(both.getvalue())


def test_the_terminal_drawing_is_half_blocks() -> None:
    drawn = image.terminal("hello")
    assert set(drawn) <= {"█", "▀", "▄", " ", "\n"}
    rows = drawn.splitlines()
    assert len({len(r) for r in rows}) == 1  # a square of whole rows
    assert len(rows) == (21 + 4 + 1) // 2  # version 1, border 2, two rows a line


# --- countries ------------------------------------------------------------------------------


def test_countries_by_number_and_alpha2() -> None:
    assert country_by_numeric("0250") is country_by_numeric(250) is COUNTRIES["FR"]
    assert country_by_numeric(bytes.fromhex("0826")).alpha2 == "GB"
    assert FR.code == bytes.fromhex("0250")
    for country in COUNTRIES.values():
        assert country.currency in CURRENCIES
    for bad in ("abc", "99999", "0999"):
        with pytest.raises(ValueError, match=r"country|numeric"):
            country_by_numeric(bad)
    with pytest.raises(ValueError, match="knows"):
        country_by_alpha2("XX")


def test_the_readmes_picture_is_a_code_tapstack_made() -> None:
    """docs/qr-example.png (scripts/qr_example.py) reads back as the example merchant's
    static code, made by merchant_code."""
    picture = Path(__file__).resolve().parents[2] / "docs" / "qr-example.png"
    text = image.read(picture.read_bytes())
    made = merchant_code("term_exampleexample23", name="Cafe du Port", city="Marseille",
                         mcc="5812", currency=EUR, country=FR)  # fmt: skip
    assert text == made.encode()
    assert text.endswith("6304AB94")
    assert merchant_id(MerchantPresentedCode.decode(text)) == "term_exampleexample23"
