"""The entry point (Book B): pre-processing rules, PPSE candidates, selection, restarts."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from emvwire import tlv
from emvwire.apdu import select
from terminal.kernel.config import Combination, default_config
from terminal.kernel.entry_point import (
    DirectoryEntry,
    EntryPoint,
    aid_matches,
    build_candidates,
    parse_ppse,
    pre_process,
)
from terminal.kernel.outcome import Outcome, Status, UiMessage
from terminal.kernel.registry import KernelContext, KernelRegistry, PreProcessing
from terminal.kernel.transaction import Transaction, TransactionResult
from terminal.readers import ReaderUnavailableError
from terminal.readers.emulated import EmulatedReader
from tests.support.cards import VISA_AID
from tests.support.kernel import WHEN, LoggingCard, MitmCard, card, config, tap

TTQ = bytes.fromhex("27C04000")  # byte 2 bits 8 and 7 set: pre-processing clears them


def _visa(**fields: Any) -> Combination:
    base = Combination(aid=VISA_AID, kernel_id=b"\x03", ttq=TTQ)
    return replace(base, **fields)


def _one(combination: Combination, amount: int, **txn: Any) -> PreProcessing:
    cfg = config(combinations=[combination])
    [(_, indicators)] = pre_process(cfg, Transaction(amount, **txn))
    return indicators


# --- pre-processing, Book B §3.1.1 ---------------------------------------------------------


def test_the_ttq_copy_has_byte_2_bits_8_and_7_cleared() -> None:
    ind = _one(_visa(), 1234)
    assert ind.ttq == bytes.fromhex("27004000")
    assert not ind.not_allowed


@pytest.mark.parametrize(("amount", "allowed"), [(9999, True), (10000, False), (10001, False)])
def test_transaction_limit(amount: int, allowed: bool) -> None:
    ind = _one(_visa(transaction_limit=10000), amount)
    assert ind.not_allowed is not allowed
    assert ind.transaction_limit_exceeded is not allowed


@pytest.mark.parametrize(("amount", "exceeded"), [(4999, False), (5000, False), (5001, True)])
def test_floor_limit_sets_online_cryptogram_required(amount: int, exceeded: bool) -> None:
    ind = _one(_visa(floor_limit=5000), amount)
    assert ind.floor_limit_exceeded is exceeded
    assert ind.ttq is not None
    assert bool(ind.ttq[1] & 0x80) is exceeded


def test_terminal_floor_limit_when_the_reader_floor_limit_is_absent() -> None:
    assert _one(_visa(terminal_floor_limit=100), 101).floor_limit_exceeded
    assert not _one(_visa(terminal_floor_limit=100), 100).floor_limit_exceeded
    cfg = config(combinations=[_visa()], terminal={0x9F1B: (300).to_bytes(4, "big")})
    [(_, ind)] = pre_process(cfg, Transaction(301))
    assert ind.floor_limit_exceeded
    [(_, ind)] = pre_process(cfg, Transaction(300))
    assert not ind.floor_limit_exceeded
    assert not _one(_visa(), 10**9).floor_limit_exceeded  # no floor limit at all


@pytest.mark.parametrize(("amount", "required"), [(4999, False), (5000, True), (5001, True)])
def test_cvm_required_limit_sets_cvm_required(amount: int, required: bool) -> None:
    ind = _one(_visa(cvm_required_limit=5000), amount)
    assert ind.cvm_required_limit_exceeded is required
    assert ind.ttq is not None
    assert bool(ind.ttq[1] & 0x40) is required


def test_zero_amount() -> None:
    ind = _one(_visa(), 0)
    assert ind.zero_amount
    assert not ind.not_allowed
    assert ind.ttq is not None
    assert ind.ttq[1] & 0x80
    assert _one(_visa(zero_amount_allowed=False), 0).not_allowed
    offline_only = _one(_visa(ttq=bytes.fromhex("2F004000")), 0)
    assert offline_only.not_allowed
    assert "offline-only" in offline_only.reasons[0]


def test_status_check_on_a_single_unit_of_currency() -> None:
    ind = _one(_visa(status_check=True), 100)  # 1.00 EUR
    assert ind.status_check_requested
    assert ind.ttq is not None
    assert ind.ttq[1] & 0x80
    assert not _one(_visa(status_check=True), 101).status_check_requested
    assert not _one(_visa(), 100).status_check_requested
    jpy = _one(_visa(status_check=True), 1, currency=bytes.fromhex("0392"))
    assert jpy.status_check_requested  # JPY has no minor unit


def test_unsupported_transaction_type_is_not_allowed() -> None:
    ind = _one(_visa(transaction_types=frozenset({0x00})), 1234, type=0x20)
    assert ind.not_allowed
    assert "transaction type 20" in ind.reasons[0]


def test_no_combination_allowed_means_try_another_interface_without_any_apdu() -> None:
    log = LoggingCard(card("visa-card"))
    result = tap(log, 200_000)  # over both transaction limits of the default configuration
    assert result.outcome is Outcome.TRY_ANOTHER_INTERFACE
    assert result.apdu_count == 0
    assert log.log == []
    assert result.ui[-1].message is UiMessage.INSERT_OR_SWIPE


# --- PPSE and candidates, Book B §3.3 --------------------------------------------------------


def _entry(aid: str, priority: int | None = None, kernel: bytes | None = None) -> bytes:
    body = tlv.encode(0x4F, bytes.fromhex(aid)) + tlv.encode(0x50, b"APP")
    if priority is not None:
        body += tlv.encode(0x87, bytes((priority,)))
    if kernel is not None:
        body += tlv.encode(0x9F2A, kernel)
    return tlv.encode(0x61, body)


def _ppse(*entries: bytes) -> bytes:
    name = tlv.encode(0x84, b"2PAY.SYS.DDF01")
    return tlv.encode(0x6F, name + tlv.encode(0xA5, tlv.encode(0xBF0C, b"".join(entries))))


def test_parse_ppse() -> None:
    fci = _ppse(_entry("A0000000031010", 1, b"\x03"), tlv.encode(0x61, tlv.encode(0x50, b"X")))
    [entry] = parse_ppse(fci)
    assert entry.adf_name == VISA_AID
    assert entry.priority == 1
    assert entry.kernel_identifier == b"\x03"
    assert entry.label == "APP"
    assert parse_ppse(b"\x6f\x05\x84") == []
    assert parse_ppse(tlv.encode(0x6F, tlv.encode(0x84, b"x"))) == []
    assert parse_ppse(_ppse(_entry("A000"))) == []  # ADF name too short


class _Stub:
    def __init__(self, kernel_id: bytes) -> None:
        self.kernel_id = kernel_id
        self.name = f"stub {kernel_id.hex()}"

    def activate(self, ctx: KernelContext) -> TransactionResult:
        raise NotImplementedError


REGISTRY = KernelRegistry([_Stub(b"\x02"), _Stub(b"\x03")])
ALLOWED = PreProcessing()


def test_candidates_ordered_by_priority_then_directory_order() -> None:
    combos = [(_visa(aid=bytes.fromhex("A000000003")), ALLOWED)]
    entries = parse_ppse(
        _ppse(
            _entry("A0000000032010"),
            _entry("A0000000031010", 2),
            _entry("A0000000038010", 1),
            _entry("A0000000039010", 2),
        )
    )
    names = [c.entry.adf_name.hex().upper() for c in build_candidates(entries, combos, REGISTRY)]
    assert names == ["A0000000038010", "A0000000031010", "A0000000039010", "A0000000032010"]


def test_partial_aid_matching() -> None:
    assert aid_matches(bytes.fromhex("A0000000031010"), bytes.fromhex("A000000003"))
    assert aid_matches(VISA_AID, VISA_AID)
    assert not aid_matches(bytes.fromhex("A000000003"), VISA_AID)
    assert not aid_matches(bytes.fromhex("A0000000041010"), bytes.fromhex("A000000003"))


def test_kernel_id_must_match_and_be_registered() -> None:
    combos = [(_visa(), ALLOWED)]
    by_default = parse_ppse(_ppse(_entry("A0000000031010")))  # no 9F2A: RID default 03
    assert len(build_candidates(by_default, combos, REGISTRY)) == 1
    wrong = parse_ppse(_ppse(_entry("A0000000031010", kernel=b"\x02")))
    assert build_candidates(wrong, combos, REGISTRY) == []
    assert build_candidates(by_default, combos, KernelRegistry([_Stub(b"\x02")])) == []
    not_allowed = [(_visa(), PreProcessing(not_allowed=True))]
    assert build_candidates(by_default, not_allowed, REGISTRY) == []


def test_extended_selection_is_appended_when_the_combination_allows_it() -> None:
    entry = DirectoryEntry(VISA_AID, extended_selection=b"\x01\x02")
    [cand] = build_candidates([entry], [(_visa(extended_selection=True), ALLOWED)], REGISTRY)
    assert cand.select_name == VISA_AID + b"\x01\x02"
    [cand] = build_candidates([entry], [(_visa(), ALLOWED)], REGISTRY)
    assert cand.select_name == VISA_AID


# --- selection and restarts ---------------------------------------------------------------


def test_ppse_not_found_ends_the_application() -> None:
    result = tap(card("visa-card", wrong_sw={0xA4: 0x6A82}), 1234)
    assert result.outcome is Outcome.END_APPLICATION
    assert result.reasons == ("SELECT PPSE answered 6A82",)
    assert result.ui[-1].message is UiMessage.INSERT_SWIPE_OR_TRY_ANOTHER_CARD
    assert result.apdu_count == 1


def _extra_first_entry(command: bytes, answer: bytes) -> bytes:
    """PPSE lists A0000000039999 (priority 1, which the card does not have) first."""
    if command == select("2PAY.SYS.DDF01").encode():
        entries = _entry("A0000000039999", 1, b"\x03") + _entry("A0000000031010", 2, b"\x03")
        return _ppse(entries) + b"\x90\x00"
    return answer


def test_a_failing_select_goes_on_with_the_next_candidate() -> None:
    cfg = config(aid=bytes.fromhex("A000000003"))
    attacked = MitmCard(card("visa-card"), _extra_first_entry)
    result = tap(attacked, 1234, cfg=cfg)
    assert result.outcome is Outcome.ONLINE_REQUEST
    assert result.aid == VISA_AID
    assert [c[5:-1].hex().upper() for c in attacked.commands[1:3]] == [
        "A0000000039999",
        "A0000000031010",
    ]
    assert result.apdu_count == 4


def test_select_next_from_the_kernel_tries_the_next_candidate() -> None:
    def first_gpo_6985(command: bytes, answer: bytes) -> bytes:
        answer = _extra_first_entry(command, answer)
        if command[:2] == b"\x00\xa4" and b"\x99\x99" in command:
            a5 = tlv.encode(0xA5, tlv.encode(0x9F38, bytes.fromhex("9F660495059F3704")))
            return tlv.encode(0x6F, tlv.encode(0x84, command[5:-1]) + a5) + b"\x90\x00"
        if command[:2] == b"\x80\xa8" and len(command) == 5 + 2 + 13 + 1:
            return b"\x69\x85"
        return answer

    attacked = MitmCard(card("visa-card"), first_gpo_6985)
    result = tap(attacked, 1234, cfg=config(aid=bytes.fromhex("A000000003")))
    assert result.outcome is Outcome.ONLINE_REQUEST
    assert result.aid == VISA_AID
    assert result.apdu_count == 5
    assert [c[:2].hex() for c in attacked.commands] == ["00a4", "00a4", "80a8", "00a4", "80a8"]


def test_a_kernel_failure_is_contained() -> None:
    class Broken:
        kernel_id = b"\x03"
        name = "broken"

        def activate(self, ctx: KernelContext) -> TransactionResult:
            raise ZeroDivisionError

    entry = EntryPoint(default_config(), KernelRegistry([Broken()]), clock=lambda: WHEN)
    result = entry.run(EmulatedReader(card("visa-card")), Transaction(1234))
    assert result.outcome is Outcome.END_APPLICATION
    assert result.reasons == ("internal error in broken: ZeroDivisionError",)


def test_card_pulled_away_is_try_again() -> None:
    for pull in (0, 1, 2):
        result = tap(card("visa-card", pull_after=pull), 1234)
        assert result.outcome is Outcome.TRY_AGAIN
        assert result.ui[-1].message is UiMessage.PRESENT_CARD_AGAIN
        assert result.ui[-1].status is Status.READY_TO_READ


def test_no_activated_card_is_try_again_and_a_closed_reader_raises() -> None:
    entry = EntryPoint(default_config(), clock=lambda: WHEN)
    reader = EmulatedReader(card("visa-card"))
    result = entry.run(reader, Transaction(1234), wait=False)  # never activated
    assert result.outcome is Outcome.TRY_AGAIN
    reader.close()
    with pytest.raises(ReaderUnavailableError):
        entry.run(reader, Transaction(1234))


def test_ui_requests_in_order() -> None:
    result = tap(card("visa-card"), 1234)
    messages = [u.message for u in result.ui]
    assert messages == [UiMessage.PRESENT_CARD, UiMessage.AUTHORISING]
    assert result.ui[0].value == 1234
    assert result.ui[0].currency == bytes.fromhex("0978")


def test_trace_lines_are_masked() -> None:
    lines: list[str] = []
    tap(card("visa-card"), 6000, trace=lines)
    text = "\n".join(lines)
    assert "activating kernel 3" in text
    assert "4761739001010010" not in text
