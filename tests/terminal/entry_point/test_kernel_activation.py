"""Kernel activation, Start D (Book B §3.4.1): the kernel of the selected combination
is activated with the pre-processing indicators of that combination (§3.4.1.2), the FCI
and status word of the SELECT (§3.4.1.3), the start point and the transaction; the Visa
kernel 3 / kernel 1 rule (§3.3.3.6); Select Next (§3.3.3.5 via Start C); and the
payment kernels of the terminal (kernel 2, kernel 3) activated through the same
registry."""

from __future__ import annotations

import pytest

from terminal.kernel.config import default_config
from terminal.kernel.conformance import TestKernel
from terminal.kernel.entry_point import EntryPoint
from terminal.kernel.k2.flow import KERNEL as KERNEL_2
from terminal.kernel.k3.flow import KERNEL as KERNEL_3
from terminal.kernel.outcome import Outcome
from terminal.kernel.registry import KernelRegistry
from terminal.kernel.transaction import Transaction
from terminal.readers.emulated import EmulatedReader
from tests.terminal.entry_point.harness import (
    JCB,
    MASTERCARD,
    PPSE_OK,
    VISA,
    WHEN,
    Case,
    app,
    card,
    check,
    combo,
    config,
    entry,
    fixture_card,
    outcome,
    run_and_check,
    run_case,
)

VISA_2 = "A0000000032010"


def test_the_kernel_gets_fci_status_word_indicators_ttq_and_transaction() -> None:
    fci = "6F1A8407A0000000031010A50F500456495341 9F38069F66049F0206 0000".replace(" ", "")
    case = Case(
        config(combo(VISA, "03", ttq="36C04000", cvm_required=500, floor=100)),
        card([entry(VISA, kernel_id="03")], {VISA: app(fci=fci)}),
        amount=1500,
        type="cashback",
        other_amount=500,
    )
    run_and_check(
        case,
        {
            "activations": [
                {
                    "kernel_id": "03",
                    "kernel": "test kernel 03",
                    "aid": VISA,
                    "fci": fci.upper(),  # as the card sent it, padding included
                    "sw": "9000",
                    "start": "A",
                    "restart": False,
                    "online_response": "",
                    "indicators": {
                        "status_check_requested": False,
                        "contactless_application_not_allowed": False,
                        "zero_amount": False,
                        "reader_cvm_required_limit_exceeded": True,
                        "reader_contactless_floor_limit_exceeded": True,
                        "ttq": "36C04000",
                    },
                    "transaction": {
                        "9F02": "000000001500",
                        "9F03": "000000000500",
                        "5F2A": "0978",
                        "9C": "09",
                        "9A": "260301",
                        "9F21": "123000",
                    },
                }
            ]
        },
    )


def test_the_test_kernel_itself_records_what_it_was_activated_with() -> None:
    kernel = TestKernel(b"\x03")
    case = Case(config(combo(VISA, "03", ttq="26000000")), card([entry(VISA)]),
                extra_kernels=[kernel])  # fmt: skip
    record = run_case(case)
    [seen] = kernel.activations
    assert seen == record.activations[0]
    assert seen.ttq == bytes.fromhex("26000000")
    assert seen.fci.startswith(bytes.fromhex("6F"))
    assert seen.fci_sw == 0x9000


def test_the_indicators_are_those_of_the_selected_combination() -> None:
    case = Case(
        config(
            combo(VISA, "03", ttq="26000000", cvm_required=100),
            combo(MASTERCARD, "02", ttq="26000000", floor=100),
        ),
        card([entry(MASTERCARD, priority="01"), entry(VISA, priority="02")]),
        amount=500,
    )
    data = run_and_check(case, {"activations": [{"kernel_id": "02"}]})
    ind = data["activations"][0]["indicators"]
    assert ind["reader_contactless_floor_limit_exceeded"] is True
    assert ind["reader_cvm_required_limit_exceeded"] is False
    assert ind["ttq"] == "26800000"


# --- Visa: kernel 3 or kernel 1 (§3.3.3.6) -------------------------------------------------


@pytest.mark.parametrize("pdol", ["9F66049F0206", "9F02069F6604"])
def test_a_visa_aid_whose_pdol_asks_for_the_ttq_stays_with_kernel_3(pdol: str) -> None:
    case = Case(config(combo(VISA, "03")), card([entry(VISA)], {VISA: app(pdol)}),
                kernels=["01", "03"])  # fmt: skip
    run_and_check(case, {"activations": [{"kernel_id": "03"}]})


@pytest.mark.parametrize("pdol", [None, "9F02069F3704", ""])
def test_a_visa_aid_without_ttq_in_the_pdol_goes_to_kernel_1_when_supported(
    pdol: str | None,
) -> None:
    case = Case(config(combo(VISA, "03")), card([entry(VISA)], {VISA: app(pdol)}),
                kernels=["01", "03"])  # fmt: skip
    run_and_check(
        case,
        {"activations": [{"kernel_id": "01", "kernel": "test kernel 01", "aid": VISA}]},
    )


