"""emvwire.currency: the ISO 4217 table as 5F2A carries it, amounts in minor units."""

from __future__ import annotations

import pytest

from emvwire.currency import (
    CURRENCIES,
    MAX_AMOUNT,
    Currency,
    currency_by_code,
    format_amount,
    parse_amount,
)


def test_amounts_and_currencies() -> None:
    assert parse_amount("12.34") == 1234
    assert parse_amount("12") == 1200
    assert parse_amount("1000", 0) == 1000
    assert parse_amount("1.005", 3) == 1005
    for bad in ("12.345", "-1", "abc", "nan", "1e20", "1e3", "+5", "1_000", "12.", ".5",
                "\u0661\u0662", "12.340", "Infinity"):  # fmt: skip
        with pytest.raises(ValueError, match=r"amount|decimals|carry"):
            parse_amount(bad)
    with pytest.raises(ValueError, match=r"write digits with at most 2 decimals, e\.g\. 12\.34"):
        parse_amount("1e3")
    with pytest.raises(ValueError, match=r"e\.g\. 12$"):
        parse_amount("1.5", 0)
    assert currency_by_code("eur").code == bytes.fromhex("0978")
    assert currency_by_code("978").alpha == "EUR"
    assert currency_by_code(bytes.fromhex("0392")).exponent == 0
    assert currency_by_code("999").exponent == 2  # unknown number: two decimals
    with pytest.raises(ValueError, match="unknown currency"):
        currency_by_code("XXX")


def test_the_5f2a_value_is_the_numeric_code_in_bcd() -> None:
    assert CURRENCIES["AUD"].code == bytes.fromhex("0036")
    assert CURRENCIES["AUD"].number == "036"
    assert {c.numeric for c in CURRENCIES.values()} == {
        int(c.code.hex()) for c in CURRENCIES.values()
    }
    assert len({c.numeric for c in CURRENCIES.values()}) == len(CURRENCIES)


def test_format_amount() -> None:
    assert format_amount(-1234, CURRENCIES["EUR"]) == "-12.34 EUR"
    assert format_amount(5, CURRENCIES["JPY"]) == "5 JPY"
    assert format_amount(1005, CURRENCIES["KWD"]) == "1.005 KWD"
    assert format_amount(MAX_AMOUNT, Currency("XTS", 963, 2)) == "9999999999.99 XTS"
