"""Each defence of kernel 3 with the attack it stops, and malformed card answers.

Attacks follow the published papers (each cited where its defence is tested, and in
:mod:`terminal.kernel.k3.flow`): a man in the middle (:class:`MitmCard`) changes the
real card's answers on their way.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from emvwire import tlv
from terminal.kernel import entry_point
from terminal.kernel.outcome import Outcome
from terminal.kernel.registry import KernelContext
from terminal.kernel.transaction import Cvm, OdaResult
from tests.support.kernel import (
    LoggingCard,
    MitmCard,
    ReplayCard,
    card,
    config,
    counter_rng,
    rewrite_gpo,
    tap,
)

# --- unpredictable number (Bond et al., S&P 2014) ---------------------------------------


def _un_sent(log: LoggingCard) -> bytes:
    gpo = next(c for c in log.commands if c[:2] == b"\x80\xa8")
    return gpo[5 + 2 :][-5:-1]  # the PDOL data end with 9F37 (4 bytes), then Le


def test_the_un_comes_from_a_csprng_by_default() -> None:
    defaults = entry_point.EntryPoint.__init__.__kwdefaults__
    assert defaults is not None
    assert defaults["rng"] is secrets.token_bytes
    assert KernelContext.__dataclass_fields__["rng"].default is secrets.token_bytes
    seen = set()
    for _ in range(3):
        log = LoggingCard(card("visa-card"))
        result = tap(log, 1234, rng=None)
        seen.add(_un_sent(log))
        assert result.data[0x9F37] == _un_sent(log)
    assert len(seen) == 3


def test_an_injected_rng_gives_the_un_once_per_transaction() -> None:
    calls: list[int] = []

    def rng(n: int) -> bytes:
        calls.append(n)
        return b"\xca\xfe\xba\xbe"[:n]

    log = LoggingCard(card("visa-card"))
    tap(log, 1234, rng=rng)
    assert calls == [4]
    assert _un_sent(log) == bytes.fromhex("CAFEBABE")


# --- CTQ changed to "CDCVM performed" (Basin, Sasse, Toro-Pozo, S&P 2021) ---------------


def _flip_ctq(values: dict[int, bytes]) -> None:
    values[0x9F6C] = bytes.fromhex("0080")  # consumer device CVM performed


def test_ctq_flipped_to_cdcvm_is_caught_by_the_signed_copy() -> None:
    attacked = MitmCard(card("visa-card"), rewrite_gpo(_flip_ctq))
    result = tap(attacked, 6000)
    assert result.outcome is Outcome.DECLINED
    assert result.oda is OdaResult.PASSED  # the signature is genuine ...
    assert any("CTQ differs" in r for r in result.reasons)  # ... and covers the real CTQ
    # Without the attack the same card asks for online PIN:
    assert tap(card("visa-card"), 6000).cvm is Cvm.ONLINE_PIN


def _flip_cdcvm_bit_only(values: dict[int, bytes]) -> None:
    ctq = values[0x9F6C]
    values[0x9F6C] = ctq[:1] + bytes((ctq[1] ^ 0x80,)) + ctq[2:]  # byte 2 bit 8 alone


def test_a_ctq_flip_of_the_cdcvm_bit_alone_is_caught() -> None:
    """The sharper attack: byte 1 (here "online PIN required") is left as the card
    sent it and only byte 2 bit 8 ("consumer device CVM performed") is flipped. A check
    of byte 1 alone, or of the claim's effect, would let it through; the signed copy
    covers both bytes."""
    real = tap(card("visa-card"), 6000)
    seen: dict[int, bytes] = {}

    def flip(values: dict[int, bytes]) -> None:
        _flip_cdcvm_bit_only(values)
        seen.update(values)

    result = tap(MitmCard(card("visa-card"), rewrite_gpo(flip)), 6000)
    assert seen[0x9F6C][0] == real.data[0x9F6C][0]  # byte 1 untouched
    assert seen[0x9F6C][1] == real.data[0x9F6C][1] ^ 0x80  # only the CDCVM bit differs
    assert result.outcome is Outcome.DECLINED
    assert result.oda is OdaResult.PASSED
    assert any("CTQ differs" in r for r in result.reasons)
    assert result.cvm is not Cvm.CDCVM


def _flip_and_strip(values: dict[int, bytes]) -> None:
    _flip_ctq(values)
    values.pop(0x9F4B, None)  # no signature
    values.pop(0x94, None)  # no records


def test_ctq_flipped_with_the_signature_stripped_is_declined() -> None:
    attacked = MitmCard(card("visa-card"), rewrite_gpo(_flip_and_strip))
    result = tap(attacked, 6000)
    assert result.outcome is Outcome.DECLINED
    assert result.cvm is not Cvm.CDCVM
    assert any("no verified fDDA" in r for r in result.reasons)


def test_require_cvm_policy_asks_for_online_pin_instead() -> None:
    attacked = MitmCard(card("visa-card"), rewrite_gpo(_flip_and_strip))
    result = tap(attacked, 6000, cfg=config(unverified_cdcvm="require_cvm"))
    assert result.outcome is Outcome.ONLINE_REQUEST
    assert result.cvm is Cvm.ONLINE_PIN
    assert result.online_pin_required


def test_ctq_flip_on_a_reader_without_oda_for_online_is_declined() -> None:
    # TTQ without "ODA for online": the card sends no signature with its ARQC at all.
    attacked = MitmCard(card("visa-card"), rewrite_gpo(_flip_ctq))
    result = tap(attacked, 6000, cfg=config(ttq=bytes.fromhex("26004000")))
    assert result.outcome is Outcome.DECLINED
    assert result.cvm is not Cvm.CDCVM


def test_an_unverified_cdcvm_claim_under_the_cvm_limit_changes_nothing() -> None:
    attacked = MitmCard(card("visa-card"), rewrite_gpo(_flip_and_strip))
    result = tap(attacked, 1234)
    assert result.outcome is Outcome.ONLINE_REQUEST
    assert result.cvm is Cvm.NO_CVM


# --- card brand mixup (Basin, Sasse, Toro-Pozo, USENIX Security 2021) -------------------


def test_a_mastercard_pan_behind_a_visa_aid_is_declined() -> None:
    def mastercard_track2(values: dict[int, bytes]) -> None:
        values[0x57] = bytes.fromhex("5413330089601034D30122010000000000")

    result = tap(MitmCard(card("visa-card"), rewrite_gpo(mastercard_track2)), 1234)
    assert result.outcome is Outcome.DECLINED
    assert any("brand mixup" in r for r in result.reasons)


# --- no mag-stripe mode (Roland and Langer, WOOT 2013) ----------------------------------


def test_a_pdol_without_ttq_ends_the_application_before_any_gpo() -> None:
    def msd_fci(command: bytes, answer: bytes) -> bytes:
        if command[:2] != b"\x00\xa4" or b"2PAY" in command:
            return answer
        a5 = tlv.encode(0xA5, tlv.encode(0x50, b"VISA") + tlv.encode(0x9F38, b"\x9f\x02\x06"))
        return tlv.encode(0x6F, tlv.encode(0x84, command[5:-1]) + a5) + b"\x90\x00"

    attacked = MitmCard(card("visa-card"), msd_fci)
    result = tap(attacked, 1234)
    assert result.outcome is Outcome.END_APPLICATION  # Book B §3.3.3.6: no kernel 1 here
    assert "without TTQ in the PDOL, no kernel 1" in result.reasons[-1]
    assert result.apdu_count == 2


def test_a_format_1_gpo_answer_is_declined() -> None:
    def format1(command: bytes, answer: bytes) -> bytes:
        if command[:2] == b"\x80\xa8":
            return tlv.encode(0x80, bytes.fromhex("0080") + bytes.fromhex("08010100")) + b"\x90\x00"
        return answer

    result = tap(MitmCard(card("visa-card"), format1), 1234)
    assert result.outcome is Outcome.DECLINED
    assert "format 1" in result.reasons[-1]


def test_an_answer_without_cryptogram_is_declined() -> None:
    result = tap(MitmCard(card("visa-card"), rewrite_gpo(lambda v: v.pop(0x9F26))), 1234)
    assert result.outcome is Outcome.DECLINED
    assert "no application cryptogram" in result.reasons[-1]


# --- malformed and inconsistent answers -------------------------------------------------


def _set(tag: int, value: bytes) -> Callable[[dict[int, bytes]], object]:
    return lambda v: v.__setitem__(tag, value)


def _pop(tag: int) -> Callable[[dict[int, bytes]], object]:
    return lambda v: v.pop(tag)


@pytest.mark.parametrize(
    ("change", "outcome", "reason"),
    [
        (_pop(0x9F36), Outcome.END_APPLICATION, "ATC"),
        (_pop(0x82), Outcome.END_APPLICATION, "AIP"),
        (_pop(0x9F10), Outcome.END_APPLICATION, "IAD"),
        (_pop(0x57), Outcome.END_APPLICATION, "track 2"),
        (_set(0x9F26, bytes(7)), Outcome.END_APPLICATION, "9F26 has a wrong length"),
        (_set(0x9F36, b"\x01"), Outcome.END_APPLICATION, "9F36 has a wrong length"),
        (_set(0x82, b"\x20"), Outcome.END_APPLICATION, "82 has a wrong length"),
        (_set(0x9F27, b"\xc0"), Outcome.DECLINED, "RFU"),
        (_set(0x9F27, b"\x00"), Outcome.DECLINED, "AAC"),
        (_set(0x57, bytes.fromhex("4761739001010010")), Outcome.END_APPLICATION, "track 2"),
        (_set(0x94, bytes.fromhex("1001")), Outcome.END_APPLICATION, "wrong length"),
    ],
)
def test_inconsistent_gpo_answers(
    change: Callable[[dict[int, bytes]], object], outcome: Outcome, reason: str
) -> None:
    result = tap(MitmCard(card("visa-card"), rewrite_gpo(change)), 1234)
    assert result.outcome is outcome
    assert any(reason in r for r in result.reasons), result.reasons


def test_a_duplicated_tag_ends_the_application() -> None:
    def duplicate(command: bytes, answer: bytes) -> bytes:
        if command[:2] != b"\x80\xa8":
            return answer
        body = tlv.decode_one(answer[:-2], 0x77).value + tlv.encode(0x9F27, b"\x40")
        return tlv.encode(0x77, body) + b"\x90\x00"

    result = tap(MitmCard(card("visa-card"), duplicate), 1234)
    assert result.outcome is Outcome.END_APPLICATION
    assert "9F27 appears twice" in result.reasons[-1]


def test_a_pan_in_records_other_than_track_2_ends_the_application() -> None:
    def other_pan(command: bytes, answer: bytes) -> bytes:
        if command != bytes.fromhex("00B2011400"):
            return answer
        return answer.replace(bytes.fromhex("4761739001010010"), bytes.fromhex("4761739001010028"))

    result = tap(MitmCard(card("visa-card"), other_pan), 1234, cfg=config(floor_limit=5000))
    assert result.outcome is Outcome.END_APPLICATION
    assert any("differs" in r or "not the one" in r for r in result.reasons)


@pytest.mark.parametrize(
    ("faults", "outcome"),
    [
        ({"corrupt": {0xA8: "truncate"}}, Outcome.END_APPLICATION),
        ({"corrupt": {0xA8: "garble"}}, Outcome.END_APPLICATION),
        ({"wrong_sw": {0xA8: 0x6A80}}, Outcome.END_APPLICATION),
        ({"wrong_sw": {0xA8: 0x6984}}, Outcome.TRY_ANOTHER_INTERFACE),
        ({"wrong_sw": {0xA8: 0x6986}}, Outcome.TRY_ANOTHER_INTERFACE),
        ({"wrong_sw": {0xA8: 0x6985}}, Outcome.END_APPLICATION),  # select next: none left
        ({"wrong_sw": {0xB2: 0x6A83}}, Outcome.END_APPLICATION),
        ({"corrupt": {0xB2: "garble"}}, Outcome.END_APPLICATION),
        ({"wrong_sw": {0xA4: 0x6A82}}, Outcome.END_APPLICATION),
        ({"pull_after": 0}, Outcome.TRY_AGAIN),
        ({"pull_after": 2}, Outcome.TRY_AGAIN),
        ({"pull_after": 4}, Outcome.TRY_AGAIN),  # during the records
    ],
)
def test_card_faults_end_in_a_defined_outcome(faults: dict[str, Any], outcome: Outcome) -> None:
    result = tap(card("visa-card", **faults), 1234, cfg=config(floor_limit=5000))
    assert result.outcome is outcome
    assert result.reasons
    assert not any(r.startswith("internal error") for r in result.reasons)


# --- any mutation of any answer: a defined outcome, never an exception -----------------

_RECORDED: list[tuple[bytes, bytes]] = []


def _recorded() -> list[tuple[bytes, bytes]]:
    if not _RECORDED:
        log = LoggingCard(card("visa-phone"))
        result = tap(
            log, 4000, cfg=config(floor_limit=10000, cvm_required_limit=3000), rng=counter_rng()
        )
        assert result.outcome is Outcome.APPROVED, result.reasons
        _RECORDED.extend(log.log)
    return _RECORDED


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# A PDOL whose last tag lost its length (SELECT answer, byte 52): it once raised.
@example(which=1, position=52, kind="flip", byte=4)
@given(
    which=st.integers(min_value=0, max_value=7),
    position=st.integers(min_value=0, max_value=600),
    kind=st.sampled_from(["flip", "cut", "insert", "sw"]),
    byte=st.integers(min_value=0, max_value=255),
)
def test_mutated_answers_never_raise(which: int, position: int, kind: str, byte: int) -> None:
    exchanges = list(_recorded())
    which %= len(exchanges)
    command, answer = exchanges[which]
    data, sw = bytearray(answer[:-2]), answer[-2:]
    at = position % (len(data) or 1)
    if kind == "flip" and data:
        data[at] ^= byte or 1
    elif kind == "cut":
        del data[at:]
    elif kind == "insert":
        data.insert(at, byte)
    else:
        sw = bytes((byte, position & 0xFF))
    exchanges[which] = (command, bytes(data) + sw)
    result = tap(
        ReplayCard(exchanges),
        4000,
        cfg=config(floor_limit=10000, cvm_required_limit=3000),
        rng=counter_rng(),
    )
    assert isinstance(result.outcome, Outcome)
    assert not any(r.startswith("internal error") for r in result.reasons), result.reasons
    if result.outcome not in (Outcome.APPROVED, Outcome.ONLINE_REQUEST):
        assert result.reasons
