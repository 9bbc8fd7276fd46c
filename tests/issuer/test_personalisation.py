"""Provisioning: profiles made from the store's keys run as cards whose ARQCs verify
with ICC keys derived in the store, and whose ODA chain verifies from the CA keys.

Run on both ledgers; the key store variants (file, SoftHSM) each provision and verify
a card too.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from emvwire.crypto.cryptogram import verify_arqc
from emvwire.errors import VerificationError
from emvwire.oda import (
    CaKeyStore,
    SigningKey,
    build_static_data,
    recover_icc_key,
    recover_issuer_key,
)
from emvwire.profile import CardProfile, load_profile
from emvwire.tlv import encode
from issuer.bootstrap import IssuerApp
from issuer.config import IssuerConfig
from issuer.errors import ValidationError
from issuer.keys.base import KeyStore
from issuer.ledger.repository import Ledger
from issuer.model.entities import CardOrigin, CardStatus
from issuer.personalisation import provision, write_profile
from tests.issuer.helpers import (
    TEST_CA_DIR,
    make_file_store,
    open_softhsm_store,
    set_up,
    tap_arqc,
)

TODAY = date(2026, 6, 1)


def _verify_like_the_issuer(issuer: IssuerApp, profile: CardProfile) -> None:
    """Tap, then do what the authorisation service will: de-tokenise the PAN the card
    gave, derive the AC key in the store, verify the ARQC."""
    app = profile.applications[0]
    data, arqc = tap_arqc(profile)
    with issuer.ledger.unit_of_work(write=False) as uow:
        inst = issuer.vault.detokenise(uow, app.pan, today=TODAY, mcc="5814")
    icc_ac = issuer.keys.derive_icc_mk(inst.key_ref, app.pan, inst.psn)
    verify_arqc(app.cvn, icc_ac, data, arqc)
    wrong = bytes([arqc[0] ^ 1]) + arqc[1:]
    with pytest.raises(VerificationError):
        verify_arqc(app.cvn, icc_ac, data, wrong)


def _verify_oda_chain(profile: CardProfile) -> None:
    """The terminal's view: CA key (fixtures/ca) -> issuer key -> ICC key."""
    app = profile.applications[0]
    cas = CaKeyStore.load(TEST_CA_DIR / "test-ca.json")
    ca = cas.get(app.aid[:5], app.data[0x8F][0])
    issuer_key = recover_issuer_key(
        ca,
        app.data[0x90],
        app.data.get(0x92),
        app.data[0x9F32],
        pan=app.pan,
        today=TODAY,
    )
    records = [
        (rec.sfi, encode(0x70, b"".join(encode(t, app.data[t]) for t in rec.tags)))
        for rec in app.records
        if rec.oda
    ]
    static = build_static_data(records, aip=app.aip, sda_tag_list=app.data.get(0x9F4A))
    icc = recover_icc_key(
        issuer_key,
        app.data[0x9F46],
        app.data.get(0x9F48),
        app.data[0x9F47],
        pan=app.pan,
        static_data=static,
        today=TODAY,
    )
    assert app.rsa is not None
    assert icc.modulus == SigningKey.from_pem(app.rsa.pem).public.modulus


@pytest.mark.parametrize(("scheme", "form"), [
    ("visa", "card"), ("visa", "phone"), ("mastercard", "card"), ("mastercard", "phone"),
])  # fmt: skip
def test_provisioned_profiles_tap_and_verify(
    issuer: IssuerApp,
    rsa_keys: dict[str, SigningKey],
    tmp_path: Path,
    scheme: str,
    form: str,
) -> None:
    s = issuer.service
    account = s.create_account("Ada Lovelace")
    result = provision(s, account.id, scheme, form, icc_key=rsa_keys[f"icc/{scheme}"])
    path = write_profile(result.profile, tmp_path / "profile.json")
    assert path.stat().st_mode & 0o777 == 0o600
    profile = load_profile(path)
    app = profile.applications[0]
    assert profile.form == form
    if form == "phone":
        assert result.token is not None
        assert result.funding_created
        assert result.card.origin is CardOrigin.FUNDING
        assert app.token is not None
        assert app.token.par == result.card.par
        assert app.token.pan_last4 == result.card.pan_last4
        assert app.pan[-4:] == result.token.token_last4
        assert app.cvn == {"visa": 22, "mastercard": 21}[scheme]
        assert app.cdcvm
    else:
        assert result.token is None
        assert app.pan[-4:] == result.card.pan_last4
        assert app.cvn == {"visa": 18, "mastercard": 17}[scheme]
        assert app.data[0x5F20] == b"ADA LOVELACE"
    _verify_like_the_issuer(issuer, profile)
    _verify_oda_chain(profile)
    assert s.check_ledger() == []


