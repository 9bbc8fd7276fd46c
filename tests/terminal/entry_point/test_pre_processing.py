"""Pre-processing, Start A (Book B §3.1.1.1-§3.1.1.13): each configuration item present
or absent, each Entry Point Pre-Processing Indicator, as the kernel receives them.

Every case is a configuration, a scripted card (one Visa application, kernel 3 of the
test kernels) and an amount; the expected record names the indicators and the copy of
the TTQ the kernel was activated with, or the outcome when no combination is allowed.
"""

from __future__ import annotations

from typing import Any

import pytest

from terminal.kernel.config import Autorun, ConfigError, parse_config
from terminal.kernel.entry_point import autorun_transaction
from tests.terminal.entry_point.harness import (
    MASTERCARD,
    VISA,
    Case,
    card,
    combo,
    config,
    entry,
    run_and_check,
)

TTQ = "36C04000"  # byte 2 bits 8 and 7 set in the configuration: pre-processing clears them
NOTHING = {
    "status_check_requested": False,
    "contactless_application_not_allowed": False,
    "zero_amount": False,
    "reader_cvm_required_limit_exceeded": False,
    "reader_contactless_floor_limit_exceeded": False,
}


def _visa_card() -> dict[str, Any]:
    return card([entry(VISA, priority="01", kernel_id="03")])


def _indicators(amount: int, **params: Any) -> dict[str, Any]:
    """The indicators the kernel is activated with for ``amount`` and ``params``."""
    case = Case(config(combo(VISA, "03", **params)), _visa_card(), amount=amount)
    data = run_and_check(case, {"activations": [{"kernel_id": "03"}]})
    indicators: dict[str, Any] = data["activations"][0]["indicators"]
    return indicators


# --- §3.1.1.2 the copy of the TTQ ---------------------------------------------------------


def test_the_ttq_copy_has_online_cryptogram_and_cvm_required_cleared() -> None:
    assert _indicators(100, ttq=TTQ) == {**NOTHING, "ttq": "36004000"}


def test_without_a_configured_ttq_the_kernel_gets_no_ttq_copy() -> None:
    assert _indicators(100) == {**NOTHING, "ttq": None}


# --- §3.1.1.3 status check ------------------------------------------------------------------


def test_status_check_on_a_single_unit_of_currency_requests_an_online_cryptogram() -> None:
    got = _indicators(100, ttq=TTQ, status_check=True)  # 1.00 EUR
    assert got == {**NOTHING, "status_check_requested": True, "ttq": "36804000"}


@pytest.mark.parametrize(
    ("amount", "status_check"), [(101, True), (200, True), (100, False), (100, None)]
)
def test_no_status_check_unless_supported_and_a_single_unit(
    amount: int, status_check: bool | None
) -> None:
    params: dict[str, Any] = {"ttq": TTQ}
    if status_check is not None:
        params["status_check"] = status_check
    got = _indicators(amount, **params)
    assert got["status_check_requested"] is False
    assert got["ttq"] == "36004000"


# --- §3.1.1.4 and §3.1.1.11 zero amount --------------------------------------------------------


@pytest.mark.parametrize("allowed", [True, None])
def test_a_zero_amount_allowed_or_unconfigured_sets_zero_amount_and_online(
    allowed: bool | None,
) -> None:
    got = _indicators(0, ttq=TTQ, zero_amount_allowed=allowed)
    assert got == {**NOTHING, "zero_amount": True, "ttq": "36804000"}


def test_a_zero_amount_not_allowed_means_try_another_interface_and_no_apdu() -> None:
    case = Case(config(combo(VISA, "03", ttq=TTQ, zero_amount_allowed=False)), _visa_card(), 0)
    run_and_check(
        case,
        {
            "exchanges": [],
            "activations": [],
            "outcome": {"outcome": "try another interface", "alternate_interface": 1},
            "ui": [("18", "processing_error")],
            "reasons": ["no combination allowed: zero amount not allowed"],
        },
    )


