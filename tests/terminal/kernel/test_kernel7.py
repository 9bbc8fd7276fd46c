"""Kernel 7 (UnionPay QuickPass, terminal/kernel/k7): full taps of the UnionPay fixture
card (TDES) and phone (SM4, consumer device CVM) online, offline with fDDA, the TTQ
and CTQ, the defences kernel 7 shares with kernel 3 (a CTQ changed on the way, byte 2
alone or with byte 1; a non-UnionPay PAN behind the UnionPay AID), declines, and the
recorded taps replayed byte for byte."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest

from card.emv import EmvCard
from emvwire import tlv
from emvwire.profile import load_profile
from emvwire.qualifiers import TTQ, is_set
from emvwire.tags import Tag
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
    rewrite_gpo,
    tap,
)


def test_online_tap_is_kernel_7_in_three_commands() -> None:
    logged = LoggingCard(card("unionpay-card"))
    result = tap(logged, 1000)
    assert result.outcome is Outcome.ONLINE_REQUEST, result
    assert (result.kernel_id, result.kernel) == (b"\x07", "kernel 7 (UnionPay QuickPass)")
    assert result.apdu_count == 3
    assert logged.commands[1][5:13] == bytes.fromhex("A000000333010102")
    field55 = tlv.decode_flat(result.authorisation_data)
    assert field55[Tag.IAD][:3] == bytes.fromhex("070101")
    assert is_set(field55[Tag.TTQ], TTQ.ONLINE_CRYPTOGRAM_REQUIRED)
    assert Tag.CTQ in field55
    assert result.masked_pan.endswith("0016")


def test_offline_approval_with_fdda() -> None:
    result = tap(card("unionpay-card"), 1000, cfg=kernel_config(b"\x07", floor_limit=3000))
    assert result.outcome is Outcome.APPROVED, result
    assert (result.oda, result.oda_method, result.apdu_count) == (OdaResult.PASSED, "fDDA", 7)


def test_the_sm_suite_card_is_approved_offline_with_sm2_fdda() -> None:
    """The whole SM suite (SM4 cryptogram, SM2-signed certificates and fDDA): the CA
    key the card names (A000000333/E8) is an SM2 key, so kernel 7 verifies with SM2."""
    result = tap(card("unionpay-sm-card"), 1000, cfg=kernel_config(b"\x07", floor_limit=3000))
    assert result.outcome is Outcome.APPROVED, result
    assert (result.oda, result.oda_method, result.apdu_count) == (
        OdaResult.PASSED,
        "fDDA (SM2)",
        7,
    )
    assert result.data[0x9F27] == b"\x40"  # a TC
    assert tlv.decode_flat(result.authorisation_data)[Tag.IAD][:3] == bytes.fromhex("070104")


def _flip_sdad(values: dict[int, bytes]) -> None:
    sdad = bytearray(values[Tag.SDAD])
    sdad[-1] ^= 0x01  # the last bit of s
    values[Tag.SDAD] = bytes(sdad)


def test_a_tampered_sm2_signature_fails_oda_and_an_offline_reader_declines() -> None:
    reason = "fDDA failed: signed dynamic application data SM2 signature does not verify"
    online = kernel_config(b"\x07", floor_limit=3000)
    result = tap(MitmCard(card("unionpay-sm-card"), rewrite_gpo(_flip_sdad)), 1000, cfg=online)
    assert (result.outcome, result.oda) == (Outcome.ONLINE_REQUEST, OdaResult.FAILED)
    assert result.reasons[0] == reason
    assert result.tvr[0] & 0x08  # DDA failed
    offline = kernel_config(b"\x07", floor_limit=3000, ttq=bytes.fromhex("2F004000"))
    result = tap(MitmCard(card("unionpay-sm-card"), rewrite_gpo(_flip_sdad)), 1000, cfg=offline)
    assert (result.outcome, result.oda) == (Outcome.DECLINED, OdaResult.FAILED)
    assert reason in result.reasons


def test_the_sm4_phone_verifies_its_holder_and_the_signature_covers_it() -> None:
    result = tap(card("unionpay-phone"), 6000)
    assert result.outcome is Outcome.ONLINE_REQUEST
    assert (result.cvm, result.oda) == (Cvm.CDCVM, OdaResult.PASSED)
    assert tlv.decode_flat(result.authorisation_data)[Tag.IAD][:3] == bytes.fromhex("070104")


def test_above_the_cvm_limit_a_card_asks_for_online_pin() -> None:
    result = tap(card("unionpay-card"), 6000)
    assert (result.outcome, result.cvm) == (Outcome.ONLINE_REQUEST, Cvm.ONLINE_PIN)


@pytest.mark.parametrize("ctq", ["8080", "0080"], ids=["byte 2 only", "both bytes"])
def test_a_ctq_changed_on_the_way_is_caught(ctq: str) -> None:
    """Break, Fix, Verify (Basin et al. 2021): the card asks for online PIN (CTQ 8000);
    the attacker claims a consumer device CVM, flipping only byte 2 bit 8 or byte 1
    too. The claim makes the kernel read the signed CTQ (9F69): declined either way."""

    def claim(values: dict[int, bytes]) -> None:
        assert values[Tag.CTQ] == bytes.fromhex("8000")
        values[Tag.CTQ] = bytes.fromhex(ctq)

    result = tap(MitmCard(card("unionpay-card"), rewrite_gpo(claim)), 6000)
    assert result.outcome is Outcome.DECLINED
    assert any("changed on the way" in r for r in result.reasons)


def test_an_expired_card_is_declined() -> None:
    result = tap(card("unionpay-card"), 1000, when=datetime(2031, 2, 1, 12, 0))
    assert result.outcome is Outcome.DECLINED


def test_a_visa_pan_behind_the_unionpay_aid_is_a_brand_mixup() -> None:
    profile = load_profile(CARDS / "unionpay-card.json")
    app = profile.applications[0]
    track2 = bytes.fromhex("4761739001010010D30122010000000000")
    data = {**app.data, Tag.TRACK2_EQUIVALENT: track2}
    result = tap(EmvCard(replace(profile, applications=(replace(app, data=data),))), 1000)
    assert result.outcome is Outcome.DECLINED
    assert any("brand mixup" in r for r in result.reasons)


@pytest.mark.parametrize(
    ("name", "apdus", "cvm"),
    [
        ("tapstack-unionpay-online.json", 3, Cvm.NO_CVM),
        ("tapstack-unionpay-phone-cdcvm.json", 8, Cvm.CDCVM),
    ],
)
def test_the_recorded_taps_replay_byte_for_byte(name: str, apdus: int, cvm: Cvm) -> None:
    scripted, doc = ScriptedCard.from_transcript(name)
    result = replay_transcript(scripted, doc, bytes.fromhex(doc["randoms"]))
    assert scripted.mismatches == []
    assert scripted.done
    assert (result.outcome, result.apdu_count, result.cvm) == (Outcome.ONLINE_REQUEST, apdus, cvm)


def test_a_replayed_phone_tap_fails_fdda_under_a_fresh_un() -> None:
    """Pre-play: the signed CDCVM claim was for another UN; it is not trusted."""
    scripted, doc = ScriptedCard.from_transcript("tapstack-unionpay-phone-cdcvm.json")
    result = replay_transcript(ReplayCard(scripted.exchanges), doc, bytes.fromhex("01020304"))
    assert result.oda is OdaResult.FAILED
    assert result.outcome is Outcome.DECLINED
