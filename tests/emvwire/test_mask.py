"""Tests of emvwire.mask: the PAN rule, track images, tag values and free-text scrubbing."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emvwire.mask import (
    MASK_STRATEGIES,
    is_sensitive,
    mask_pan,
    mask_track1,
    mask_track2,
    mask_value,
    pan_reveal,
    scrub,
)


@pytest.mark.parametrize(
    ("pan", "masked"),
    [
        ("5413330089010434", "541333******0434"),
        ("4761739001010010", "476173******0010"),
        ("4111111111111111111", "411111*********1111"),
        ("41111111111111111", "411111*******1111"),
        ("371449635398431", "371********8431"),  # 15 digits: 3 + 4 shown
        ("36148900647913", "361*******7913"),  # 14 digits: 3 + 4 shown
        ("4222222222223", "42*******2223"),  # 13 digits: 2 + 4 shown
        ("123456789012", "********9012"),  # 12 digits: last 4 only
        ("12345678", "****5678"),
        ("1234567", "****567"),
        ("123456", "***456"),
        ("1234", "**34"),
        ("12", "*2"),
        ("1", "*"),
        ("", ""),
    ],
)
def test_mask_pan_table(pan: str, masked: str) -> None:
    assert mask_pan(pan) == masked


def test_mask_pan_from_tag_5a_bytes_drops_f_padding() -> None:
    # 5A of an odd-length PAN is padded with F (format cn, Book 3 Annex A).
    assert mask_pan(bytes.fromhex("4111111111111111111F")) == "411111*********1111"
    assert mask_pan(bytes.fromhex("5413330089010434")) == "541333******0434"


@pytest.mark.parametrize("junk", ["5413 3300 8901 0434", "54133300890104AB", "ABCDEF", "5413-33"])
def test_mask_pan_non_digits_fully_masked(junk: str) -> None:
    out = mask_pan(junk)
    assert set(out) == {"*"}
    assert len(out) == len(junk.strip().rstrip("Ff"))


def test_pan_reveal_never_more_than_half_below_16() -> None:
    for length in range(1, 16):
        first, last = pan_reveal(length)
        assert first + last <= length // 2
    for length in range(16, 40):
        assert pan_reveal(length) == (6, 4)


@given(st.text(alphabet="0123456789", min_size=1, max_size=40))
def test_mask_pan_property_hides_middle(pan: str) -> None:
    out = mask_pan(pan)
    assert len(out) == len(pan)
    shown = [i for i, c in enumerate(out) if c != "*"]
    # Shown characters are the PAN's own digits at the same positions.
    assert all(out[i] == pan[i] for i in shown)
    assert len(shown) <= 10
    if len(pan) < 16:
        assert len(shown) <= len(pan) // 2
    # Positions 7 .. L-4 (the account number proper) are always hidden.
    assert all(out[i] == "*" for i in range(6, max(6, len(pan) - 4)))


def test_mask_track2_tag_57_bytes() -> None:
    value = bytes.fromhex("4761739001010010D22122011143844489")
    assert mask_track2(value) == "476173******0010D" + "*" * 17


def test_mask_track2_drops_pad_and_hides_expiry() -> None:
    value = bytes.fromhex("5413330089010434D25122010000000000000F")
    out = mask_track2(value)
    assert out == "541333******0434D" + "*" * 20
    assert "2512" not in out


def test_mask_track2_magstripe_text_with_equals() -> None:
    assert mask_track2(";4111111111111111=25121010000012300000?") == (
        "411111******1111=" + "*" * 20
    )


@pytest.mark.parametrize("value", ["", "4111111111111111", "41111X11111111D2512", "D2512"])
def test_mask_track2_odd_shapes_do_not_leak(value: str) -> None:
    out = mask_track2(value)
    assert "1111111" not in out
    assert "2512" not in out


def test_mask_track1() -> None:
    value = b"B5413330089010434^MASTERCARD/TEST^2512201000000000000"
    assert mask_track1(value) == "B541333******0434^" + "*" * 15 + "^" + "*" * 19
    assert mask_track1("%" + value.decode() + "?").startswith("B541333******0434^")


@pytest.mark.parametrize("value", [b"", b"garbage", b"B54133300890^only-two", b"^x^y"])
def test_mask_track1_odd_shapes_fully_masked(value: bytes) -> None:
    assert set(mask_track1(value)) <= {"*"}


def test_mask_value_by_tag() -> None:
    assert mask_value(0x5A, bytes.fromhex("5413330089010434")) == "541333******0434"
    assert mask_value(0x5F20, b"VISA CREDIT/CARDHOLDER") == "*" * 22
    assert mask_value(0x99, bytes.fromhex("0412AC89ABCDEF67")) == "*" * 16
    assert mask_value(0x9F20, bytes.fromhex("1234")) == "****"
    # Not sensitive: plain hex.
    assert mask_value(0x9F26, bytes.fromhex("48325309BE82CBA2")) == "48325309BE82CBA2"
    assert mask_value(0x82, b"\x20\x00") == "2000"


@given(st.binary(max_size=64), st.sampled_from(sorted(MASK_STRATEGIES)))
def test_mask_value_never_raises_on_sensitive_tags(value: bytes, tag: int) -> None:
    out = mask_value(tag, value)
    assert isinstance(out, str)
    assert is_sensitive(tag)


@given(st.text(alphabet="0123456789", min_size=13, max_size=19))
def test_mask_value_5a_and_57_hide_middle_digits(pan: str) -> None:
    padded = pan + "F" * (len(pan) % 2)
    out = mask_value(0x5A, bytes.fromhex(padded))
    assert out == mask_pan(pan)
    track = pan + "D2512201" + "0" * 13
    track += "F" * (len(track) % 2)
    out2 = mask_value(0x57, bytes.fromhex(track))
    assert out2.startswith(mask_pan(pan) + "D")
    assert set(out2[len(pan) + 1 :]) == {"*"}


def test_scrub_free_text() -> None:
    line = "PAN=5413330089010434 T2=5413330089010434D25122010000000000000F amount 000000009000"
    out = scrub(line)
    assert "5413330089010434" not in out
    assert "541333******0434" in out
    assert "D2512" not in out
    assert "000000009000" not in out  # 12 digits: over-masked on purpose
    assert scrub("ATC 0077, ARQC 48325309BE82CBA2") == "ATC 0077, ARQC 48325309BE82CBA2"


_NOISE = st.text(alphabet=string.ascii_letters + string.punctuation + " é", max_size=20)


@given(st.text(alphabet="0123456789", min_size=12, max_size=19), _NOISE, _NOISE)
def test_scrub_property(pan: str, before: str, after: str) -> None:
    assert scrub(f"{before} {pan} {after}") == f"{before} {mask_pan(pan)} {after}"
