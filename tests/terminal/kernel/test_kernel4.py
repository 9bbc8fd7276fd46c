"""Kernel 4 (American Express Expresspay, terminal/kernel/k4): a full tap of the Amex
fixture card online (CDA, field 55 the issuer can verify), offline within the floor
limit, the Enhanced Contactless Reader Capabilities 9F6E the card is sent per
transaction, declines (an expired card's AAC, a CDA signature changed on the way, a
non-Amex PAN behind the Amex AID), and the commands sent."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from card.emv import EmvCard
from emvwire import tlv
from emvwire.profile import load_profile
from emvwire.qualifiers import ECRC, is_set
from emvwire.tags import Tag
from terminal.kernel.config import default_config
from terminal.kernel.k4.flow import DEFAULT_READER_CAPABILITIES, reader_capabilities
from terminal.kernel.outcome import Outcome
from terminal.kernel.transaction import Cvm, OdaResult
from tests.support.cards import CARDS
from tests.support.kernel import (
    LoggingCard,
    MitmCard,
    ReplayCard,
    ScriptedCard,
    card,
    kernel_config,
    replay_transcript,
    tap,
)

AMEX_AID = bytes.fromhex("A00000002501")


def _gpo_data(log: LoggingCard) -> bytes:
    gpo = next(c for c in log.commands if c[:2] == b"\x80\xa8")
    return gpo[7:-1]  # 83 L | 9F35 (1) | 9F6E (4), then Le


def test_online_tap_is_kernel_4_with_cda_and_a_field_55_of_the_ccd_cryptogram() -> None:
    logged = LoggingCard(card("amex-card"))
    result = tap(logged, 1000)
    assert result.outcome is Outcome.ONLINE_REQUEST, result
    assert result.kernel_id == b"\x04"
    assert result.kernel == "kernel 4 (American Express Expresspay)"
    assert (result.oda, result.oda_method, result.cvm) == (OdaResult.PASSED, "CDA", Cvm.NO_CVM)
    names = [c[:2] for c in logged.commands]
    assert names == [b"\x00\xa4", b"\x00\xa4", b"\x80\xa8"] + [b"\x00\xb2"] * 4 + [b"\x80\xae"]
    assert logged.commands[1][5:11] == AMEX_AID
    assert logged.commands[-1][2] == 0x90  # ARQC with CDA
    assert _gpo_data(logged) == b"\x22" + DEFAULT_READER_CAPABILITIES
    field55 = tlv.decode_flat(result.authorisation_data)
    assert field55[Tag.IAD][:2] == bytes.fromhex("0FA5")
    assert field55[Tag.CID] == b"\x80"
    assert len(field55[Tag.APPLICATION_CRYPTOGRAM]) == 8  # recovered from the SDAD
    assert result.masked_pan.endswith("0126")


def test_cvm_required_is_sent_in_9f6e_and_online_pin_chosen() -> None:
    logged = LoggingCard(card("amex-card"))
    result = tap(logged, 6000)
    assert result.outcome is Outcome.ONLINE_REQUEST
    assert result.cvm is Cvm.ONLINE_PIN
    sent = _gpo_data(logged)[1:]
    assert is_set(sent, ECRC.CVM_REQUIRED)
    assert not is_set(sent, ECRC.OFFLINE_ONLY)


def test_offline_approval_within_the_floor_limit() -> None:
    cfg = kernel_config(b"\x04", floor_limit=3000, terminal_floor_limit=3000)
    logged = LoggingCard(card("amex-card"))
    result = tap(logged, 1000, cfg=cfg)
    assert result.outcome is Outcome.APPROVED, result
    assert logged.commands[-1][2] == 0x50  # TC with CDA
    assert result.oda is OdaResult.PASSED
    assert tlv.decode_flat(result.authorisation_data)[Tag.CID] == b"\x40"


def test_an_expired_card_answers_an_aac_and_is_declined() -> None:
    result = tap(card("amex-card"), 1000, when=datetime(2031, 2, 1, 12, 0))
    assert result.outcome is Outcome.DECLINED
    assert any("AAC" in r for r in result.reasons)


def test_a_cda_signature_changed_on_the_way_declines() -> None:
    def flip(command: bytes, answer: bytes) -> bytes:
        if command[:2] != b"\x80\xae":
            return answer
        body = bytearray(answer)
        body[-10] ^= 0x01  # inside the SDAD
        return bytes(body)

    result = tap(MitmCard(card("amex-card"), flip), 1000)
    assert result.outcome is Outcome.DECLINED
    assert result.oda is OdaResult.FAILED


def test_a_visa_pan_behind_the_amex_aid_is_a_brand_mixup() -> None:
    profile = load_profile(CARDS / "amex-card.json")
    app = profile.applications[0]
    data = {**app.data, Tag.PAN: bytes.fromhex("4761739001010010")}
    logged = LoggingCard(EmvCard(replace(profile, applications=(replace(app, data=data),))))
    result = tap(logged, 1000)
    assert result.outcome is Outcome.DECLINED
    assert any("brand mixup" in r for r in result.reasons)
    assert all(c[:2] != b"\x80\xae" for c in logged.commands)  # no GENERATE AC


def test_reader_capabilities_set_byte_3_per_transaction() -> None:
    value = reader_capabilities(bytes.fromhex("38E0C003"), cvm_required=False, offline_only=True)
    assert value == bytes.fromhex("18E08003")  # full online mode cleared, CVM bit cleared
    assert reader_capabilities(None, cvm_required=True, offline_only=False) == bytes.fromhex(
        "18E04003"
    )
    assert reader_capabilities(b"\x00", cvm_required=False, offline_only=False) == (
        DEFAULT_READER_CAPABILITIES
    )


def test_an_offline_only_terminal_says_so_and_is_never_asked_for_an_arqc() -> None:
    cfg = kernel_config(b"\x04", floor_limit=3000, terminal_floor_limit=3000)
    cfg = replace(cfg, terminal_data={**cfg.terminal_data, Tag.TERMINAL_TYPE: b"\x23"})
    logged = LoggingCard(card("amex-card"))
    result = tap(logged, 1000, cfg=cfg)
    assert is_set(_gpo_data(logged)[1:], ECRC.OFFLINE_ONLY)
    assert result.outcome is Outcome.APPROVED


def test_the_default_configuration_has_the_amex_combination() -> None:
    combo = next(c for c in default_config().combinations if c.aid == AMEX_AID)
    assert combo.kernel_id == b"\x04"
    assert combo.kernel_data[Tag.ENHANCED_CONTACTLESS_READER_CAPABILITIES] == bytes.fromhex(
        "18E00003"
    )


def test_the_recorded_tap_replays_byte_for_byte() -> None:
    card, doc = ScriptedCard.from_transcript("tapstack-amex-online.json")
    result = replay_transcript(card, doc, bytes.fromhex(doc["randoms"]))
    assert card.mismatches == []
    assert card.done
    assert (result.outcome, result.apdu_count, result.oda) == (
        Outcome.ONLINE_REQUEST,
        8,
        OdaResult.PASSED,
    )


def test_a_replayed_tap_fails_cda_under_a_fresh_un() -> None:
    """Pre-play (Bond et al. 2014): the recorded signature covers the recorded UN."""
    scripted, doc = ScriptedCard.from_transcript("tapstack-amex-online.json")
    result = replay_transcript(ReplayCard(scripted.exchanges), doc, bytes.fromhex("01020304"))
    assert result.outcome is Outcome.DECLINED
    assert result.oda is OdaResult.FAILED
