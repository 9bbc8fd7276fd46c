"""Kernel 3 end to end: the fixture cards through the entry point and the emulated reader."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest

from emvwire import dol, tlv
from emvwire.apdu import read_record, select
from emvwire.cardref import DEMO_CARD_REFERENCE_KEY, card_reference
from emvwire.crypto.cryptogram import CryptogramData, verify_arqc
from emvwire.errors import VerificationError
from emvwire.oda import CaKeyStore
from emvwire.personalise import VISA_PDOL
from terminal.kernel.k3.rules import cryptogram_type
from terminal.kernel.outcome import Outcome, Start, UiMessage
from terminal.kernel.registry import default_registry
from terminal.kernel.transaction import Cvm, OdaResult
from tests.support.cards import VISA_AID, VISA_PAN
from tests.support.kernel import WHEN, LoggingCard, ReplayCard, card, config, counter_rng, tap

PPSE = select("2PAY.SYS.DDF01").encode()
SELECT_VISA = select(VISA_AID).encode()


def _gpo(log: LoggingCard) -> dict[int, bytes]:
    answer = next(a for c, a in log.log if c[:2] == b"\x80\xa8")
    return tlv.flatten(tlv.decode(answer[:-2]))


def test_visa_card_online_takes_three_apdus() -> None:
    log = LoggingCard(card("visa-card"))
    result = tap(log, 1234, rng=lambda n: b"\x11\x22\x33\x44"[:n])
    assert result.outcome is Outcome.ONLINE_REQUEST
    assert result.apdu_count == 3
    assert log.commands[:2] == [PPSE, SELECT_VISA]
    assert log.commands[2][:2] == b"\x80\xa8"
    assert result.cvm is Cvm.NO_CVM
    assert result.oda is OdaResult.NOT_PERFORMED
    assert result.kernel.startswith("kernel 3")
    assert result.label == "VISA CREDIT"
    assert result.ui[-1].message is UiMessage.AUTHORISING
    assert result.parameters.encode()[0] == 0x30
    # field 55 carries the card's cryptogram and the UN the kernel sent
    f55 = tlv.flatten(tlv.decode(result.authorisation_data))
    gpo = _gpo(log)
    assert f55[0x9F26] == gpo[0x9F26]
    assert f55[0x9F36] == gpo[0x9F36]
    assert f55[0x9F37] == bytes.fromhex("11223344")
    assert f55[0x9F02] == bytes.fromhex("000000001234")
    assert f55[0x84] == VISA_AID
    assert f55[0x9F34] == bytes.fromhex("1F0002")
    assert 0x57 not in f55
    assert 0x5A not in f55
    assert result.track2 == gpo[0x57]
    assert result.masked_pan == "476173******0010"
    assert result.card_reference == card_reference(DEMO_CARD_REFERENCE_KEY, VISA_PAN, b"\x01")
    assert not result.token


def test_visa_card_over_the_cvm_limit_asks_for_online_pin() -> None:
    result = tap(card("visa-card"), 6000)
    assert result.outcome is Outcome.ONLINE_REQUEST
    assert result.cvm is Cvm.ONLINE_PIN
    assert result.online_pin_required
    assert result.ui[-1].message is UiMessage.PLEASE_ENTER_YOUR_PIN
    assert result.data[0x9F34] == bytes.fromhex("020000")
    assert result.apdu_count == 3


def test_visa_phone_consumer_device_cvm_is_verified_by_fdda() -> None:
    log = LoggingCard(card("visa-phone"))
    result = tap(log, 6000)
    assert result.outcome is Outcome.ONLINE_REQUEST
    assert result.cvm is Cvm.CDCVM
    assert result.oda is OdaResult.PASSED
    assert result.token
    # PPSE, SELECT, GPO, then every AFL record (for the signed CTQ), nothing else
    assert result.apdu_count == 3 + 5
    assert [c[:2] for c in log.commands[3:]] == [b"\x00\xb2"] * 5
    assert result.masked_pan == "489537******0013"


def test_visa_phone_under_the_cvm_limit_needs_no_records() -> None:
    result = tap(card("visa-phone"), 1234)
    assert result.outcome is Outcome.ONLINE_REQUEST
    assert result.cvm is Cvm.NO_CVM
    assert result.apdu_count == 3
    assert result.token  # form factor: mobile phone


def test_offline_approval_with_fdda() -> None:
    log = LoggingCard(card("visa-card"))
    result = tap(log, 1234, cfg=config(floor_limit=5000))
    assert result.outcome is Outcome.APPROVED, result.reasons
    assert result.oda is OdaResult.PASSED
    assert result.oda_method == "fDDA"
    assert result.data[0x9F27] == b"\x40"
    assert result.apdu_count == 3 + 4
    assert log.commands[3:] == [read_record(2, n).encode() for n in (1, 2, 3)] + [
        read_record(3, 1).encode()
    ]
    shown = result.ui[-1]
    assert shown.message is UiMessage.APPROVED
    assert shown.value == 1234
    assert result.tvr == bytes(5)


def test_offline_fdda_failure_goes_online_as_the_ctq_asks() -> None:
    cfg = config(floor_limit=5000)
    cfg = type(cfg)(cfg.terminal_data, cfg.combinations, CaKeyStore([]))
    result = tap(card("visa-card"), 1234, cfg=cfg)
    assert result.outcome is Outcome.ONLINE_REQUEST
    assert result.oda is OdaResult.FAILED
    assert result.tvr[0] & 0x08  # DDA failed
    assert any("no CA public key" in r for r in result.reasons)


def test_offline_only_reader_declines_when_fdda_fails() -> None:
    cfg = config(floor_limit=5000, ttq=bytes.fromhex("2F004000"))
    cfg = type(cfg)(cfg.terminal_data, cfg.combinations, CaKeyStore([]))
    result = tap(card("visa-card"), 1234, cfg=cfg)
    assert result.outcome is Outcome.DECLINED
    assert result.ui[-1].message is UiMessage.NOT_AUTHORISED


def test_beyond_the_card_offline_limit_goes_online() -> None:
    result = tap(card("visa-card"), 9000, cfg=config(floor_limit=10000, cvm_required_limit=10000))
    assert result.outcome is Outcome.ONLINE_REQUEST
    assert result.data[0x9F27] == b"\x80"
    assert result.apdu_count == 3


def _recorded_offline_tap() -> list[tuple[bytes, bytes]]:
    log = LoggingCard(card("visa-card"))
    result = tap(log, 1234, cfg=config(floor_limit=5000), rng=counter_rng())
    assert result.outcome is Outcome.APPROVED
    return log.log


def test_an_expired_application_with_a_tc_is_declined() -> None:
    replay = ReplayCard(_recorded_offline_tap())
    result = tap(
        replay, 1234, cfg=config(floor_limit=5000), rng=counter_rng(), when=datetime(2031, 2, 1)
    )
    assert result.outcome is Outcome.DECLINED
    assert "application expired" in result.reasons
    assert result.tvr[1] & 0x40


def test_an_expired_application_with_an_arqc_goes_to_the_issuer_flagged() -> None:
    log = LoggingCard(card("visa-card"))
    tap(log, 1234)
    result = tap(ReplayCard(log.log), 1234, when=datetime(2031, 2, 1))
    assert result.outcome is Outcome.ONLINE_REQUEST
    assert result.tvr[1] & 0x40  # expired application


def test_select_next_and_try_again_parameters() -> None:
    result = tap(card("visa-card", pull_after=2), 1234)
    assert result.outcome is Outcome.TRY_AGAIN
    assert result.parameters.start is Start.B
    assert result.parameters.ui_on_restart is not None
    assert result.parameters.ui_on_restart.message is UiMessage.PRESENT_CARD_AGAIN


@pytest.mark.parametrize(
    ("cid", "iad", "kind"),
    [
        (b"\x80", b"", 0x80),
        (b"\x40", b"", 0x40),
        (b"\x00", b"", 0x00),
        (b"\xc0", b"", None),
        (None, bytes.fromhex("06011103900000"), 0x40),  # CVR byte 2 bits 6-5 = 01
        (None, bytes.fromhex("06011203A03002"), 0x80),
        (None, bytes.fromhex("06011203800000"), 0x00),
        (None, bytes.fromhex("1F1601A0000000") + bytes(25), 0x80),  # format 2
        (None, bytes.fromhex("0601"), None),
    ],
)
def test_cryptogram_type_from_cid_or_iad(cid: bytes | None, iad: bytes, kind: int | None) -> None:
    assert cryptogram_type(cid, iad) == kind


def test_mastercard_through_the_registry() -> None:
    registry = default_registry()
    assert b"\x02" in registry
    result = tap(card("mastercard-card"), 1234, registry=registry)
    assert result.outcome is Outcome.ONLINE_REQUEST
    assert result.aid == bytes.fromhex("A0000000041010")
    assert result.masked_pan == "541333******1034"


def test_results_are_dated_by_the_clock() -> None:
    result = tap(card("visa-card"), 1234, when=WHEN)
    assert result.data[0x9A] == bytes.fromhex("260301")
    assert result.data[0x9F21] == bytes.fromhex("123000")


def test_field_55_carries_the_tvr_the_cryptogram_covers() -> None:
    """Kernel 3 gives the card its TVR at GPO, before its own checks; the ARQC covers
    that TVR. Field 55 must carry it (not the final TVR) or the issuer cannot verify,
    and a TVR changed on the way must break the ARQC."""
    log = LoggingCard(card("visa-card"))
    result = tap(log, 1234)
    gpo_command = log.commands[2]
    sent = dol.split(VISA_PDOL, gpo_command[7 : 7 + gpo_command[6]])
    f55 = tlv.flatten(tlv.decode(result.authorisation_data))
    assert f55[0x95] == sent[0x95]
    assert result.tvr != sent[0x95]  # the final TVR (ODA not performed, floor limit)
    data = CryptogramData(
        tag_9f02=f55[0x9F02], tag_9f03=f55[0x9F03], tag_9f1a=f55[0x9F1A], tag_95=f55[0x95],
        tag_5f2a=f55[0x5F2A], tag_9a=f55[0x9A], tag_9c=f55[0x9C], tag_9f37=f55[0x9F37],
        tag_82=f55[0x82], tag_9f36=f55[0x9F36], tag_9f10=f55[0x9F10],
    )  # fmt: skip
    app = card("visa-card").profile.applications[0]
    verify_arqc(app.cvn, app.keys.ac, data, f55[0x9F26])
    with pytest.raises(VerificationError):
        verify_arqc(app.cvn, app.keys.ac, replace(data, tag_95=result.tvr), f55[0x9F26])
