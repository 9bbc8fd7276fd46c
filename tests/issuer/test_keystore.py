"""Key stores: the encrypted file and PKCS#11 (SoftHSM) pass the same suite.

Known answers from pyemv's published HSM-checked vectors (tests/test_ac_hsm.py): IMK
0123456789ABCDEFFEDCBA9876543210 has KCV 08D7(B4); for PAN 9901234567890123 PSN 45 its
option A ICC master key has KCV 1DA5.
"""

from __future__ import annotations

import json
import os
import stat
from datetime import date
from pathlib import Path

import pytest

from emvwire.crypto.des import kcv
from emvwire.crypto.kdf import derive_icc_mk_a, derive_icc_mk_b
from emvwire.crypto.sm import derive_icc_mk_sm4, kcv_sm4
from emvwire.crypto.sm2 import Sm2PrivateKey
from emvwire.oda import CaKey, SigningKey, issue_issuer_certificate, recover_issuer_key
from issuer.errors import (
    ConflictError,
    KcvMismatchError,
    KeyStoreError,
    NotFoundError,
    ValidationError,
)
from issuer.keys.base import (
    PAN_HASH_KEY,
    PAN_SEAL_KEY,
    KeyKind,
    KeyStore,
    MasterKeyRef,
    ca_key_id,
    sm2_kcv,
)
from issuer.keys.file import FileKeyStore
from tests.issuer.helpers import PASSPHRASE, PUBLISHED_IMK, TEST_CA_DIR, open_softhsm_store

REF = MasterKeyRef("visa", "476173", 18, "ac")


def test_import_with_kcv_then_derive_the_published_vector(keystore: KeyStore) -> None:
    info = keystore.import_(REF, PUBLISHED_IMK, bytes.fromhex("08D7"))
    assert info.kcv == bytes.fromhex("08D7B4")
    assert info.kind is KeyKind.MASTER
    assert info.master == REF
    icc = keystore.derive_icc_mk(REF, "9901234567890123", "45")
    assert kcv(icc, 2) == bytes.fromhex("1DA5")
    assert icc == derive_icc_mk_a(PUBLISHED_IMK, "9901234567890123", "45")