def test_without_kernel_1_the_visa_candidate_without_ttq_is_removed_for_the_next() -> None:
    case = Case(
        config(combo("A000000003", "03")),
        card(
            [entry(VISA, priority="01"), entry(VISA_2, priority="02")],
            {VISA: app(None), VISA_2: app("9F6604")},
        ),
        kernels=["03"],
    )
    run_and_check(
        case,
        {
            "selects": [PPSE_OK, (VISA, "9000"), (VISA_2, "9000")],
            "activations": [{"kernel_id": "03", "aid": VISA_2}],
        },
    )


def test_without_kernel_1_the_last_visa_candidate_without_ttq_ends_the_application() -> None:
    visa = fixture_card("visa-card")

    class NoTtq:
        atr = visa.atr

        def power_on(self) -> None:
            visa.power_on()

        def power_off(self) -> None:
            visa.power_off()

        def process(self, apdu: bytes) -> bytes:
            answer = visa.process(apdu)
            if apdu[:2] == b"\x00\xa4" and b"2PAY" not in apdu:
                return bytes.fromhex("6F108407A0000000031010A5055003564953") + b"\x90\x00"
            return answer

    entry_point = EntryPoint(default_config(), KernelRegistry([KERNEL_3]), clock=lambda: WHEN)
    record = entry_point.process(EmulatedReader(NoTtq()), Transaction(1000))
    check(record, {"activations": [], "outcome": {"outcome": "end application"}})
    assert "without TTQ in the PDOL, no kernel 1" in record.to_json()["reasons"][-1]


def test_the_kernel_1_rule_is_for_visa_aids_only() -> None:
    case = Case(config(combo(JCB, "05")), card([entry(JCB)], {JCB: app(None)}),
                kernels=["01", "05"])  # fmt: skip
    run_and_check(case, {"activations": [{"kernel_id": "05", "aid": JCB}]})


# --- Select Next (§3.3.3.5 through Start C) ----------------------------------------------------


def test_select_next_removes_the_candidate_and_activates_the_next() -> None:
    entries = [entry(VISA, priority="01"), entry(MASTERCARD, priority="02")]
    apps = {VISA: app(outcomes=[outcome("select_next", start="C")]), MASTERCARD: app()}
    run_and_check(
        Case(config(combo(VISA, "03"), combo(MASTERCARD, "02")), card(entries, apps)),
        {
            "selects": [PPSE_OK, (VISA, "9000"), (MASTERCARD, "9000")],
            "exchanges": [
                {"command": "SELECT"},
                {"command": "SELECT"},
                {"command": "GET PROCESSING OPTIONS", "sw": "9000"},
                {"command": "SELECT"},
                {"command": "GET PROCESSING OPTIONS", "sw": "9000"},
            ],
            "activations": [{"kernel_id": "03"}, {"kernel_id": "02", "restart": False}],
            "restarts": 0,
            "outcome": {"outcome": "approved"},
        },
    )


def test_select_next_on_the_last_candidate_ends_the_application() -> None:
    apps = {VISA: app(outcomes=[outcome("select_next", start="C")])}
    run_and_check(
        Case(config(combo(VISA, "03")), card([entry(VISA)], apps)),
        {"activations": [{"kernel_id": "03"}], "outcome": {"outcome": "end application"}},
    )


def test_a_restart_at_d_activates_the_kernel_again_without_select_nor_fci() -> None:
    apps = {VISA: app(outcomes=[outcome("try_again", start="D"), outcome("approved")])}
    run_and_check(
        Case(config(combo(VISA, "03")), card([entry(VISA)], apps)),
        {
            "selects": [PPSE_OK, (VISA, "9000")],
            "activations": [
                {"start": "A", "restart": False, "sw": "9000"},
                {"start": "D", "restart": True, "fci": "", "sw": None},
            ],
            "outcome": {"outcome": "approved"},
        },
    )


# --- the payment kernels through the registry ----------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "kernel", "aid"),
    [("visa-card", "kernel 3 (Visa qVSDC)", VISA), ("mastercard-card", "kernel 2", MASTERCARD)],
)
def test_the_payment_kernels_run_through_the_registry_and_are_recorded(
    profile: str, kernel: str, aid: str
) -> None:
    the_card = fixture_card(profile)
    registry = KernelRegistry([KERNEL_2, KERNEL_3])
    entry_point = EntryPoint(default_config(), registry, clock=lambda: WHEN)
    record = entry_point.process(EmulatedReader(the_card), Transaction(6000))
    data = record.to_json()
    assert record.result is not None
    assert record.result.outcome is Outcome.ONLINE_REQUEST, record.result.reasons
    assert data["activations"][0]["aid"] == aid
    assert data["activations"][0]["kernel"].startswith(kernel)
    assert data["restarts"] == 0
    assert record.result.authorisation_data  # field 55 built by the real kernel
