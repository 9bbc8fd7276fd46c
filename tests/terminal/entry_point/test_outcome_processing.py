"""Outcome processing (Book B §3.5, Book A §6.2): final outcomes with their UI
requests (message, status, hold time, language, value and currency), Try Again and
Try Another Interface, restarts at B and C with the issuer update data (91, 71, 72)
passed to the kernel as online response data, field off, removal time-out, a card
removed and two cards colliding on the way, and the restart limit."""

from __future__ import annotations

from typing import Any

import pytest

from card.scripted import CardCollision, ScriptedCard, encode_outcome
from terminal.kernel.config import parse_config
from terminal.kernel.conformance import scripted_registry
from terminal.kernel.entry_point import EntryPoint
from terminal.kernel.transaction import Transaction
from terminal.readers.base import CardInfo
from terminal.readers.emulated import EmulatedReader
from tests.terminal.entry_point.harness import (
    ISSUER_UPDATE,
    MASTERCARD,
    PPSE_OK,
    VISA,
    VISA_MASTERCARD,
    WHEN,
    Case,
    app,
    card,
    check,
    entry,
    outcome,
    run_and_check,
    ui,
)

CFG = VISA_MASTERCARD
ONLINE_B = outcome(
    "online_request",
    start="B",
    online_response="emv_data",
    cvm="online_pin",
    ui_on_outcome=ui("1B", "processing"),
    ui_on_restart=ui("15", "ready_to_read", hold_time_ms=0),
)
APPROVED_SIGN = outcome(
    "approved",
    cvm="signature",
    receipt=True,
    data_record=True,
    ui_on_outcome=ui(
        "1A",
        "card_read_successfully",
        hold_time_ms=1300,
        language="de",
        value=6000,
        currency="0978",
    ),
)


def _visa(*outcomes: dict[str, Any], **events: int) -> dict[str, Any]:
    scripted = card([entry(VISA, priority="01", kernel_id="03")], {VISA: app(outcomes=outcomes)})
    if events:
        scripted["events"] = events
    return scripted


# --- final outcomes and their UI requests ---------------------------------------------------


@pytest.mark.parametrize(
    ("name", "message", "status"),
    [
        ("approved", "03", "card_read_successfully"),
        ("declined", "07", "card_read_successfully"),
        ("end_application", "1C", "ready_to_read"),
    ],
)
def test_a_final_outcome_shows_its_ui_request_and_ends(
    name: str, message: str, status: str
) -> None:
    scripted = _visa(outcome(name, ui_on_outcome=ui(message, status)))
    run_and_check(
        Case(CFG, scripted),
        {
            "outcome": {"outcome": name.replace("_", " "), "start": None},
            "ui": [("15", "ready_to_read"), (message, status)],
            "restarts": 0,
            "activations": [{"kernel_id": "03"}],
        },
    )


def test_every_field_of_a_ui_request_reaches_the_display() -> None:
    data = run_and_check(
        Case(CFG, _visa(APPROVED_SIGN), amount=6000),
        {
            "ui": [
                ("15", "ready_to_read"),
                {
                    "message": "1A",
                    "text": "Approved, please sign",
                    "status": "card_read_successfully",
                    "hold_time_ms": 1300,
                    "language": "de",
                    "value": 6000,
                    "currency": "0978",
                },
            ],
            "outcome": {"cvm": "signature", "receipt": True, "data_record": True},
        },
    )
    assert data["outcome"]["df8129"] == "10F0F010A8FFFF00"  # UI on outcome, data record, receipt


def test_an_outcome_without_ui_request_shows_nothing_more() -> None:
    run_and_check(
        Case(CFG, _visa(outcome("declined"))),
        {
            "ui": [("15", "ready_to_read")],
            "outcome": {"outcome": "declined", "ui_on_outcome": None},
        },
    )


def test_try_another_interface_ends_with_the_alternate_interface_preference() -> None:
    tai = outcome("try_another_interface", alternate_interface="contact_chip",
                  ui_on_outcome=ui("18", "processing_error"))  # fmt: skip
    run_and_check(
        Case(CFG, _visa(tai)),
        {
            "outcome": {"outcome": "try another interface", "alternate_interface": 1},
            "ui": [("15", "ready_to_read"), ("18", "processing_error")],
            "restarts": 0,
        },
    )


# --- Try Again ----------------------------------------------------------------------------------