def test_a_phone_token_binds_to_the_accounts_card(
    issuer: IssuerApp, rsa_keys: dict[str, SigningKey]
) -> None:
    s = issuer.service
    account = s.create_account("Ada")
    plastic = provision(s, account.id, "visa", "card", icc_key=rsa_keys["icc/visa"])
    phone = provision(s, account.id, "visa", "phone", icc_key=rsa_keys["icc/visa"])
    assert not phone.funding_created
    assert phone.card.id == plastic.card.id
    other = s.create_account("Bob")
    with pytest.raises(ValidationError, match="not of account"):
        provision(s, other.id, "visa", "phone", card_id=plastic.card.id)
    with pytest.raises(ValidationError, match="not mastercard"):
        provision(s, account.id, "mastercard", "phone", card_id=plastic.card.id)
    with pytest.raises(ValidationError, match="phone token"):
        provision(s, account.id, "visa", "card", card_id=plastic.card.id)


def test_a_card_of_another_cvn_needs_its_master_keys(
    issuer: IssuerApp, rsa_keys: dict[str, SigningKey]
) -> None:
    s = issuer.service
    account = s.create_account("Ada")
    with pytest.raises(Exception, match="issuer keys generate --scheme visa --bin 476173 --cvn 10"):
        provision(s, account.id, "visa", "card", cvn=10)
    issuer.keys.generate_set("visa", "476173", 10)
    result = provision(s, account.id, "visa", "card", cvn=10, icc_key=rsa_keys["icc/visa"])
    assert result.card.cvn == 10
    _verify_like_the_issuer(issuer, result.profile)
    assert result.card.status is CardStatus.ACTIVE


def test_write_profile_refuses_to_overwrite(
    issuer: IssuerApp, rsa_keys: dict[str, SigningKey], tmp_path: Path
) -> None:
    s = issuer.service
    result = provision(s, s.create_account("Ada").id, "visa", "card", icc_key=rsa_keys["icc/visa"])
    target = tmp_path / "p.json"
    write_profile(result.profile, target)
    with pytest.raises(ValidationError, match="exists"):
        write_profile(result.profile, target)
    write_profile(result.profile, target, overwrite=True)
    with pytest.raises(ValidationError, match="no such folder"):
        write_profile(result.profile, tmp_path / "missing" / "p.json")


@pytest.mark.parametrize("backend", ["file", pytest.param("pkcs11", marks=pytest.mark.hsm)])
def test_each_key_store_provisions_verifiable_cards(
    backend: str,
    request: pytest.FixtureRequest,
    sqlite_ledger: Ledger,
    rsa_keys: dict[str, SigningKey],
    tmp_path: Path,
) -> None:
    """The same provisioning on the file store and on SoftHSM (where the issuer key
    signs the ICC certificate inside the token)."""
    keystore: KeyStore = (
        request.getfixturevalue("keystore") if False else _store(backend, request, tmp_path)
    )
    try:
        app = set_up(keystore, sqlite_ledger, rsa_keys, tmp_path)
        s = app.service
        account = s.create_account("Ada")
        for scheme, form in (("visa", "card"), ("mastercard", "phone")):
            result = provision(s, account.id, scheme, form, icc_key=rsa_keys[f"icc/{scheme}"])
            _verify_like_the_issuer(app, result.profile)
            _verify_oda_chain(result.profile)
        assert isinstance(app.config, IssuerConfig)
    finally:
        keystore.close()


def _store(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> KeyStore:
    if backend == "file":
        return make_file_store(tmp_path / "keystore.json")
    return open_softhsm_store(request.getfixturevalue("softhsm"))
