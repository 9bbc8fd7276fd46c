"""The pure decisions of kernel 2 (terminal/kernel/k2/rules.py), rule by rule."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from emvwire.apdu import AAC, ARQC, TC
from emvwire.errors import DecodeError
from terminal.kernel.k2.rules import (
    RelayCardData,
    RelayLimits,
    RelayVerdict,
    Tvr,
    action_analysis,
    brand_consistent,
    judge_relay,
    parse_date,
    parse_relay_response,
    processing_restrictions,
    select_cvm,
    terminal_capabilities,
)
from terminal.kernel.transaction import Cvm

H = bytes.fromhex

# --- TVR -------------------------------------------------------------------------------


def test_tvr_bits_and_relay_resistance_field() -> None:
    tvr = Tvr()
    tvr.set("cda_failed")
    tvr.set("online_pin_entered")
    tvr.set("relay_resistance_time_limits_exceeded")
    tvr.set_relay_resistance(0b10)
    assert tvr.value == H("0400040006")
    tvr.set_relay_resistance(0b01)
    assert tvr.value == H("0400040005")
    assert tvr.names() == [
        "cda_failed",
        "online_pin_entered",
        "relay_resistance_time_limits_exceeded",
    ]
    assert tvr.has("cda_failed")
    assert not tvr.has("sda_failed")


# --- terminal capabilities ---------------------------------------------------------------

KD = {0xDF8117: H("00"), 0xDF8118: H("60"), 0xDF8119: H("08"), 0xDF811F: H("08")}


@pytest.mark.parametrize(
    ("required", "expected"), [(None, "000008"), (True, "006008"), (False, "000808")]
)
def test_terminal_capabilities_byte_2_follows_the_cvm_requirement(
    required: bool | None, expected: str
) -> None:
    assert terminal_capabilities(KD, cvm_required=required, configured=H("E068C8")) == H(expected)


def test_terminal_capabilities_without_c2_objects_use_the_configured_value() -> None:
    caps = terminal_capabilities({0xDF8118: H("40")}, cvm_required=True, configured=H("E068C8"))
    assert caps == H("E040C8")
    assert terminal_capabilities({}, cvm_required=True, configured=H("E068C8")) == H("E068C8")


# --- processing restrictions -------------------------------------------------------------

CARD = {
    0x9F08: H("0002"),
    0x9F07: H("FF00"),
    0x5F28: H("0250"),
    0x5F25: H("251201"),
    0x5F24: H("301231"),
}


def restrictions(card: dict[int, bytes] | None = None, **kw: Any) -> list[str]:
    args: dict[str, Any] = {
        "terminal_version": H("0002"),
        "terminal_country": H("0250"),
        "terminal_type": H("22"),
        "additional_capabilities": H("6000F0A001"),
        "transaction_type": 0x00,
        "other_amount": 0,
        "today": date(2026, 3, 14),
    }
    args.update(kw)
    return processing_restrictions(CARD if card is None else card, **args)


def test_restrictions_pass_for_a_valid_card() -> None:
    assert restrictions() == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"terminal_version": H("0003")}, ["different_application_versions"]),
        ({"today": date(2031, 1, 1)}, ["expired_application"]),
        ({"today": date(2025, 11, 30)}, ["application_not_yet_effective"]),
        ({"today": date(2030, 12, 31)}, []),  # the last valid day
    ],
)
def test_restrictions_dates_and_versions(change: dict[str, Any], expected: list[str]) -> None:
    assert restrictions(**change) == expected


@pytest.mark.parametrize(
    ("auc", "country", "txn_type", "other", "allowed"),
    [
        ("FF00", "0250", 0x00, 0, True),
        ("FF00", "0250", 0x09, 100, False),  # cashback not allowed
        ("FF80", "0250", 0x09, 100, True),  # domestic cashback allowed
        ("FF80", "0056", 0x09, 100, False),  # ... but not abroad
        ("AB00", "0056", 0x00, 0, False),  # 1010 1011: no international goods/services
        ("AB00", "0250", 0x00, 0, True),  # domestic goods allowed
        ("7F00", "0250", 0x01, 0, False),  # no domestic cash
        ("FE00", "0250", 0x00, 0, False),  # not valid at terminals other than ATMs
        ("FF", "0250", 0x00, 0, False),  # malformed AUC
    ],
)
def test_application_usage_control(
    auc: str, country: str, txn_type: int, other: int, allowed: bool
) -> None:
    card = {**CARD, 0x9F07: H(auc)}
    got = restrictions(card, terminal_country=H(country), transaction_type=txn_type,
                       other_amount=other)  # fmt: skip
    assert (got == []) is allowed


def test_auc_at_an_atm_needs_the_atm_bit() -> None:
    card = {**CARD, 0x9F07: H("C100")}  # cash, terminals other than ATMs only
    assert restrictions(card, terminal_type=H("14"), additional_capabilities=H("8000000000"),
                        transaction_type=0x01) == ["service_not_allowed"]  # fmt: skip


def test_malformed_dates_count_as_failing() -> None:
    card = {**CARD, 0x5F24: H("3012"), 0x5F25: H("25AA01")}
    assert restrictions(card) == ["application_not_yet_effective", "expired_application"]
    assert parse_date(H("491231")) == date(2049, 12, 31)
    assert parse_date(H("500101")) == date(1950, 1, 1)
    assert parse_date(H("250230")) is None


# --- CVM selection -----------------------------------------------------------------------

AIP_CVM = H("1981")  # cardholder verification, TRM, CDA; EMV mode, RRP
CVM_LIST = H("000000000000000042031E031F03")


def cvm(**kw: Any) -> Any:
    args: dict[str, Any] = {
        "aip": AIP_CVM,
        "kernel_config": 0x30,
        "cvm_list": CVM_LIST,
        "cvm_required": False,
        "capability": 0x08,
        "amount": 1000,
        "other_amount": 0,
        "transaction_type": 0x00,
        "transaction_currency": H("0978"),
        "application_currency": H("0978"),
        "terminal_type": H("22"),
    }
    args.update(kw)
    return select_cvm(**args)


def test_cvm_list_no_cvm_under_the_limit() -> None:
    s = cvm()
    assert (s.cvm, s.results, s.tvr) == (Cvm.NO_CVM, H("1F0302"), ())


def test_cvm_list_online_pin_over_the_limit() -> None:
    s = cvm(cvm_required=True, capability=0x60)
    assert (s.cvm, s.results, s.tvr) == (Cvm.ONLINE_PIN, H("020300"), ("online_pin_entered",))


def test_cvm_list_signature_when_online_pin_is_not_supported() -> None:
    s = cvm(cvm_required=True, capability=0x20)
    assert (s.cvm, s.results, s.receipt) == (Cvm.SIGNATURE, H("1E0300"), True)


def test_cvm_list_nothing_supported_fails() -> None:
    s = cvm(cvm_required=True, capability=0x00)
    assert s.cvm is Cvm.NO_CVM
    assert s.results == H("3F0001")
    assert s.tvr == ("cardholder_verification_failed",)


def test_on_device_cvm_needs_the_aip_and_the_kernel_configuration() -> None:
    phone = H("1B81")
    assert cvm(aip=phone, cvm_required=True).results == H("010002")
    assert cvm(aip=phone, cvm_required=True).cvm is Cvm.CDCVM
    assert cvm(aip=phone).results == H("3F0002")
    # Kernel configuration without on-device CVM: the CVM list applies.
    assert cvm(aip=phone, kernel_config=0x10, cvm_required=True, capability=0x60).cvm is (
        Cvm.ONLINE_PIN
    )


def test_no_cvm_support_or_no_list() -> None:
    assert cvm(aip=H("0180")).results == H("3F0000")
    s = cvm(cvm_list=None)
    assert (s.results, s.tvr) == (H("3F0000"), ("icc_data_missing",))
    assert cvm(cvm_list=H("0000000000000000")).tvr == ("icc_data_missing",)


def test_offline_pin_is_never_supported_by_a_contactless_reader() -> None:
    # 01 plaintext PIN by ICC, always, fail if unsuccessful; capability claims it.
    s = cvm(cvm_list=H("00000000000000000100"), capability=0xF8)
    assert s.results == H("3F0001")
    assert s.tvr == ("cardholder_verification_failed",)


def test_unrecognised_cvm_and_apply_next_rule() -> None:
    # 0x4A: unrecognised code with "apply succeeding"; then no CVM always.
    s = cvm(cvm_list=H("00000000000000004A001F00"))
    assert s.results == H("1F0002")
    assert s.tvr == ("unrecognised_cvm",)


def test_fail_cvm_processing_rule() -> None:
    s = cvm(cvm_list=H("00000000000000000000"))
    assert s.results == H("000001")
    assert s.tvr == ("cardholder_verification_failed",)


@pytest.mark.parametrize(
    ("condition", "amount", "currency", "met"),
    [
        (0x06, 500, "0978", True),  # under X (1000)
        (0x06, 1500, "0978", False),
        (0x07, 1500, "0978", True),  # over X
        (0x07, 1500, "0840", False),  # not in the application currency
        (0x08, 1999, "0978", True),  # under Y (2000)
        (0x09, 2001, "0978", True),  # over Y
        (0x0A, 2001, "0978", False),  # RFU condition
    ],
)
def test_amount_conditions(condition: int, amount: int, currency: str, met: bool) -> None:
    cvm_list = H("000003E8000007D0") + bytes((0x1F, condition))
    s = cvm(cvm_list=cvm_list, amount=amount, transaction_currency=H(currency))
    assert (s.results == bytes((0x1F, condition, 0x02))) is met


def test_cash_and_cashback_conditions() -> None:
    rules = H("0000000000000000") + H("1F01") + H("1F04") + H("1F05") + H("1F02")
    assert cvm(cvm_list=rules, transaction_type=0x01, terminal_type=H("25")).results[1] == 1
    assert cvm(cvm_list=rules, transaction_type=0x01).results[1] == 4
    assert cvm(cvm_list=rules, transaction_type=0x09, other_amount=5).results[1] == 5
    assert cvm(cvm_list=rules).results[1] == 2


# --- terminal action analysis ------------------------------------------------------------

TAC = H("F45084800C")


def taa(tvr: str, terminal_type: str = "22", **kw: Any) -> int:
    args: dict[str, Any] = {
        "tac_denial": H("0000000000"),
        "tac_online": TAC,
        "tac_default": TAC,
        "iac_denial": H("0000000000"),
        "iac_online": H("0000000000"),
        "iac_default": H("0000000000"),
        "terminal_type": H(terminal_type),
        "transaction_type": 0x00,
    }
    args.update(kw)
    return action_analysis(H(tvr), **args).ac_type


def test_action_analysis() -> None:
    assert taa("0000000002") == TC
    assert taa("0000008002") == ARQC  # floor limit in TAC online
    assert taa("0000008002", iac_denial=H("0000008000")) == AAC
    assert taa("0000000002", tac_denial=H("0000000002")) == AAC
    assert taa("0000000002", "21") == ARQC  # online only
    assert taa("0000008002", "23") == AAC  # offline only: default codes
    assert taa("0000000002", "26") == TC
    assert taa("0000000002", transaction_type=0x20) == AAC  # refund
    # Absent IAC - Online counts as all ones: any TVR bit goes online.
    assert taa("0000000002", iac_online=None) == ARQC
    assert taa("0000000000", iac_online=None) == TC
    assert taa("0000000001", "26", iac_default=None) == AAC


# --- relay resistance --------------------------------------------------------------------

CARD_RR = RelayCardData(H("01020304"), min_time=0, max_time=50, estimated_time=18)
LIMITS = RelayLimits()


def test_relay_limits_from_kernel_data() -> None:
    data = {0xDF8132: H("0014"), 0xDF8133: H("0190"), 0xDF8137: H("32")}
    limits = RelayLimits.from_kernel_data(data)
    assert (limits.min_grace, limits.max_grace, limits.mismatch_threshold) == (20, 400, 50)
    assert limits.rapdu_time == 24  # default


@pytest.mark.parametrize(
    ("elapsed_us", "retries", "verdict", "measured", "tvr"),
    [
        (8000, 0, RelayVerdict.ACCEPT, 44, ()),
        (13_600, 0, RelayVerdict.ACCEPT, 100, ()),  # exactly max + grace
        (13_700, 0, RelayVerdict.RETRY, 101, ()),
        (13_700, 1, RelayVerdict.RETRY, 101, ()),
        (13_700, 2, RelayVerdict.ACCEPT, 101, ("relay_resistance_time_limits_exceeded",)),
        (
            40_000,
            2,
            RelayVerdict.ACCEPT,
            364,
            ("relay_resistance_time_limits_exceeded", "relay_resistance_threshold_exceeded"),
        ),
    ],
)
def test_judge_relay(
    elapsed_us: int, retries: int, verdict: RelayVerdict, measured: int, tvr: tuple[str, ...]
) -> None:
    j = judge_relay(elapsed_us, CARD_RR, LIMITS, retries)
    assert (j.verdict, j.measured, j.tvr) == (verdict, measured, tvr)


def test_judge_relay_too_fast_aborts() -> None:
    card = RelayCardData(H("01020304"), min_time=100, max_time=200, estimated_time=18)
    assert judge_relay(11_500, card, LIMITS, 0).verdict is RelayVerdict.ABORT  # 79 < 80
    assert judge_relay(11_600, card, LIMITS, 0).verdict is RelayVerdict.ACCEPT  # 80


def test_parse_relay_response() -> None:
    card = parse_relay_response(H("800A") + H("A1B2C3D4") + H("0000") + H("0032") + H("0012"))
    assert card == RelayCardData(H("A1B2C3D4"), 0, 50, 18)
    assert card.data_objects()[0xDF8305] == H("0012")
    for bad in ("800A00", "770A" + "00" * 10, "800B" + "00" * 11, ""):
        with pytest.raises(DecodeError):
            parse_relay_response(H(bad))


# --- brand -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rid", "pan", "ok"),
    [
        ("A000000004", "5413330089601034", True),
        ("A000000004", "2221000000000009", True),
        ("A000000004", "2720990000000007", True),
        ("A000000004", "2721000000000004", False),
        ("A000000004", "4761739001010010", False),  # a Visa PAN behind Mastercard
        ("A000000004", "378282246310005", False),  # American Express
        ("A000000003", "4761739001010010", True),
        ("A000000003", "5413330089601034", False),
        ("A000000025", "378282246310005", True),  # RID without ranges: not checked
        ("A000000004", "54133", False),
    ],
)
def test_brand_consistent(rid: str, pan: str, ok: bool) -> None:
    assert brand_consistent(H(rid), pan) is ok
