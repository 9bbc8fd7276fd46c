"""Combination selection, Start C (Book B §3.3): SELECT PPSE and its answers (§3.3.2.2-
§3.3.2.4), directory entries against combinations (§3.3.2.5 A-E: ADF name, partial AID
match, the Requested Kernel ID from 9F2A), the candidate order (§3.3.3.1-§3.3.3.2:
priority, then PPSE order), extended selection (§3.3.3.3), SELECT AID and its errors
(§3.3.3.4-§3.3.3.5) and the empty candidate list (§3.3.2.7)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.terminal.entry_point.harness import (
    MASTERCARD,
    PPSE_OK,
    VISA,
    Case,
    app,
    card,
    combo,
    config,
    entry,
    run_and_check,
)

END_APPLICATION = {
    "outcome": "end application",
    "ui_on_outcome": {"message": "1C", "status": "ready_to_read"},
}
VISA_2 = "A0000000032010"
VISA_8 = "A0000000038010"
VISA_9 = "A0000000039010"
#: Four Visa applications, one combination on the RID (partial matching, §3.3.2.5 B).
FOUR = config(combo("A000000003", "03"))


def _selected(entries: list[dict[str, Any]], cfg: dict[str, Any] = FOUR) -> str:
    """The ADF name of the application the kernel is activated for."""
    data = run_and_check(Case(cfg, card(entries)), {"outcome": {"outcome": "approved"}})
    aid: str = data["activations"][0]["aid"]
    return aid


# --- SELECT PPSE (§3.3.2.2-§3.3.2.4) ---------------------------------------------------------


@pytest.mark.parametrize("sw", ["6A82", "6283", "6A81", "6985"])
def test_a_ppse_answering_other_than_9000_ends_the_application(sw: str) -> None:
    # 6283 (selected file deactivated) comes with a well-formed FCI listing the
    # application: still no candidate (§3.3.2.3).
    case = Case(config(combo(VISA, "03")), card([entry(VISA, kernel_id="03")], ppse_sw=sw))
    run_and_check(
        case,
        {
            "selects": [("2PAY.SYS.DDF01", sw)],
            "activations": [],
            "outcome": END_APPLICATION,
            "reasons": [f"SELECT PPSE answered {sw}"],
            "ui": [("15", "ready_to_read"), ("1C", "ready_to_read")],
        },
    )


def test_a_card_without_ppse_ends_the_application_after_one_select() -> None:
    case = Case(config(combo(VISA, "03")), card(None, {VISA: app()}))
    run_and_check(case, {"selects": [("2PAY.SYS.DDF01", "6A82")], "outcome": END_APPLICATION})


def test_a_ppse_without_directory_entry_ends_the_application() -> None:
    case = Case(config(combo(VISA, "03")), card([]))
    run_and_check(
        case,
        {
            "selects": [PPSE_OK],
            "outcome": END_APPLICATION,
            "reasons": ["the PPSE lists no application"],
        },
    )


def test_padding_and_unknown_tags_in_the_ppse_fci_are_skipped() -> None:
    scripted = card(
        [entry(VISA, kernel_id="03", extra="DF7F03ABCDEF9F0A0400010104")],
        padding=True,
        ppse_extra="BF7F0100",  # an unknown constructed object after the entries
    )
    expected = {"selects": [PPSE_OK, (VISA, "9000")], "outcome": {"outcome": "approved"}}
    run_and_check(Case(config(combo(VISA, "03")), scripted), expected)


# --- directory entries (§3.3.2.5 A-B) --------------------------------------------------------


def test_an_adf_name_shorter_than_5_bytes_is_skipped() -> None:
    case = Case(config(combo("A000000003", "03")), card([entry("A0000003")]))
    run_and_check(case, {"selects": [PPSE_OK], "outcome": END_APPLICATION})


def test_an_entry_without_adf_name_is_skipped_and_the_next_one_is_used() -> None:
    case = Case(config(combo(VISA, "03")), card([{"label": "NO NAME"}, entry(VISA)]))
    run_and_check(case, {"selects": [PPSE_OK, (VISA, "9000")]})


def test_the_adf_name_may_extend_the_configured_aid_partial_match() -> None:
    assert _selected([entry(VISA_2)]) == VISA_2


def test_an_adf_name_shorter_than_the_configured_aid_does_not_match() -> None:
    case = Case(config(combo(VISA, "03")), card([entry("A000000003")]))
    run_and_check(case, {"selects": [PPSE_OK], "outcome": END_APPLICATION})


def test_an_application_the_configuration_does_not_know_is_not_selected() -> None:
    case = Case(config(combo(VISA, "03")), card([entry(MASTERCARD)]))
    run_and_check(case, {"selects": [PPSE_OK], "activations": [], "outcome": END_APPLICATION})


# --- the Requested Kernel ID (§3.3.2.5 C-D) --------------------------------------------------


@pytest.mark.parametrize(
    ("kernel_identifier", "activated"),
    [
        (None, "03"),  # absent: the RID's default (Table 3-6)
        ("", "03"),  # empty: the RID's default
        ("03", "03"),  # 1-byte international
        ("0399", "03"),  # 1-byte kernel: bytes past byte 1 ignored
        ("00", "C1ABCD"),  # zero: any kernel, so the first combination's
        ("C1ABCD", "C1ABCD"),  # 3-byte domestic
        ("C1ABCD0102", "C1ABCD"),  # 3-byte domestic, bytes past 3 ignored
    ],
)
def test_the_requested_kernel_id_chooses_the_combination(
    kernel_identifier: str | None, activated: str
) -> None:
    fields = {} if kernel_identifier is None else {"kernel_id": kernel_identifier}
    # The domestic combination comes first: only the Requested Kernel ID skips it.
    case = Case(config(combo(VISA, "C1ABCD"), combo(VISA, "03")), card([entry(VISA, **fields)]))
    run_and_check(case, {"activations": [{"kernel_id": activated}]})


@pytest.mark.parametrize("malformed", ["C1", "C1AB", "81"])
def test_a_domestic_kernel_identifier_shorter_than_3_bytes_skips_the_entry(malformed: str) -> None:
    case = Case(
        config(combo("A000000003", "C1ABCD"), combo("A000000003", "03")),
        card([entry(VISA, priority="01", kernel_id=malformed), entry(VISA_2, kernel_id="03")]),
    )
    run_and_check(
        case,
        {"selects": [PPSE_OK, (VISA_2, "9000")], "activations": [{"kernel_id": "03"}]},
    )


def test_a_kernel_the_card_asks_for_that_the_combination_lacks_is_not_a_candidate() -> None:
    case = Case(config(combo(VISA, "03")), card([entry(VISA, kernel_id="02")]))
    run_and_check(case, {"selects": [PPSE_OK], "outcome": END_APPLICATION})


def test_an_unknown_rid_without_kernel_identifier_takes_the_combinations_kernel() -> None:
    case = Case(config(combo("A000000999", "C10203")), card([entry("A0000009991010")]))
    run_and_check(case, {"activations": [{"kernel_id": "C10203"}]})


def test_a_combination_whose_kernel_is_not_registered_is_not_a_candidate() -> None:
    case = Case(config(combo(VISA, "03")), card([entry(VISA, kernel_id="03")]), kernels=["02"])
    run_and_check(case, {"selects": [PPSE_OK], "outcome": END_APPLICATION})


def test_a_combination_not_allowed_by_pre_processing_is_not_a_candidate() -> None:
    case = Case(
        config(combo(VISA, "03", transaction=100), combo(MASTERCARD, "02")),
        card([entry(VISA, priority="01"), entry(MASTERCARD, priority="02")]),
        amount=100,
    )
    run_and_check(case, {"selects": [PPSE_OK, (MASTERCARD, "9000")]})


# --- the candidate order (§3.3.3.2) ----------------------------------------------------------


def test_the_highest_priority_is_selected_first_whatever_the_ppse_order() -> None:
    entries = [entry(VISA_2, priority="03"), entry(VISA_8, priority="01"),
               entry(VISA_9, priority="02")]  # fmt: skip
    assert _selected(entries) == VISA_8


def test_equal_priorities_are_taken_in_ppse_order() -> None:
    entries = [entry(VISA_9, priority="02"), entry(VISA_8, priority="02"),
               entry(VISA_2, priority="03")]  # fmt: skip
    assert _selected(entries) == VISA_9


@pytest.mark.parametrize("lowest", [{}, {"priority": ""}, {"priority": "00"}, {"priority": "F0"}])
def test_absent_empty_or_zero_priority_is_the_lowest(lowest: dict[str, str]) -> None:
    entries = [entry(VISA_2, **lowest), entry(VISA_8, priority="0F")]
    assert _selected(entries) == VISA_8


def test_the_rfu_bits_of_the_priority_indicator_are_ignored() -> None:
    # 87 = 'F1': bits 8-5 are not the priority (b8 is the contact "confirmation" bit).
    entries = [entry(VISA_2, priority="02"), entry(VISA_8, priority="F1")]
    assert _selected(entries) == VISA_8


def test_the_order_of_the_whole_candidate_list_is_followed_on_select_errors() -> None:
    entries = [entry(VISA_2), entry(VISA_8, priority="02"), entry(VISA_9, priority="01")]
    apps = {VISA_9: app(sw="6A82"), VISA_8: app(sw="6283"), VISA_2: app()}
    run_and_check(
        Case(FOUR, card(entries, apps)),
        {
            "selects": [PPSE_OK, (VISA_9, "6A82"), (VISA_8, "6283"), (VISA_2, "9000")],
            "activations": [{"aid": VISA_2}],
        },
    )


# --- extended selection (§3.3.3.3) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("supported", "selected"), [(True, VISA + "0102"), (False, VISA), (None, VISA)]
)
def test_extended_selection_is_appended_only_when_the_combination_supports_it(
    supported: bool | None, selected: str
) -> None:
    params = {} if supported is None else {"extended_selection": supported}
    scripted = card([entry(VISA, extended_selection="0102")], {selected: app()})
    data = run_and_check(
        Case(config(combo(VISA, "03", **params)), scripted),
        {"selects": [PPSE_OK, (selected, "9000")], "outcome": {"outcome": "approved"}},
    )
    assert data["activations"][0]["aid"] == selected


def test_without_extended_selection_in_the_entry_the_adf_name_is_selected() -> None:
    data = run_and_check(
        Case(config(combo(VISA, "03", extended_selection=True)), card([entry(VISA)])),
        {"selects": [PPSE_OK, (VISA, "9000")]},
    )
    assert data["activations"][0]["aid"] == VISA


# --- SELECT AID (§3.3.3.4-§3.3.3.5) ----------------------------------------------------------


@pytest.mark.parametrize("sw", ["6A82", "6A81", "6283", "6999"])
def test_a_select_aid_error_removes_the_candidate_and_selects_the_next(sw: str) -> None:
    entries = [entry(VISA, priority="01"), entry(MASTERCARD, priority="02")]
    scripted = card(entries, {VISA: app(sw=sw), MASTERCARD: app()})
    run_and_check(
        Case(config(combo(VISA, "03"), combo(MASTERCARD, "02")), scripted),
        {
            "selects": [PPSE_OK, (VISA, sw), (MASTERCARD, "9000")],
            "activations": [{"kernel_id": "02", "aid": MASTERCARD}],
        },
    )


def test_when_every_select_fails_the_application_ends() -> None:
    scripted = card([entry(VISA)], {VISA: app(sw="6A82")})
    run_and_check(
        Case(config(combo(VISA, "03")), scripted),
        {"selects": [PPSE_OK, (VISA, "6A82")], "activations": [], "outcome": END_APPLICATION},
    )


def test_an_fci_naming_another_application_is_treated_as_a_failed_select() -> None:
    other = "6F0E8407A0000000041010A503500141"  # 84 names the Mastercard AID
    scripted = card([entry(VISA)], {VISA: app(fci=other)})
    run_and_check(
        Case(config(combo(VISA, "03")), scripted),
        {"activations": [], "outcome": END_APPLICATION},
    )
