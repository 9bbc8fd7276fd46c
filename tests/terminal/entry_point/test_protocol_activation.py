"""Protocol activation, Start B (Book B §3.2.1): the "Present card" request, Autorun
(started at B without pre-processing, §3.2.1.1), collisions of two cards (§3.2.1.4 and
§3.2.1.5), the UI Request on Restart (§3.2.1.2) and a card lost during combination
selection (§3.3.3.7: back to Start B)."""

from __future__ import annotations

import pytest

from card.scripted import ScriptedCard
from terminal.kernel.config import parse_config
from terminal.kernel.entry_point import CollisionError, EntryPoint
from terminal.kernel.outcome import Start
from terminal.kernel.transaction import Transaction
from terminal.readers.emulated import EmulatedReader
from tests.terminal.entry_point.harness import (
    VISA,
    WHEN,
    Case,
    app,
    card,
    combo,
    config,
    entry,
    outcome,
    run_and_check,
    ui,
)

CFG = config(
    combo(
        VISA,
        "03",
        ttq="36C04000",
        transaction=5000,
        floor=1000,
        cvm_required=2000,
        status_check=True,
    ),
)
VISA_CARD = card([entry(VISA, priority="01", kernel_id="03")])


def test_the_reader_asks_to_present_a_card_with_the_amount_ready_to_read() -> None:
    run_and_check(
        Case(CFG, VISA_CARD, amount=1234),
        {
            "ui": [
                {"message": "15", "status": "ready_to_read", "value": 1234, "currency": "0978"},
                {"message": "03", "status": "card_read_successfully"},
            ]
        },
    )


def test_autorun_starts_at_b_with_indicators_reset_and_the_ttq_as_configured() -> None:
    # 9000 is over the transaction limit: pre-processing would not allow it. Autorun
    # does no pre-processing: every indicator 0, the TTQ copy unchanged (bits 8 and 7
    # of byte 2 kept).
    run_and_check(
        Case(CFG, VISA_CARD, amount=9000, start=Start.B),
        {
            "start": "B",
            "activations": [
                {
                    "start": "B",
                    "restart": False,
                    "indicators": {
                        "status_check_requested": False,
                        "contactless_application_not_allowed": False,
                        "zero_amount": False,
                        "reader_cvm_required_limit_exceeded": False,
                        "reader_contactless_floor_limit_exceeded": False,
                        "ttq": "36C04000",
                    },
                }
            ],
            "outcome": {"outcome": "approved"},
        },
    )


def test_a_transaction_from_pre_processing_activates_the_kernel_at_start_a() -> None:
    run_and_check(Case(CFG, VISA_CARD, amount=100), {"start": "A",
                  "activations": [{"start": "A", "restart": False}]})  # fmt: skip


def test_a_collision_asks_for_one_card_only_then_goes_on_when_it_is_over() -> None:
    scripted = card([entry(VISA, kernel_id="03")], events={"collisions": 2})
    run_and_check(
        Case(CFG, scripted, amount=100),
        {
            "ui": [
                ("15", "ready_to_read"),
                ("19", "processing_error"),
                ("19", "ready_to_read"),
                ("03", "card_read_successfully"),
            ],
            "events": [{"event": "collision"}, {"event": "collision"}],
            "selects": [("2PAY.SYS.DDF01", "9000"), (VISA, "9000")],
            "outcome": {"outcome": "approved"},
        },
    )


def test_cards_that_keep_colliding_end_the_wait_with_a_collision_error() -> None:
    scripted = ScriptedCard(card([entry(VISA)], events={"collisions": 100}))
    entry_point = EntryPoint(parse_config(CFG), clock=lambda: WHEN)
    with pytest.raises(CollisionError, match="collisions in a row"):
        entry_point.process(EmulatedReader(scripted), Transaction(100))


def test_a_restart_shows_the_ui_request_on_restart_instead_of_present_card() -> None:
    again = outcome(
        "try_again",
        start="B",
        ui_on_outcome=ui("21", "processing_error"),
        ui_on_restart=ui("21", "ready_to_read", hold_time_ms=500),
    )
    scripted = card(
        [entry(VISA, kernel_id="03")], {VISA: app(outcomes=[again, outcome("declined")])}
    )
    run_and_check(
        Case(CFG, scripted, amount=100),
        {
            "ui": [
                ("15", "ready_to_read"),
                ("21", "processing_error"),
                {"message": "21", "status": "ready_to_read", "hold_time_ms": 500},
            ],
            "restarts": 1,
            "outcome": {"outcome": "declined"},
        },
    )


def test_a_card_lost_during_combination_selection_returns_to_start_b() -> None:
    scripted = card([entry(VISA, kernel_id="03")], events={"remove_after": 1})
    run_and_check(
        Case(CFG, scripted, amount=100),
        {
            "selects": [
                ("2PAY.SYS.DDF01", "9000"),
                (VISA, ""),
                ("2PAY.SYS.DDF01", "9000"),
                (VISA, "9000"),
            ],
            "events": [{"event": "card removed"}, {"event": "restart", "start": "B"}],
            "ui": [
                ("15", "ready_to_read"),
                ("15", "ready_to_read"),  # not an outcome: no restart flag (§3.2.1.2)
                ("03", "card_read_successfully"),
            ],
            "activations": [{"start": "A", "restart": False}],
            "restarts": 1,
            "outcome": {"outcome": "approved"},
        },
    )