def test_import_refuses_a_kcv_mismatch_and_stores_nothing(keystore: KeyStore) -> None:
    with pytest.raises(KcvMismatchError, match="does not match"):
        keystore.import_(REF, PUBLISHED_IMK, bytes.fromhex("08D7B5"))
    assert not keystore.has(REF.key_id)
    assert keystore.list() == []


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (PUBLISHED_IMK[:8] * 2, "single DES"),
        (PUBLISHED_IMK[:15], "16 bytes"),
        (PUBLISHED_IMK + bytes(8), "16 bytes"),
    ],
)
def test_import_refuses_malformed_keys(keystore: KeyStore, key: bytes, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        keystore.import_(REF, key, kcv(key[:16] if len(key) >= 16 else PUBLISHED_IMK))


def test_a_k1k2k1_key_is_taken_as_double_length(keystore: KeyStore) -> None:
    info = keystore.import_(REF, PUBLISHED_IMK + PUBLISHED_IMK[:8], bytes.fromhex("08D7B4"))
    assert info.kcv == bytes.fromhex("08D7B4")


def test_generate_a_set_lists_kcvs_and_refuses_duplicates(keystore: KeyStore) -> None:
    infos = keystore.generate_set("mastercard", "541333", 17)
    assert [i.key_id for i in infos] == [
        "imk/mastercard/541333/17/ac",
        "imk/mastercard/541333/17/smi",
        "imk/mastercard/541333/17/smc",
    ]
    listed = {i.key_id: i for i in keystore.list()}
    assert set(listed) == {i.key_id for i in infos}
    for info in infos:
        assert len(info.kcv) == 3
        assert keystore.kcv(info.key_id) == info.kcv
    assert len({i.kcv for i in infos}) == 3  # three different random keys
    with pytest.raises(ConflictError):
        keystore.generate(MasterKeyRef("mastercard", "541333", 17, "smi"))


def test_derived_keys_match_emvwire_for_every_purpose(keystore: KeyStore) -> None:
    imks = {p: os.urandom(16) for p in ("ac", "smi", "smc")}
    for purpose, imk in imks.items():
        keystore.import_(REF.with_purpose(purpose), imk, kcv(imk))
    keys = keystore.derive_icc_keys("visa", "476173", 18, "4761739001010010", "01")
    assert keys.ac == derive_icc_mk_a(imks["ac"], "4761739001010010", "01")
    assert keys.smi == derive_icc_mk_a(imks["smi"], "4761739001010010", "01")
    assert keys.smc == derive_icc_mk_a(imks["smc"], "4761739001010010", "01")


def test_option_b_for_a_long_pan(keystore: KeyStore) -> None:
    # Visa CVN 18 derives by option B (Book 2 A1.4.2): it differs from A above 16 digits.
    keystore.import_(REF, PUBLISHED_IMK, bytes.fromhex("08D7B4"))
    pan = "4761739001010010123"
    derived = keystore.derive_icc_mk(REF, pan, "00")
    assert derived == derive_icc_mk_b(PUBLISHED_IMK, pan, "00")
    assert derived != derive_icc_mk_a(PUBLISHED_IMK, pan, "00")


def test_unknown_keys_and_bad_references(keystore: KeyStore) -> None:
    with pytest.raises(NotFoundError):
        keystore.derive_icc_mk(REF, "4761739001010010", "00")
    with pytest.raises(NotFoundError):
        keystore.kcv("imk/visa/476173/18/ac")
    with pytest.raises(ValidationError, match="CVN 17"):
        MasterKeyRef("visa", "476173", 17)
    with pytest.raises(ValidationError, match="BIN"):
        MasterKeyRef("visa", "4761", 18)
    with pytest.raises(ValidationError):
        MasterKeyRef("amex", "476173", 18)


def test_listing_never_shows_key_material(keystore: KeyStore) -> None:
    keystore.import_(REF, PUBLISHED_IMK, bytes.fromhex("08D7B4"))
    keystore.ensure_data_keys()
    text = json.dumps([i.to_json() for i in keystore.list()]) + repr(keystore.list())
    assert PUBLISHED_IMK.hex() not in text.lower()
    assert {i.key_id for i in keystore.list()} == {REF.key_id, PAN_SEAL_KEY, PAN_HASH_KEY}


def test_rsa_keys_sign_certificates_inside_the_store(keystore: KeyStore) -> None:
    ca = SigningKey.from_pem((TEST_CA_DIR / "test-ca-A000000003-F1-private.pem").read_bytes())
    ca_id = ca_key_id(bytes.fromhex("A000000003"), 0xF1)
    assert keystore.import_rsa(ca_id, ca) == ca.public
    issuer_public = keystore.generate_rsa("rsa/issuer/visa", 1024, 3)
    assert keystore.rsa_public("rsa/issuer/visa") == issuer_public
    parts = issue_issuer_certificate(
        keystore.signing_key(ca_id),
        issuer_public,
        issuer_identifier="476173",
        expiry=date(2040, 12, 31),
    )
    ca_key = CaKey(
        modulus=ca.public.modulus, exponent=3, rid=bytes.fromhex("A000000003"), index=0xF1
    )
    recovered = recover_issuer_key(
        ca_key,
        parts.certificate,
        parts.remainder,
        parts.exponent,
        pan="4761739001010010",
        today=date(2030, 1, 1),
    )
    assert recovered.modulus == issuer_public.modulus
    info = keystore.info(ca_id)
    assert info.kind is KeyKind.RSA
    assert info.algorithm == "RSA-1024/e=3"


def test_data_keys_seal_and_hash(keystore: KeyStore) -> None:
    keystore.ensure_data_keys()
    keystore.ensure_data_keys()  # idempotent
    blob = keystore.seal(b"4761739001010010", b"card:1")
    assert b"4761739001010010" not in blob
    assert keystore.unseal(blob, b"card:1") == b"4761739001010010"
    with pytest.raises(KeyStoreError):
        keystore.unseal(blob, b"card:2")  # bound to its owner
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(KeyStoreError):
        keystore.unseal(tampered, b"card:1")
    assert keystore.seal(b"x", b"a") != keystore.seal(b"x", b"a")  # fresh nonces
    h = keystore.pan_hash("4761739001010010")
    assert len(h) == 32
    assert h == keystore.pan_hash("4761739001010010")
    assert h != keystore.pan_hash("4761739001010028")


# -- the file store's own properties ------------------------------------------------------


def test_file_store_is_encrypted_at_rest_and_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "keystore.json"
    store = FileKeyStore.create(path, PASSPHRASE, cost_log2=10)
    store.import_(REF, PUBLISHED_IMK, bytes.fromhex("08D7B4"))
    store.ensure_data_keys()
    raw = path.read_bytes()
    assert PUBLISHED_IMK.hex().encode() not in raw.lower()
    assert PUBLISHED_IMK not in raw
    assert PASSPHRASE not in raw
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    reopened = FileKeyStore.open(path, PASSPHRASE)
    assert [i.kcv for i in reopened.list()] == [i.kcv for i in store.list()]
    assert reopened.derive_icc_mk(REF, "9901234567890123", "45") == store.derive_icc_mk(
        REF, "9901234567890123", "45"
    )
    with pytest.raises(KeyStoreError, match="wrong key store passphrase"):
        FileKeyStore.open(path, b"wrong")
    with pytest.raises(ConflictError):
        FileKeyStore.create(path, PASSPHRASE, cost_log2=10)


def test_file_store_binds_each_sealed_key_to_its_entry(tmp_path: Path) -> None:
    path = tmp_path / "keystore.json"
    store = FileKeyStore.create(path, PASSPHRASE, cost_log2=10)
    store.generate(REF)
    store.generate(REF.with_purpose("smi"))
    doc = json.loads(path.read_text())
    a, b = doc["keys"]
    a["sealed"], b["sealed"] = b["sealed"], a["sealed"]
    path.write_text(json.dumps(doc))
    with pytest.raises(KeyStoreError, match=r"malformed|does not open"):
        FileKeyStore.open(path, PASSPHRASE)


def test_two_file_store_handles_never_lose_a_key(tmp_path: Path) -> None:
    path = tmp_path / "keystore.json"
    first = FileKeyStore.create(path, PASSPHRASE, cost_log2=10)
    second = FileKeyStore.open(path, PASSPHRASE)
    first.generate(REF)
    second.generate(REF.with_purpose("smi"))  # re-reads the file under its lock
    ids = {i.key_id for i in FileKeyStore.open(path, PASSPHRASE).list()}
    assert ids == {REF.key_id, REF.with_purpose("smi").key_id}


# -- the PKCS#11 store's own properties -----------------------------------------------------


@pytest.mark.hsm
def test_master_keys_in_the_hsm_cannot_leave(softhsm: dict[str, str]) -> None:
    import pkcs11
    from pkcs11 import Attribute, ObjectClass

    store = open_softhsm_store(softhsm)
    try:
        store.import_(REF, PUBLISHED_IMK, bytes.fromhex("08D7B4"))
        store.generate(REF.with_purpose("smi"))
        token = pkcs11.lib(softhsm["module"]).get_token(token_label=softhsm["label"])
        with token.open() as session:  # the store logged this application in
            for purpose in ("ac", "smi"):
                key = session.get_key(
                    object_class=ObjectClass.SECRET_KEY,
                    label="tapstack:" + REF.with_purpose(purpose).key_id,
                )
                assert key[Attribute.SENSITIVE] is True
                assert key[Attribute.EXTRACTABLE] is False
                # An imported key was once outside; a generated one never was.
                assert key[Attribute.NEVER_EXTRACTABLE] is (purpose == "smi")
                assert key[Attribute.ENCRYPT] is False
                with pytest.raises(pkcs11.exceptions.AttributeSensitive):
                    key[Attribute.VALUE]
                # CKA_ENCRYPT false: python-pkcs11 offers no encrypt on it at all, so the
                # key cannot be used as an oracle for chosen data either.
                assert not hasattr(key, "encrypt")
                assert key[Attribute.DERIVE] is True
        # Derivation still works, inside the token.
        assert kcv(store.derive_icc_mk(REF, "9901234567890123", "45"), 2) == bytes.fromhex("1DA5")
    finally:
        store.close()


@pytest.mark.hsm
def test_hsm_rsa_keys_do_not_export(softhsm: dict[str, str]) -> None:
    store = open_softhsm_store(softhsm)
    try:
        store.generate_rsa("rsa/issuer/visa", 1024, 3)
        with pytest.raises(KeyStoreError, match="cannot be exported"):
            store.signing_key("rsa/issuer/visa").to_pem()
    finally:
        store.close()


@pytest.mark.hsm
def test_wrong_pin_is_a_key_store_error(softhsm: dict[str, str]) -> None:
    import pkcs11

    from issuer.keys.pkcs11 import Pkcs11KeyStore

    pkcs11.lib(softhsm["module"]).reinitialize()
    with pytest.raises(KeyStoreError, match="PIN"):
        Pkcs11KeyStore(softhsm["module"], softhsm["label"], "0000")
    with pytest.raises(KeyStoreError, match="no PKCS#11 token"):
        Pkcs11KeyStore(softhsm["module"], "no-such-token", softhsm["pin"])


def test_sm4_master_keys_live_in_the_file_store_only(keystore: KeyStore) -> None:
    """UnionPay's SM suite (CVN 04): the file store generates, imports (KCV checked in
    full) and derives SM4 keys as emvwire does; a PKCS#11 token refuses them clearly."""
    ref = MasterKeyRef("unionpay", "625802", 0x04)
    if keystore.backend == "pkcs11":
        with pytest.raises(KeyStoreError, match="SM4"):
            keystore.generate(ref)
        return
    assert keystore.generate(ref).algorithm == "SM4-128"
    other = ref.with_purpose("smi")
    good = kcv_sm4(PUBLISHED_IMK, 8)
    with pytest.raises(KcvMismatchError):
        keystore.import_(other, PUBLISHED_IMK, good[:7] + bytes((good[7] ^ 0x01,)))
    assert keystore.import_(other, PUBLISHED_IMK, good).kcv == kcv_sm4(PUBLISHED_IMK)
    pan = "6258020000000011"
    assert keystore.derive_icc_mk(other, pan, "00") == derive_icc_mk_sm4(PUBLISHED_IMK, pan)


def test_sm2_keys_live_in_the_file_store_only(keystore: KeyStore) -> None:
    """The SM suite's CA and issuer keys (SM2): the file store keeps them sealed, lists
    them with an SM3 fingerprint and never their value, and gives back the same key;
    an RSA request for one is refused. A PKCS#11 token refuses SM2 clearly."""
    key = Sm2PrivateKey.generate()
    if keystore.backend == "pkcs11":
        with pytest.raises(KeyStoreError, match="SM2 keys are not available"):
            keystore.import_sm2("sm2/issuer/unionpay", key)
        return
    assert keystore.import_sm2("sm2/issuer/unionpay", key) == key.public
    info = keystore.info("sm2/issuer/unionpay")
    assert (info.kind, info.algorithm, info.kcv) == (KeyKind.SM2, "SM2-256", sm2_kcv(key.public))
    assert keystore.sm2_key("sm2/issuer/unionpay").d == key.d
    assert key.to_bytes().hex() not in json.dumps([i.to_json() for i in keystore.list()]).lower()
    with pytest.raises(KeyStoreError, match="not an RSA key"):
        keystore.signing_key("sm2/issuer/unionpay")
    with pytest.raises(ConflictError):
        keystore.generate_sm2("sm2/issuer/unionpay")
    keystore.generate_rsa("rsa/issuer/unionpay", 1024, 3)
    with pytest.raises(KeyStoreError, match="not an SM2 key"):
        keystore.sm2_key("rsa/issuer/unionpay")
