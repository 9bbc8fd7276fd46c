"""The card's own decisions: qVSDC GPO (Book C-3) and M/Chip GENERATE AC (Book C-2).

TTQ bits used (Book C-3 Annex A 9F66): byte 1 20 qVSDC, 10 contact chip, 08 offline
only, 04 online PIN, 02 signature, 01 ODA for online; byte 2 80 online cryptogram
required, 40 CVM required; byte 3 40 CDCVM supported.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from card.emv import EmvCard
from card.probe import CardProbe, TapRecord
from card.visa import decide
from emvwire import tlv
from emvwire.profile import CardProfile, load_profile

CARDS = Path(__file__).resolve().parents[2] / "fixtures" / "cards"

OFFLINE_CAPABLE = bytes.fromhex("36004000")
ONLINE_REQUIRED = bytes.fromhex("36804000")
OFFLINE_ONLY = bytes.fromhex("2E004000")
CVM_REQUIRED = bytes.fromhex("36404000")


def _profile(name: str, **app_changes: object) -> CardProfile:
    profile = load_profile(CARDS / f"{name}.json")
    if app_changes:
        app = replace(profile.applications[0], **app_changes)  # type: ignore[arg-type]
        profile = replace(profile, applications=(app,))
    return profile


def _visa(card: EmvCard, ttq: bytes = OFFLINE_CAPABLE, **txn: bytes) -> dict[int, bytes]:
    card.power_on()
    values = {0x9F66: ttq, **{int(k[1:], 16): v for k, v in txn.items()}}
    tap = CardProbe(card).tap(values)
    return tlv.flatten(tlv.decode(tap.gpo))


def _cvr(gpo: dict[int, bytes]) -> bytes:
    iad = gpo[0x9F10]
    return iad[4:7] if iad[0] == 0x06 else iad[3:8]


@pytest.mark.parametrize("name", ["visa-card", "visa-phone"])
def test_online_required_ttq_gives_an_arqc(name: str) -> None:
    card = EmvCard(_profile(name))
    gpo = _visa(card, ONLINE_REQUIRED)
    assert gpo[0x9F27] == b"\x80"
    assert _cvr(gpo)[0] & 0x30 == 0x20  # CVR: ARQC
    assert card.counters().last_online_atc == 1
    assert card.counters().offline_count == 0


@pytest.mark.parametrize("name", ["visa-card", "visa-phone"])
def test_offline_within_limits_gives_a_tc_with_fdda_until_the_count_runs_out(name: str) -> None:
    card = EmvCard(_profile(name))  # limits: 3 offline taps, 50.00 in all
    for n in (1, 2, 3):
        gpo = _visa(card)
        assert gpo[0x9F27] == b"\x40"
        assert 0x9F4B in gpo
        assert 0x94 in gpo
        assert _cvr(gpo)[0] & 0x30 == 0x10  # CVR: TC
        assert _cvr(gpo)[2] & 0x02  # CVR: offline dynamic data authentication
        assert card.counters().offline_count == n
        assert card.counters().offline_amount == 1000 * n
    gpo = _visa(card)  # the 4th offline tap is beyond offline_count
    assert gpo[0x9F27] == b"\x80"
    assert _cvr(gpo)[1] & 0x20  # CVR: velocity checking counters exceeded
    assert card.counters().offline_count == 0  # the online request resets them
    assert card.counters().last_online_atc == 4


def test_over_the_offline_amount_goes_online() -> None:
    card = EmvCard(_profile("visa-card"))
    gpo = _visa(card, x9F02=bytes.fromhex("000000005001"))
    assert gpo[0x9F27] == b"\x80"
    assert _cvr(gpo)[1] & 0x20
    # Within the amount on its own, but not with what was spent offline before.
    card = EmvCard(_profile("visa-card"))
    assert _visa(card, x9F02=bytes.fromhex("000000004000"))[0x9F27] == b"\x40"
    assert _visa(card, x9F02=bytes.fromhex("000000001001"))[0x9F27] == b"\x80"


def test_foreign_currency_always_goes_online() -> None:
    card = EmvCard(_profile("visa-card"))
    gpo = _visa(card, x5F2A=bytes.fromhex("0840"), x9F02=bytes.fromhex("000000000001"))
    assert gpo[0x9F27] == b"\x80"
    assert card.counters().offline_amount == 0


def test_non_purchase_goes_online() -> None:
    gpo = _visa(EmvCard(_profile("visa-card")), x9C=b"\x01")  # cash
    assert gpo[0x9F27] == b"\x80"


def test_offline_only_reader_tc_then_aac_beyond_limits() -> None:
    card = EmvCard(_profile("visa-card", limits={"offline_amount": 5000, "offline_count": 1}))
    gpo = _visa(card, OFFLINE_ONLY)
    assert gpo[0x9F27] == b"\x40"
    assert _cvr(gpo)[0] & 0x01  # CVR: unable to go online
    gpo = _visa(card, OFFLINE_ONLY)
    assert gpo[0x9F27] == b"\x00"
    assert 0x9F4B not in gpo
    assert 0x94 not in gpo
    assert card.counters().offline_count == 1  # an AAC moves nothing but the ATC
    assert card.counters().atc == 2


def test_expired_or_blocked_application_declines() -> None:
    card = EmvCard(_profile("visa-card"))
    gpo = _visa(card, ONLINE_REQUIRED, x9A=bytes.fromhex("310101"))  # after 5F24 301231
    assert gpo[0x9F27] == b"\x00"
    assert _visa(card, ONLINE_REQUIRED, x9A=bytes.fromhex("301231"))[0x9F27] == b"\x80"
    card.state[card.profile.applications[0].aid].blocked = True
    assert _visa(card)[0x9F27] == b"\x00"


def test_cvm_required_card_asks_online_pin_or_signature() -> None:
    card = EmvCard(_profile("visa-card"))
    gpo = _visa(card, bytes.fromhex("36C04000"))  # online required, CVM required
    assert gpo[0x9F6C] == bytes.fromhex("8000")  # online PIN required
    gpo = _visa(card, bytes.fromhex("32C04000"))  # no online PIN on this reader
    assert gpo[0x9F6C] == bytes.fromhex("4000")  # signature required
    gpo = _visa(card, bytes.fromhex("36004000"))  # no CVM asked, TC
    assert gpo[0x9F6C] == bytes.fromhex("2000")


def test_phone_performs_cdcvm_when_a_cvm_is_required() -> None:
    card = EmvCard(_profile("visa-phone"))
    gpo = _visa(card, bytes.fromhex("36C04000"))
    assert gpo[0x9F27] == b"\x80"
    assert gpo[0x9F6C] == bytes.fromhex("0080")  # CDCVM performed, no PIN asked
    assert _cvr(gpo)[2] & 0x01  # CVR: CDCVM performed (tapstack's bit)
    gpo = _visa(card, OFFLINE_CAPABLE)
    assert gpo[0x9F6C][1] & 0x80 == 0
    assert _cvr(gpo)[2] & 0x01 == 0


def test_decide_table() -> None:
    from card.application import OfflineCheck

    ok = OfflineCheck(False, False, False, False)
    over = OfflineCheck(True, False, False, False)
    assert decide(OFFLINE_CAPABLE, ok, usable=True, cdcvm_capable=False).ac == 0x40
    assert decide(OFFLINE_CAPABLE, over, usable=True, cdcvm_capable=False).ac == 0x80
    assert decide(ONLINE_REQUIRED, ok, usable=True, cdcvm_capable=False).ac == 0x80
    assert decide(OFFLINE_ONLY, over, usable=True, cdcvm_capable=False).ac == 0x00
    assert decide(OFFLINE_ONLY, ok, usable=True, cdcvm_capable=False).ac == 0x40
    assert decide(OFFLINE_CAPABLE, ok, usable=False, cdcvm_capable=False).ac == 0x00
    d = decide(ONLINE_REQUIRED, ok, usable=True, cdcvm_capable=False)
    assert d.fdda is False
    assert decide(bytes.fromhex("37804000"), ok, usable=True, cdcvm_capable=False).fdda
    declined = decide(bytes.fromhex("37804000"), ok, usable=False, cdcvm_capable=False)
    assert (declined.ac, declined.fdda) == (0x00, True)  # ODA for online: always signed
    assert decide(OFFLINE_ONLY, over, usable=True, cdcvm_capable=False).fdda is False


# --- Mastercard ----------------------------------------------------------------------


def _mc(card: EmvCard, p1: int, **txn: bytes) -> TapRecord:
    card.power_on()
    values = {int(k[1:], 16): v for k, v in txn.items()}
    return CardProbe(card).tap(values, gen_ac=p1)


def _mc_cvr(tap: TapRecord) -> bytes:
    return tap.data[0x9F10][2:8]


@pytest.mark.parametrize("name", ["mastercard-card", "mastercard-phone"])
def test_mastercard_never_answers_above_the_request(name: str) -> None:
    card = EmvCard(_profile(name))  # no offline limits: no offline approval
    assert _mc(card, 0x00).data[0x9F27] == b"\x00"
    assert _mc(card, 0x80).data[0x9F27] == b"\x80"
    tap = _mc(card, 0x40)
    assert tap.data[0x9F27] == b"\x80"  # TC asked, limits say online
    assert _mc_cvr(tap)[4] & 0xA0 == 0xA0  # CVR: offline limits exceeded
    assert card.counters().atc == 3


def test_mastercard_tc_within_limits_and_counters_in_the_iad() -> None:
    card = EmvCard(_profile("mastercard-card", limits={"offline_amount": 3000, "offline_count": 5}))
    tap = _mc(card, 0x40)
    assert tap.data[0x9F27] == b"\x40"
    cvr = _mc_cvr(tap)
    assert cvr[0] == 0x90  # no 2nd GENERATE AC, TC
    assert cvr[3] & 0x02  # domestic (terminal 0250 = issuer 0250)
    assert tap.data[0x9F10][10:18] == bytes.fromhex("0001000000001000")
    tap = _mc(card, 0x40, x9F02=bytes.fromhex("000000002500"))  # 35.00 in all: over
    assert tap.data[0x9F27] == b"\x80"
    assert _mc_cvr(tap)[4] & 0x20  # cumulative offline limit exceeded
    tap = _mc(card, 0x40, x9F1A=bytes.fromhex("0840"))  # abroad, same currency
    assert tap.data[0x9F27] == b"\x40"
    assert _mc_cvr(tap)[3] & 0x04  # international


def test_mastercard_phone_reports_cardholder_verified_by_the_device() -> None:
    phone = _mc(EmvCard(_profile("mastercard-phone")), 0x80)
    assert _mc_cvr(phone)[0] & 0x05 == 0x05  # offline PIN performed and successful
    assert _mc_cvr(phone)[3] & 0x20 == 0
    plastic = _mc(EmvCard(_profile("mastercard-card")), 0x80)
    assert _mc_cvr(plastic)[0] & 0x05 == 0
    assert _mc_cvr(plastic)[3] & 0x20  # offline PIN not performed


def test_mastercard_expired_declines_whatever_the_request() -> None:
    card = EmvCard(_profile("mastercard-card"))
    tap = _mc(card, 0x80, x9A=bytes.fromhex("310102"))
    assert tap.data[0x9F27] == b"\x00"
