"""An issuer taking over cards it never made: ranges, imported master keys, key
versions, on both ledgers (and the key versions on both key stores).

The outside issuer is played by the test: its master keys are fixed bytes whose KCVs
are computed here with the ``cryptography`` package's TDES (ANSI X9.24-1: the first
bytes of a zero block enciphered), not with the product's code; its cards are
personalised with the project's helpers (``emvwire.personalise``) from ICC keys
derived here (EMV Book 2 §A1.4.1 option A), its issuer key certified by the published
test CA for the range's prefix. The fresh issuer has no default ranges; it adds the
range, imports the keys by KCV, registers the cards and approves their taps through
its authorisation service in process.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from card.emv import EmvCard
from emvwire.crypto.kdf import derive_icc_mk_a
from emvwire.oda import CertificateParts, SigningKey, issue_issuer_certificate
from emvwire.personalise import IssuerCertificate, personalise
from emvwire.profile import IccKeys
from issuer.bootstrap import IssuerApp, add_range
from issuer.config import IssuerConfig
from issuer.errors import (
    ConflictError,
    InvalidStateError,
    KcvMismatchError,
    KeyStoreError,
    ValidationError,
)
from issuer.keys.base import PURPOSES, KeyStore, MasterKeyRef
from issuer.ledger.repository import Ledger
from issuer.personalisation.ranges import RangeSpec
from issuer.service import Api, ServiceApp
from tests.issuer.helpers import (
    CVN,
    OUTSIDE_V1,
    OUTSIDE_V2,
    PAN_NEW,
    PAN_OLD,
    PREFIX,
    TEST_CA_DIR,
    World,
    independent_kcv,
    make_file_store,
    send,
    tap,
)


def test_the_independent_kcv_is_the_published_one() -> None:
    assert independent_kcv(OUTSIDE_V1["ac"]) == bytes.fromhex("08D7B4")  # pyemv's vector


def fresh_issuer(ledger: Ledger, keys: KeyStore, home: Path) -> IssuerApp:
    """An issuer with no ranges and no master keys (``issuer init --no-default-ranges``)."""
    keys.ensure_data_keys()
    return IssuerApp(IssuerConfig(home=home, ca="test"), ledger, keys)


@dataclass
class Outside:
    """The outside issuer: its RSA key certified by the test CA for the prefix."""

    certificate: IssuerCertificate
    icc_key: SigningKey

    def card(self, pan: str, psn: str, imks: dict[str, bytes]) -> EmvCard:
        icc = IccKeys(*(derive_icc_mk_a(imks[p], pan, psn) for p in PURPOSES))
        profile = personalise(
            kernel="visa",
            form="card",
            name=f"outside-{pan[-4:]}",
            pan=pan,
            psn=psn,
            expiry=date(2031, 12, 31),
            cvn=CVN,
            icc_keys=icc,
            icc_key=self.icc_key,
            issuer=self.certificate,
            uid=bytes.fromhex("08" + pan[-6:]),
        )
        return EmvCard(profile)


@pytest.fixture
def outside(rsa_keys: dict[str, SigningKey]) -> Outside:
    ca = SigningKey.from_pem((TEST_CA_DIR / "test-ca-A000000003-F1-private.pem").read_bytes())
    key = rsa_keys["issuer/visa"]
    parts = issue_issuer_certificate(
        ca, key.public, issuer_identifier=PREFIX, expiry=date(2040, 12, 31), serial=b"\x00\x00\x07"
    )
    return Outside(
        IssuerCertificate(key, 0xF1, CertificateParts(parts.certificate, parts.remainder,
                                                      parts.exponent)),
        rsa_keys["icc/visa"],
    )  # fmt: skip


def import_set(app: IssuerApp, imks: dict[str, bytes], version: int) -> None:
    for purpose, key in imks.items():
        ref = MasterKeyRef("visa", PREFIX, CVN, purpose, version)
        info = app.keys.import_(ref, key, independent_kcv(key))
        assert info.kcv == independent_kcv(key)


def world_of(app: IssuerApp, card: EmvCard, pan: str, account: str, terminal: tuple[str, str],
             key_version: int | None = None) -> World:  # fmt: skip
    registered = app.service.register_card(
        account, "visa", pan, psn="01", expiry=date(2031, 12, 31), cvn=CVN,
        key_version=key_version,
    )  # fmt: skip
    api = Api(app)
    auth = f"Bearer {terminal[0]}:{terminal[1]}"
    return World(app, api, account, terminal[0], auth, card, registered.id, ServiceApp(api))


def test_a_migrating_issuer_takes_cards_it_never_made(
    ledger: Ledger, tmp_path: Path, outside: Outside
) -> None:
    app = fresh_issuer(ledger, make_file_store(tmp_path / "keystore.json"), tmp_path)
    assert app.service.bin_ranges() == []
    assert all(i.master is None for i in app.keys.list())
    bin_range = add_range(app, RangeSpec(PREFIX, "visa", "card", CVN), ca_dir=TEST_CA_DIR)
    assert (bin_range.prefix, bin_range.status, bin_range.pan_length) == (PREFIX, "active", 16)
    assert app.keys.master_versions("visa", PREFIX, CVN) == []  # no keys until asked
    assert (tmp_path / "ca.json").is_file()  # the CA made for the first range, for terminals
    wrong = bytes([OUTSIDE_V1["ac"][0] ^ 0x80]) + OUTSIDE_V1["ac"][1:]  # not a parity bit
    with pytest.raises(KcvMismatchError):
        app.keys.import_(
            MasterKeyRef("visa", PREFIX, CVN), wrong, independent_kcv(OUTSIDE_V1["ac"])
        )
    import_set(app, OUTSIDE_V1, 1)
    assert app.service.current_key_version("visa", PREFIX, CVN) == 1

    account = app.service.create_account("Grace Hopper")
    app.service.credit_account(account.id, 10_000)
    terminal, secret = app.service.add_terminal("Station kiosk", "4111")
    old_card = outside.card(PAN_OLD, "01", OUTSIDE_V1)
    w_old = world_of(app, old_card, PAN_OLD, account.id, (terminal.id, secret))
    assert app.service.card(w_old.card_id).key_version == 1
    first = tap(old_card, 250)
    answer = send(w_old, first.authorisation_data, first.track2, "old-1")
    assert (answer["approved"], answer["response_code"]) == (True, "00"), answer
    assert answer["card"] == "455123******0016"

    # The outside issuer rotated its keys: version 2 imported, new cards get it.
    import_set(app, OUTSIDE_V2, 2)
    assert [v for v, _ in app.service.key_versions("visa", PREFIX, CVN)] == [1, 2]
    assert app.service.current_key_version("visa", PREFIX, CVN) == 2
    new_card = outside.card(PAN_NEW, "01", OUTSIDE_V2)
    w_new = world_of(app, new_card, PAN_NEW, account.id, (terminal.id, secret))
    assert app.service.card(w_new.card_id).key_version == 2
    again = tap(old_card, 300)
    assert send(w_old, again.authorisation_data, again.track2, "old-2")["approved"]
    fresh = tap(new_card, 400)
    assert send(w_new, fresh.authorisation_data, fresh.track2, "new-1")["approved"]

    # Version 1 retired: its card is refused with the reason, the new card goes on.
    app.service.retire_key_version("visa", PREFIX, CVN, 1)
    late = tap(old_card, 500)
    refused = send(w_old, late.authorisation_data, late.track2, "old-3")
    assert (refused["approved"], refused["reason"], refused["response_code"]) == (
        False, "KEY_RETIRED", "62",
    )  # fmt: skip
    later = tap(new_card, 600)
    assert send(w_new, later.authorisation_data, later.track2, "new-2")["approved"]
    assert app.service.account(account.id).held == 250 + 300 + 400 + 600
    assert app.ledger.check() == []
    with pytest.raises(InvalidStateError):
        app.service.retire_key_version("visa", PREFIX, CVN, 1)
    with pytest.raises(InvalidStateError, match="retired"):
        app.service.register_card(
            account.id, "visa", "4551230000000032", psn="00", expiry=date(2031, 12, 31),
            cvn=CVN, key_version=1,
        )  # fmt: skip


def test_range_rules(ledger: Ledger, tmp_path: Path) -> None:
    app = fresh_issuer(ledger, make_file_store(tmp_path / "keystore.json"), tmp_path)
    add_range(app, RangeSpec("45512300", "visa", "card", CVN, 19), ca_dir=TEST_CA_DIR)
    with pytest.raises(ConflictError, match="overlaps"):
        add_range(app, RangeSpec(PREFIX, "visa", "card", CVN), ca_dir=TEST_CA_DIR)
    with pytest.raises(ValidationError):
        add_range(app, RangeSpec("455124", "visa", "card", 17), ca_dir=TEST_CA_DIR)  # a MC CVN
    with pytest.raises(ValidationError):
        add_range(app, RangeSpec("455124", "visa", "card", CVN, 7), ca_dir=TEST_CA_DIR)
    account = app.service.create_account("Ada").id
    expiry = date(2031, 12, 31)
    with pytest.raises(KeyStoreError, match="no usable master keys"):
        app.service.register_card(
            account, "visa", "4551230000000000018", psn="00", expiry=expiry, cvn=CVN
        )
    app.keys.generate_set("visa", "45512300", CVN)
    with pytest.raises(ValidationError, match="19 digits"):
        app.service.register_card(account, "visa", PAN_OLD, psn="00", expiry=expiry, cvn=CVN)
    card = app.service.register_card(
        account, "visa", "4551230000000000018", psn="00", expiry=expiry, cvn=CVN
    )
    assert card.key_version == 1
    assert card.bin == "45512300"
    retired = app.service.retire_range("45512300")
    assert retired.status == "retired"
    assert retired.retired_at
    with pytest.raises(InvalidStateError):
        app.service.retire_range("45512300")
    with pytest.raises(ValidationError, match="active visa card ranges"):
        app.service.register_card(
            account, "visa", "4551230000000000026", psn="00", expiry=expiry, cvn=CVN
        )
    assert app.service.card(card.id).status.value == "active"  # its cards go on


def test_master_key_versions_on_each_key_store(keystore: KeyStore) -> None:
    """Versions side by side in the file store and in SoftHSM: ids, KCVs, derivation
    under each version equal to the derivation here from the clear key."""
    for purpose, key in OUTSIDE_V1.items():
        keystore.import_(MasterKeyRef("visa", PREFIX, CVN, purpose), key, independent_kcv(key))
    made = keystore.generate_set("visa", PREFIX, CVN, 2)
    assert [i.key_id for i in made] == [f"imk/visa/{PREFIX}/{CVN}/{p}/v2" for p in PURPOSES]
    assert keystore.master_versions("visa", PREFIX, CVN) == [1, 2]
    listed = {i.key_id: i for i in keystore.list()}
    assert listed[f"imk/visa/{PREFIX}/{CVN}/ac"].kcv == independent_kcv(OUTSIDE_V1["ac"])
    assert listed[f"imk/visa/{PREFIX}/{CVN}/ac/v2"].master == MasterKeyRef(
        "visa", PREFIX, CVN, "ac", 2
    )
    with pytest.raises(ConflictError):
        keystore.generate(MasterKeyRef("visa", PREFIX, CVN, "smi", 2))
    v1 = keystore.derive_icc_keys("visa", PREFIX, CVN, PAN_OLD, "01", 1)
    assert v1.ac == derive_icc_mk_a(OUTSIDE_V1["ac"], PAN_OLD, "01")
    v2 = keystore.derive_icc_keys("visa", PREFIX, CVN, PAN_OLD, "01", 2)
    assert v2.ac != v1.ac


def test_master_key_ids_round_trip() -> None:
    ref = MasterKeyRef("mastercard", "541333", 17, "smc", 12)
    assert ref.key_id == "imk/mastercard/541333/17/smc/v12"
    assert MasterKeyRef.parse(ref.key_id) == ref
    assert MasterKeyRef.parse("imk/visa/476173/18/ac").version == 1
    with pytest.raises(ValidationError):
        MasterKeyRef("visa", "476173", 18, "ac", 0)
    with pytest.raises(ValidationError):
        MasterKeyRef.parse("imk/visa/476173/18/ac/x2")