def test_a_zero_amount_on_an_offline_only_reader_is_not_allowed() -> None:
    case = Case(config(combo(VISA, "03", ttq="3E004000")), _visa_card(), 0)  # b1 bit 4
    run_and_check(case, {"activations": [], "outcome": {"outcome": "try another interface"}})


# --- §3.1.1.5 reader contactless transaction limit ---------------------------------------------


@pytest.mark.parametrize(("amount", "allowed"), [(9999, True), (10000, False), (10001, False)])
def test_the_transaction_limit_allows_amounts_below_it_only(amount: int, allowed: bool) -> None:
    case = Case(config(combo(VISA, "03", transaction=10000)), _visa_card(), amount)
    expected = "approved" if allowed else "try another interface"
    run_and_check(case, {"outcome": {"outcome": expected}})


def test_without_a_transaction_limit_any_amount_is_allowed() -> None:
    assert _indicators(999_999_999_999) == {**NOTHING, "ttq": None}


# --- §3.1.1.6-§3.1.1.7 and §3.1.1.9 floor limits --------------------------------------------------


@pytest.mark.parametrize(("amount", "exceeded"), [(2000, False), (2001, True)])
def test_the_reader_floor_limit_exceeded_requests_an_online_cryptogram(
    amount: int, exceeded: bool
) -> None:
    got = _indicators(amount, ttq=TTQ, floor=2000, terminal_floor=9000)
    assert got["reader_contactless_floor_limit_exceeded"] is exceeded
    assert got["ttq"] == ("36804000" if exceeded else "36004000")


@pytest.mark.parametrize(("amount", "exceeded"), [(3000, False), (3001, True)])
def test_without_reader_floor_limit_the_terminal_floor_limit_applies(
    amount: int, exceeded: bool
) -> None:
    got = _indicators(amount, ttq=TTQ, terminal_floor=3000)
    assert got["reader_contactless_floor_limit_exceeded"] is exceeded


def test_the_terminal_floor_limit_9f1b_of_the_terminal_data_applies_last() -> None:
    case = Case(
        config(combo(VISA, "03", ttq=TTQ), terminal={"9F1B": "00000BB8"}),  # 3000
        _visa_card(),
        amount=3001,
    )
    data = run_and_check(case, {"activations": [{"kernel_id": "03"}]})
    assert data["activations"][0]["indicators"]["reader_contactless_floor_limit_exceeded"]


def test_without_any_floor_limit_no_floor_limit_is_exceeded() -> None:
    got = _indicators(999_999_999, ttq=TTQ)
    assert got["reader_contactless_floor_limit_exceeded"] is False


# --- §3.1.1.8 and §3.1.1.12 reader CVM required limit ---------------------------------------


@pytest.mark.parametrize(("amount", "exceeded"), [(4999, False), (5000, True), (5001, True)])
def test_the_cvm_required_limit_reached_requires_a_cvm(amount: int, exceeded: bool) -> None:
    got = _indicators(amount, ttq=TTQ, cvm_required=5000)
    assert got["reader_cvm_required_limit_exceeded"] is exceeded
    assert got["ttq"] == ("36404000" if exceeded else "36004000")


def test_without_cvm_required_limit_no_cvm_is_required() -> None:
    assert _indicators(999_999, ttq=TTQ)["reader_cvm_required_limit_exceeded"] is False


def test_every_indicator_at_once_with_all_ttq_bits() -> None:
    got = _indicators(100, ttq=TTQ, status_check=True, floor=50, cvm_required=100)
    assert got == {
        **NOTHING,
        "status_check_requested": True,
        "reader_cvm_required_limit_exceeded": True,
        "reader_contactless_floor_limit_exceeded": True,
        "ttq": "36C04000",
    }


# --- transaction types and §3.1.1.13 ------------------------------------------------------------