def test_try_again_restarts_at_b_and_the_kernel_sees_the_restart() -> None:
    again = outcome("try_again", start="B", ui_on_outcome=ui("21", "processing_error"),
                    ui_on_restart=ui("21", "ready_to_read", hold_time_ms=0))  # fmt: skip
    run_and_check(
        Case(CFG, _visa(again, APPROVED_SIGN)),
        {
            "selects": [PPSE_OK, (VISA, "9000"), PPSE_OK, (VISA, "9000")],
            "activations": [
                {"start": "A", "restart": False, "online_response": ""},
                {"start": "B", "restart": True, "online_response": ""},
            ],
            "events": [{"event": "restart", "start": "B"}],
            "ui": [
                ("15", "ready_to_read"),
                ("21", "processing_error"),
                ("21", "ready_to_read"),
                ("1A", "card_read_successfully"),
            ],
            "restarts": 1,
            "outcome": {"outcome": "approved"},
        },
    )


def test_a_card_removed_during_the_kernel_means_try_again_then_a_new_tap() -> None:
    # after SELECT PPSE and SELECT AID, the GPO finds no card: Try Again, restart at B
    run_and_check(
        Case(CFG, _visa(APPROVED_SIGN, remove_after=2)),
        {
            "exchanges": [
                {"command": "SELECT", "sw": "9000"},
                {"command": "SELECT", "sw": "9000"},
                {"command": "GET PROCESSING OPTIONS", "sw": ""},
                {"command": "SELECT", "sw": "9000"},
                {"command": "SELECT", "sw": "9000"},
                {"command": "GET PROCESSING OPTIONS", "sw": "9000"},
            ],
            "events": [{"event": "card removed"}, {"event": "restart", "start": "B"}],
            "outcome": {"outcome": "approved"},
        },
    )


def test_two_cards_colliding_at_the_restart_are_reported_then_the_transaction_goes_on() -> None:
    # The card powers on once alone; at the restart a second card is in the field
    # (one collision), then it is alone again.
    the_card = ScriptedCard(_visa(outcome("try_again", start="B"), APPROVED_SIGN))
    original = the_card.power_on
    calls = {"n": 0}

    def power_on() -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise CardCollision("two cards")
        original()

    the_card.power_on = power_on  # type: ignore[method-assign]
    entry_point = EntryPoint(parse_config(CFG), scripted_registry([b"\x02", b"\x03"]),
                             clock=lambda: WHEN)  # fmt: skip
    record = entry_point.process(EmulatedReader(the_card), Transaction(1000))
    check(
        record,
        {
            "ui": [
                ("15", "ready_to_read"),
                ("15", "ready_to_read"),
                ("19", "processing_error"),
                ("19", "ready_to_read"),
                ("1A", "card_read_successfully"),
            ],
            "events": [{"event": "restart"}, {"event": "collision"}],
            "outcome": {"outcome": "approved"},
        },
    )


def test_a_card_that_always_asks_to_try_again_stops_at_the_restart_limit() -> None:
    again = outcome("try_again", start="B", ui_on_restart=ui("21", "ready_to_read"))
    data = run_and_check(
        Case(CFG, _visa(again)),
        {"restarts": 4, "outcome": {"outcome": "try again", "start": "B"}},
    )
    assert len(data["activations"]) == 5
    assert data["events"][-1] == {"event": "restart limit", "restarts": 4}


# --- online requests and issuer update processing -----------------------------------------------


def test_an_online_request_restarts_at_b_with_issuer_update_data_for_the_kernel() -> None:
    run_and_check(
        Case(CFG, _visa(ONLINE_B, APPROVED_SIGN), amount=6000, online=ISSUER_UPDATE),
        {
            # §3.3.2.1: the card polled again, then the same combination without PPSE
            "selects": [PPSE_OK, (VISA, "9000"), (VISA, "9000")],
            "activations": [
                {"start": "A", "restart": False, "online_response": ""},
                {
                    "start": "B",
                    "restart": True,
                    "online_response": ISSUER_UPDATE.hex().upper(),
                    "indicators": {"reader_cvm_required_limit_exceeded": True, "ttq": "36404000"},
                },
            ],
            "events": [
                {"event": "online", "response": ISSUER_UPDATE.hex().upper()},
                {"event": "restart", "start": "B"},
            ],
            "ui": [
                ("15", "ready_to_read"),
                ("1B", "processing"),
                ("15", "ready_to_read"),
                ("1A", "card_read_successfully"),
            ],
            "outcome": {"outcome": "approved"},
        },
    )


def test_an_online_request_restarting_at_c_selects_the_same_application_again() -> None:
    online_c = {**ONLINE_B, "start": "C", "ui_on_restart": ui("1B", "processing")}
    scripted = card(
        [entry(VISA, priority="01"), entry(MASTERCARD, priority="02")],
        {VISA: app(outcomes=[online_c, APPROVED_SIGN]), MASTERCARD: app()},
    )
    run_and_check(
        Case(CFG, scripted, online=ISSUER_UPDATE),
        {
            # no second SELECT PPSE: final combination selection on the retained list
            "selects": [PPSE_OK, (VISA, "9000"), (VISA, "9000")],
            "activations": [
                {"start": "A", "aid": VISA},
                {
                    "start": "C",
                    "restart": True,
                    "aid": VISA,
                    "online_response": ISSUER_UPDATE.hex().upper(),
                },
            ],
            "ui": [
                ("15", "ready_to_read"),
                ("1B", "processing"),
                ("1B", "processing"),
                ("1A", "card_read_successfully"),
            ],
            "outcome": {"outcome": "approved"},
        },
    )


