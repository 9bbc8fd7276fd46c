"""fDDA and CDA from the cards verify with emvwire.oda, as a terminal would check them.

The terminal side is replayed from what crossed the wire: the CA key named by 8F from
the test CA of fixtures/ca, the issuer and ICC certificates and the static data from
the records the AFL names (Book 2 §6.3, §6.4), then the signature: Visa fDDA over
9F37 || 9F02 || 5F2A || 9F69 with the card's 9F69 read from its record, and Mastercard
CDA over the GENERATE AC answer (Book 2 §6.6.2).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from card.emv import EmvCard
from card.probe import CardProbe, TapRecord
from emvwire import tlv
from emvwire.crypto import derive_icc_mk_a, verify_arqc
from emvwire.errors import OdaError
from emvwire.oda import (
    CaKeyStore,
    IccPublicKey,
    build_static_data,
    oda_records,
    recover_icc_key,
    recover_issuer_key,
    verify_cda,
    verify_fdda,
)
from emvwire.profile import CardProfile, load_profile

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
TODAY = date(2025, 6, 15)  # card.probe's default transaction date
IMK_AC = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")  # fixtures/issuer, both schemes


@pytest.fixture(scope="module")
def store() -> CaKeyStore:
    return CaKeyStore.load(FIXTURES / "ca")


def _profile(name: str) -> CardProfile:
    return load_profile(FIXTURES / "cards" / f"{name}.json")


def icc_key(store: CaKeyStore, tap: TapRecord) -> IccPublicKey:
    """Recover the ICC public key from the records the tap read (Book 2 §6.3-6.4)."""
    d = tap.data
    ca = store.get(tap.aid[:5], d[0x8F][0])
    issuer = recover_issuer_key(ca, d[0x90], d.get(0x92), d[0x9F32], d[0x5A], TODAY)
    static = build_static_data(
        [(sfi, tap.records[(sfi, n)]) for sfi, n in oda_records(d[0x94])],
        aip=d[0x82],
        sda_tag_list=d.get(0x9F4A),
    )
    return recover_icc_key(issuer, d[0x9F46], d.get(0x9F48), d[0x9F47], d[0x5A], static, TODAY)


def _fdda(icc: IccPublicKey, tap: TapRecord, card_auth: bytes) -> bytes:
    values = tlv.flatten(tlv.decode(tap.gpo))
    result = verify_fdda(
        icc,
        values[0x9F4B],
        unpredictable_number=bytes.fromhex("A1B2C3D4"),
        amount_authorised=bytes.fromhex("000000001000"),
        currency_code=bytes.fromhex("0978"),
        card_auth_data=card_auth,
    )
    return result.icc_dynamic_number


@pytest.mark.parametrize("name", ["visa-card", "visa-phone"])
def test_fdda_verifies_and_signs_the_ctq(store: CaKeyStore, name: str) -> None:
    tap = CardProbe(EmvCard(_profile(name))).tap()
    gpo = tlv.flatten(tlv.decode(tap.gpo))
    icc = icc_key(store, tap)
    assert icc.pan == _profile(name).applications[0].pan
    card_auth = tap.data[0x9F69]
    assert card_auth[0] == 0x01
    assert card_auth[5:7] == gpo[0x9F6C]  # the CTQ the reader acts on is the signed one
    assert _fdda(icc, tap, card_auth) == gpo[0x9F36]  # ICC dynamic number: the ATC
    # Break, Fix, Verify (S&P 2021): a relay that flips "CDCVM performed" is caught.
    forged = card_auth[:5] + bytes((card_auth[5], card_auth[6] | 0x80))
    if forged != card_auth:
        with pytest.raises(OdaError):
            _fdda(icc, tap, forged)
    with pytest.raises(OdaError):
        _fdda(icc, tap, card_auth[:1] + bytes(4) + card_auth[5:])


def test_phone_cdcvm_is_in_the_signed_ctq(store: CaKeyStore) -> None:
    tap = CardProbe(EmvCard(_profile("visa-phone"))).tap({0x9F66: bytes.fromhex("36404000")})
    gpo = tlv.flatten(tlv.decode(tap.gpo))
    assert gpo[0x9F6C] == bytes.fromhex("2080")  # go online if ODA fails; CDCVM performed
    assert tap.data[0x9F69][5:] == gpo[0x9F6C]
    _fdda(icc_key(store, tap), tap, tap.data[0x9F69])
    with pytest.raises(OdaError):
        _fdda(icc_key(store, tap), tap, tap.data[0x9F69][:5] + bytes.fromhex("2000"))


def test_fdda_for_online_only_when_the_reader_asks(store: CaKeyStore) -> None:
    profile = _profile("visa-card")
    # Online cryptogram required, ODA for online supported (TTQ byte 1 bit 1).
    tap = CardProbe(EmvCard(profile)).tap({0x9F66: bytes.fromhex("37804000")})
    gpo = tlv.flatten(tlv.decode(tap.gpo))
    assert gpo[0x9F27] == b"\x80"
    assert 0x94 in gpo
    assert _fdda(icc_key(store, tap), tap, tap.data[0x9F69]) == gpo[0x9F36]
    # Without that bit: no AFL, no SDAD, no record read.
    tap = CardProbe(EmvCard(profile)).tap({0x9F66: bytes.fromhex("36804000")})
    gpo = tlv.flatten(tlv.decode(tap.gpo))
    assert gpo[0x9F27] == b"\x80"
    assert 0x94 not in gpo
    assert 0x9F4B not in gpo
    assert tap.records == {}


def _signed_ac_verifies(profile: CardProfile, tap: TapRecord, ac: bytes) -> None:
    app = profile.applications[0]
    verify_arqc(app.cvn, derive_icc_mk_a(IMK_AC, app.pan, app.psn), tap.cryptogram_data(), ac)


@pytest.mark.parametrize("name", ["mastercard-card", "mastercard-phone"])
@pytest.mark.parametrize("cvn", [16, 17, 20, 21])
def test_cda_verifies_on_arqc(store: CaKeyStore, name: str, cvn: int) -> None:
    base = _profile(name)
    profile = replace(base, applications=(replace(base.applications[0], cvn=cvn),))
    tap = CardProbe(EmvCard(profile)).tap(gen_ac=0x90)
    result = verify_cda(
        icc_key(store, tap),
        tap.gen_ac,
        unpredictable_number=bytes.fromhex("A1B2C3D4"),
        pdol_data=tap.pdol_data,
        cdol1_data=tap.cdol1_data,
    )
    assert result.cid == 0x80
    assert len(result.icc_dynamic_number) == 8
    assert tap.data[0x9F10][8:10] == result.icc_dynamic_number[:2]
    assert tap.data[0x9F10][3] & 0x40  # CVR: CDA returned in the first GENERATE AC
    _signed_ac_verifies(profile, tap, result.cryptogram)
    # A changed amount in the CDOL1 data no longer matches the transaction data hash.
    with pytest.raises(OdaError, match="transaction data hash"):
        verify_cda(
            icc_key(store, tap),
            tap.gen_ac,
            unpredictable_number=bytes.fromhex("A1B2C3D4"),
            pdol_data=tap.pdol_data,
            cdol1_data=bytes.fromhex("000000009999") + tap.cdol1_data[6:],
        )


def test_cda_on_an_offline_tc_and_none_on_an_aac(store: CaKeyStore) -> None:
    base = _profile("mastercard-card")
    app = replace(base.applications[0], limits={"offline_amount": 5000, "offline_count": 2})
    profile = replace(base, applications=(app,))
    card = EmvCard(profile)
    tap = CardProbe(card).tap(gen_ac=0x50)  # TC with CDA
    result = verify_cda(
        icc_key(store, tap),
        tap.gen_ac,
        unpredictable_number=bytes.fromhex("A1B2C3D4"),
        pdol_data=tap.pdol_data,
        cdol1_data=tap.cdol1_data,
    )
    assert result.cid == 0x40
    _signed_ac_verifies(profile, tap, result.cryptogram)
    card.power_on()
    tap = CardProbe(card).tap(gen_ac=0x10)  # AAC, CDA asked: an AAC is never signed
    answer = tlv.decode_one(tap.gen_ac, 0x77)
    assert [c.tag for c in answer.children] == [0x9F27, 0x9F36, 0x9F26, 0x9F10]
    assert tap.data[0x9F27] == b"\x00"
    _signed_ac_verifies(profile, tap, tap.data[0x9F26])