def test_a_combination_without_the_transaction_type_is_left_out() -> None:
    case = Case(
        config(
            combo(VISA, "03", transaction_types=["purchase"]),
            combo(MASTERCARD, "02", transaction_types=["refund"]),
        ),
        card([entry(VISA, priority="01"), entry(MASTERCARD, priority="02")]),
        amount=1000,
        type="refund",
    )
    run_and_check(
        case,
        {
            "selects": [("2PAY.SYS.DDF01", "9000"), (MASTERCARD, "9000")],
            "activations": [{"kernel_id": "02", "transaction": {"9C": "20"}}],
        },
    )


def test_each_combination_carries_its_own_indicators() -> None:
    case = Case(
        config(
            combo(VISA, "03", ttq=TTQ, transaction=500),  # not allowed at 1000
            combo("A000000003", "03", ttq="26000000", cvm_required=1000),
        ),
        _visa_card(),
        amount=1000,
    )
    run_and_check(
        case,
        {
            "activations": [
                {
                    "combination_aid": "A000000003",
                    "indicators": {
                        **NOTHING,
                        "reader_cvm_required_limit_exceeded": True,
                        "ttq": "26400000",
                    },
                }
            ]
        },
    )


def test_no_combination_allowed_is_try_another_interface_before_any_poll() -> None:
    case = Case(
        config(combo(VISA, "03", transaction=100), combo(MASTERCARD, "02", transaction=100)),
        card([entry(VISA), entry(MASTERCARD)]),
        amount=100,
    )
    run_and_check(
        case,
        {
            "exchanges": [],
            "ui": [
                {
                    "message": "18",
                    "text": "Please insert or swipe card",
                    "status": "processing_error",
                }
            ],
            "outcome": {
                "outcome": "try another interface",
                "start": None,
                "ui_on_restart": None,
                "data_record": False,
            },
        },
    )


# --- §3.1 the configuration per transaction type, and Autorun's transaction ------------------


def test_the_same_aid_and_kernel_per_transaction_type_gives_each_type_its_limits() -> None:
    per_type = config(
        combo(VISA, "03", ttq=TTQ, transaction_types=["purchase"], cvm_required=5000),
        combo(VISA, "03", ttq=TTQ, transaction_types=["refund"], cvm_required=1000),
    )
    expected = {"purchase": False, "refund": True}
    for kind, cvm in expected.items():
        case = Case(per_type, _visa_card(), amount=2000, type=kind)
        run_and_check(
            case,
            {"activations": [{"indicators": {"reader_cvm_required_limit_exceeded": cvm}}]},
        )


@pytest.mark.parametrize(
    ("second", "problem"),
    [
        (["purchase"], "transaction type purchase"),
        (None, "transaction type cashback, purchase"),  # absent: every type
        (["refund", "cash_advance"], None),
    ],
)
def test_an_aid_and_kernel_configured_twice_must_not_share_a_transaction_type(
    second: list[str] | None, problem: str | None
) -> None:
    extra = {"transaction_types": second} if second is not None else {}
    doc = config(
        combo(VISA, "03", transaction_types=["purchase", "cashback"]), combo(VISA, "03", **extra)
    )
    if problem is None:
        assert len(parse_config(doc).combinations) == 2
        return
    with pytest.raises(ConfigError, match=problem) as caught:
        parse_config(doc)
    assert caught.value.path == "combinations[1]"


def test_the_autorun_transaction_comes_from_the_configuration() -> None:
    doc = config(combo(VISA, "03"))
    assert parse_config(doc).autorun is None
    assert autorun_transaction(parse_config(doc)) is None
    doc["autorun"] = {"type": "refund", "amount": 250}
    assert parse_config(doc).autorun == Autorun(0x20, 250, 0)
    made = autorun_transaction(parse_config(doc))
    assert made is not None
    assert (made.type, made.amount, made.other_amount) == (0x20, 250, 0)
    for bad, where in (({"type": "gift"}, "autorun.type"), ({"amount": -1}, "autorun.amount"),
                       ({"when": 1}, "autorun"), ([], "autorun")):  # fmt: skip
        doc["autorun"] = bad
        with pytest.raises(ConfigError) as caught:
            parse_config(doc)
        assert caught.value.path == where