def test_an_online_request_without_answer_ends_with_the_online_request() -> None:
    run_and_check(
        Case(CFG, _visa(ONLINE_B, APPROVED_SIGN), online=None),
        {
            "activations": [{"restart": False}],
            "events": [{"event": "online", "response": None}],
            "restarts": 0,
            "outcome": {
                "outcome": "online request",
                "start": "B",
                "online_response_data": "emv_data",
                "cvm": "online_pin",
            },
        },
    )


def test_an_online_request_without_restart_ends_without_going_online_here() -> None:
    plain = outcome("online_request", ui_on_outcome=ui("1B", "processing"))
    run_and_check(
        Case(CFG, _visa(plain), online=ISSUER_UPDATE),
        {
            "events": [],
            "restarts": 0,
            "outcome": {"outcome": "online request", "online_response_data": "na"},
        },
    )


def test_at_a_restart_with_issuer_data_a_failed_select_ends_the_application() -> None:
    # The card answers the first SELECT, then 6A82: the issuer's data belong to that
    # application; no other is tried with them.
    fci = "6F118407A0000000031010A5069F38039F6604" + "9000"  # PDOL asks for the TTQ
    gpo = encode_outcome({**ONLINE_B, "start": "C"}).hex() + "9000"
    scripted = card(
        [entry(VISA, priority="01"), entry(MASTERCARD, priority="02")],
        {MASTERCARD: app()},
        commands=[
            {"apdu": "00A4040007" + VISA, "answers": [fci, "6A82"]},
            {"apdu": "80A8", "answers": [gpo]},
        ],
    )
    run_and_check(
        Case(CFG, scripted, online=ISSUER_UPDATE),
        {
            "selects": [PPSE_OK, (VISA, "9000"), (VISA, "6A82")],
            "activations": [{"aid": VISA}],
            "outcome": {"outcome": "end application"},
        },
    )


# --- field off and removal time-out -------------------------------------------------------------


def test_a_field_off_request_and_a_removal_timeout_are_recorded_and_the_card_repowered() -> None:
    off = outcome("try_again", start="B", field_off_ms=1200, removal_timeout_ms=2500)
    the_card = ScriptedCard(_visa(off, outcome("approved")))
    entry_point = EntryPoint(parse_config(CFG), scripted_registry([b"\x02", b"\x03"]),
                             clock=lambda: WHEN)  # fmt: skip
    record = entry_point.process(EmulatedReader(the_card), Transaction(1000))
    assert the_card.activations == 2  # the field went off: the card was powered afresh
    data = check(
        record,
        {
            "events": [
                {"event": "field off", "hold_time_ms": 1200},
                {"event": "removal timeout", "ms": 2500},
                {"event": "restart", "start": "B"},
            ],
            "outcome": {"outcome": "approved", "field_off_request_ms": None},
        },
    )
    assert len(data["activations"]) == 2


def test_an_outcome_the_card_cannot_script_ends_the_application_with_the_reason() -> None:
    scripted = _visa()
    scripted["applications"][VISA]["outcomes"] = []  # GPO answers 6985
    run_and_check(
        Case(CFG, scripted),
        {
            "outcome": {"outcome": "end application"},
            "reasons": ["GET PROCESSING OPTIONS answered 6985"],
        },
    )


class _CardLeavesForGood(EmulatedReader):
    """The card is in the field for the first poll only."""

    polls = 0

    def wait_for_card(self, timeout: float | None = None) -> CardInfo:
        self.polls += 1
        if self.polls > 1:
            self.take_away()
        return super().wait_for_card(timeout)


def test_a_card_that_does_not_come_back_for_the_restart_leaves_the_last_outcome() -> None:
    again = outcome("try_again", start="B", ui_on_restart=ui("21", "ready_to_read"))
    the_card = ScriptedCard(_visa(again))
    entry_point = EntryPoint(parse_config(CFG), scripted_registry([b"\x02", b"\x03"]),
                             clock=lambda: WHEN)  # fmt: skip
    record = entry_point.process(_CardLeavesForGood(the_card), Transaction(1000), timeout=0.01)
    data = check(
        record,
        {
            "restarts": 1,
            "activations": [{"restart": False}],
            "outcome": {"outcome": "try again", "start": "B"},
            "ui": [("15", "ready_to_read"), ("21", "ready_to_read")],
        },
    )
    assert data["events"][-1]["event"] == "no card"
