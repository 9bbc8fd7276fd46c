"""The issuer's certification set-up: test CA, issuer RSA keys, BIN ranges.

Certificates (EMV Book 2 §5.1, §6.1): a CA key (RID + index) certifies the issuer
public key for an issuer identifier (the leftmost 3 to 8 PAN digits, here the range
prefix); the issuer key certifies each card's ICC key at personalisation. A token
range gets its own certificate for the same issuer key (its identifier is the token
BIN). What is stored per range (:class:`~issuer.model.entities.BinRange`) is public:
certificate, remainder, exponent, CA index; the private keys stay in the key store.

The CA is either the published tapstack **test CA** (imported into the key store;
terminals ship its public keys, so cards provisioned under it pass offline data
authentication out of the box) or a **new** CA generated in the key store, whose public
keys ``issuer init`` writes to ``HOME/ca.json`` for terminals to load. Neither is for
real cards. The test CA's private keys are package data (``test_ca/`` beside this
module, copies of ``fixtures/ca/``), so an installed ``issuer`` finds them.

A range of UnionPay's SM suite (CVN 04, ``issuer range add --cvn 4``) is certified
with SM2 instead (:mod:`emvwire.oda.sm`): the scheme's SM2 CA (the test CA's is
A000000333/E8, :data:`SM2_CA_FOR_SCHEME`) certifies the issuer's SM2 key, whose
certificate has no remainder and no exponent, and the range's cards get ICC SM2 keys.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Final

from emvwire.crypto.sm2 import Sm2PrivateKey
from emvwire.errors import EmvWireError
from emvwire.oda import (
    AnyCaKey,
    CaKey,
    SigningKey,
    Sm2CaKey,
    issue_issuer_certificate,
    issue_sm2_issuer_certificate,
)
from emvwire.oda.capk import KEY_FILE_FORMAT
from issuer.errors import ConfigError, KeyStoreError, ValidationError
from issuer.keys.base import (
    PURPOSES,
    KeyStore,
    MasterKeyRef,
    ca_key_id,
    is_sm4,
    issuer_key_id,
    sm2_ca_key_id,
    sm2_issuer_key_id,
)
from issuer.model.entities import BinRange, utc_now

__all__ = [
    "CA_FOR_SCHEME",
    "DEFAULT_RANGES",
    "ICC_KEY_SIZE",
    "ISSUER_KEY_SIZE",
    "PACKAGED_TEST_CA",
    "SM2_CA_FOR_SCHEME",
    "CaSpec",
    "Progress",
    "RangeSpec",
    "Sm2CaSpec",
    "ca_key_file",
    "certify_range",
    "check_range_spec",
    "default_test_ca_dir",
    "ensure_ca",
    "ensure_issuer_key",
    "ensure_master_keys",
    "ensure_range_ca",
    "ensure_sm2_ca",
    "ensure_sm2_issuer_key",
    "load_test_ca_key",
    "load_test_sm2_ca_key",
    "range_ca_key_id",
    "sm_suite",
]

#: Reports a step of long work (RSA key generation) to the user.
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class RangeSpec:
    """A range to create: prefix, scheme, ``card`` or ``token``, its default CVN, the
    length of its PANs."""

    prefix: str
    scheme: str
    kind: str
    cvn: int
    pan_length: int = 16


def check_range_spec(spec: RangeSpec) -> RangeSpec:
    """Refuse a range that cannot be: a prefix of 6 to 8 digits (the issuer identifier
    of a certificate, Book 2 §5.1 table 13 is 3 to 8 digits; key ids take 6 to 8), a
    known scheme and a CVN of it, ``card`` or ``token``, PANs of 12 to 19 digits
    longer than the prefix (ISO/IEC 7812-1)."""
    MasterKeyRef(spec.scheme, spec.prefix, spec.cvn)  # scheme, prefix and CVN
    if spec.kind not in ("card", "token"):
        raise ValidationError("a range is a card range or a token range")
    if not 12 <= spec.pan_length <= 19 or spec.pan_length <= len(spec.prefix) + 1:
        raise ValidationError("a PAN is 12 to 19 digits, longer than its range's prefix")
    return spec


#: The default ranges of ``issuer init``: a card and a token range per scheme, with
#: the CVNs of the fixture cards (Visa 18 cards / 22 phones, Mastercard 17 / 21), and
#: an American Express card range of 15-digit PANs (IIN 37, ISO/IEC 7812-1 as American
#: Express publishes it) with the EMV common core cryptogram (CCD, CVN A5), and UnionPay
#: card (19-digit PANs) and token ranges (IIN 62) under TDES (CVN 01). UnionPay's SM4
#: suite (CVN 04) is chosen per range with ``issuer range add --cvn 4`` (file key store).
DEFAULT_RANGES: Final = (
    RangeSpec("476173", "visa", "card", 18),
    RangeSpec("489537", "visa", "token", 22),
    RangeSpec("541333", "mastercard", "card", 17),
    RangeSpec("520474", "mastercard", "token", 21),
    RangeSpec("374245", "amex", "card", 0xA5, 15),
    RangeSpec("625800", "unionpay", "card", 0x01, 19),
    RangeSpec("625801", "unionpay", "token", 0x01, 16),
)


@dataclass(frozen=True, slots=True)
class CaSpec:
    """A scheme's CA key: RID, index, size, exponent, and the test CA's PEM file."""

    rid: bytes
    index: int
    bits: int
    exponent: int
    test_pem: str


#: The tapstack test CA of fixtures/ca/ (fixtures/ca/README.md), its private keys
#: packaged in ``test_ca/``.
CA_FOR_SCHEME: Final = {
    "visa": CaSpec(bytes.fromhex("A000000003"), 0xF1, 1024, 3, "test-ca-A000000003-F1-private.pem"),
    "mastercard": CaSpec(
        bytes.fromhex("A000000004"), 0x99, 1408, 65537, "test-ca-A000000004-99-private.pem"
    ),
    "amex": CaSpec(bytes.fromhex("A000000025"), 0xE4, 1152, 3, "test-ca-A000000025-E4-private.pem"),
    "unionpay": CaSpec(
        bytes.fromhex("A000000333"), 0xE7, 1152, 3, "test-ca-A000000333-E7-private.pem"
    ),
}


@dataclass(frozen=True, slots=True)
class Sm2CaSpec:
    """A scheme's SM2 CA key (the SM suite's): RID, index, the test CA's key file (``d``
    in hex)."""

    rid: bytes
    index: int
    test_key: str


#: The SM2 test CA of fixtures/ca/ for the schemes with an SM suite.
SM2_CA_FOR_SCHEME: Final = {
    "unionpay": Sm2CaSpec(
        bytes.fromhex("A000000333"), 0xE8, "test-ca-A000000333-E8-sm2-private.hex"
    ),
}


def sm_suite(scheme: str, prefix: str, cvn: int) -> bool:
    """Whether a range is of its scheme's SM suite: SM4 master keys (the CVN's,
    :func:`~issuer.keys.base.is_sm4`) and so SM2 certificates."""
    return scheme in SM2_CA_FOR_SCHEME and is_sm4(MasterKeyRef(scheme, prefix, cvn))


#: Issuer key size and exponent per scheme (never longer than the CA key, Book 2 §5.1).
ISSUER_KEY_SIZE: Final = {
    "visa": (1024, 3),
    "mastercard": (1152, 65537),
    "amex": (1024, 3),
    "unionpay": (1024, 3),
}
#: ICC key size and exponent per scheme (never longer than the issuer key, Book 2 §6.1).
ICC_KEY_SIZE: Final = {
    "visa": (1024, 3),
    "mastercard": (1024, 65537),
    "amex": (1024, 3),
    "unionpay": (1024, 3),
}
#: Validity of CA keys and issuer certificates made here.
CERTIFICATE_EXPIRY: Final = date(2040, 12, 31)


#: The packaged copy of the test CA's private keys.
PACKAGED_TEST_CA: Final = Path(__file__).resolve().parent / "test_ca"


def default_test_ca_dir() -> Path | None:
    """The packaged test CA keys (``TAPSTACK_TEST_CA_DIR`` overrides)."""
    env = os.environ.get("TAPSTACK_TEST_CA_DIR")
    if env:
        return Path(env)
    return PACKAGED_TEST_CA if PACKAGED_TEST_CA.is_dir() else None


def _test_ca_file(name: str, ca_dir: Path | None) -> Path:
    folder = ca_dir or default_test_ca_dir()
    path = folder / name if folder else None
    if path is None or not path.is_file():
        raise ConfigError(
            f"the test CA's private key {name} is not found (in the package's "
            "test_ca folder, --ca-dir or TAPSTACK_TEST_CA_DIR); use --ca new for a fresh CA"
        )
    return path


def load_test_ca_key(scheme: str, ca_dir: Path | None = None) -> SigningKey:
    """The scheme's test CA private key, from ``ca_dir`` or :func:`default_test_ca_dir`;
    :class:`ConfigError` if it is not there."""
    pem = _test_ca_file(CA_FOR_SCHEME[scheme].test_pem, ca_dir)
    try:
        return SigningKey.from_pem(pem.read_bytes())
    except EmvWireError as exc:
        raise ConfigError(f"test CA key {pem.name}: {exc}") from None


def load_test_sm2_ca_key(scheme: str, ca_dir: Path | None = None) -> Sm2PrivateKey:
    """The scheme's SM2 test CA private key, as :func:`load_test_ca_key`."""
    path = _test_ca_file(SM2_CA_FOR_SCHEME[scheme].test_key, ca_dir)
    try:
        return Sm2PrivateKey.from_bytes(bytes.fromhex(path.read_text().strip()))
    except (ValueError, EmvWireError) as exc:
        raise ConfigError(f"test CA key {path.name}: {exc}") from None


def _quiet(_: str) -> None:
    return None


def ensure_ca(
    keys: KeyStore,
    scheme: str,
    *,
    mode: str = "test",
    ca_dir: Path | None = None,
    progress: Progress = _quiet,
) -> CaKey:
    """The scheme's CA key, put into the key store if absent: imported from the test
    CA's PEM (``mode="test"``) or generated (``mode="new"``). Its public key is returned
    as a :class:`CaKey` for terminals."""
    spec = CA_FOR_SCHEME[scheme]
    key_id = ca_key_id(spec.rid, spec.index)
    if not keys.has(key_id):
        if mode == "test":
            keys.import_rsa(key_id, load_test_ca_key(scheme, ca_dir))
        elif mode == "new":
            progress(f"generating the {scheme} CA key ({spec.bits}-bit RSA)")
            keys.generate_rsa(key_id, spec.bits, spec.exponent)
        else:
            raise ConfigError("the CA is 'test' or 'new'")
    public = keys.rsa_public(key_id)
    return CaKey(
        modulus=public.modulus,
        exponent=public.exponent,
        rid=spec.rid,
        index=spec.index,
        expiry=CERTIFICATE_EXPIRY,
    )


def ensure_sm2_ca(
    keys: KeyStore, scheme: str, *, mode: str = "test", ca_dir: Path | None = None
) -> Sm2CaKey:
    """The scheme's SM2 CA key, put into the key store if absent (as :func:`ensure_ca`)."""
    spec = SM2_CA_FOR_SCHEME[scheme]
    key_id = sm2_ca_key_id(spec.rid, spec.index)
    if not keys.has(key_id):
        if mode == "test":
            keys.import_sm2(key_id, load_test_sm2_ca_key(scheme, ca_dir))
        elif mode == "new":
            keys.generate_sm2(key_id)
        else:
            raise ConfigError("the CA is 'test' or 'new'")
    public = keys.sm2_key(key_id).public
    return Sm2CaKey(rid=spec.rid, index=spec.index, public=public, expiry=CERTIFICATE_EXPIRY)


def ensure_range_ca(
    keys: KeyStore,
    spec: RangeSpec,
    *,
    mode: str = "test",
    ca_dir: Path | None = None,
    progress: Progress = _quiet,
) -> AnyCaKey:
    """The CA that certifies ``spec``'s issuer key, RSA or (SM suite) SM2, and the
    issuer key itself, both made if absent."""
    if sm_suite(spec.scheme, spec.prefix, spec.cvn):
        ensure_sm2_issuer_key(keys, spec.scheme)
        return ensure_sm2_ca(keys, spec.scheme, mode=mode, ca_dir=ca_dir)
    ensure_issuer_key(keys, spec.scheme, progress=progress)
    return ensure_ca(keys, spec.scheme, mode=mode, ca_dir=ca_dir, progress=progress)


def range_ca_key_id(spec: RangeSpec) -> str:
    """The key id of the CA key that certifies ``spec``'s issuer key."""
    if sm_suite(spec.scheme, spec.prefix, spec.cvn):
        sm2 = SM2_CA_FOR_SCHEME[spec.scheme]
        return sm2_ca_key_id(sm2.rid, sm2.index)
    rsa = CA_FOR_SCHEME[spec.scheme]
    return ca_key_id(rsa.rid, rsa.index)


def ensure_sm2_issuer_key(keys: KeyStore, scheme: str) -> str:
    """The key id of a scheme's issuer SM2 key, generated if absent."""
    key_id = sm2_issuer_key_id(scheme)
    if not keys.has(key_id):
        keys.generate_sm2(key_id)
    return key_id


def ensure_issuer_key(keys: KeyStore, scheme: str, *, progress: Progress = _quiet) -> str:
    """The key id of the scheme's issuer RSA key, generated if absent."""
    key_id = issuer_key_id(scheme)
    if not keys.has(key_id):
        bits, exponent = ISSUER_KEY_SIZE[scheme]
        progress(f"generating the {scheme} issuer key ({bits}-bit RSA)")
        keys.generate_rsa(key_id, bits, exponent)
    return key_id


def ensure_master_keys(
    keys: KeyStore, scheme: str, prefix: str, cvn: int, version: int = 1
) -> list[str]:
    """Generate the AC, SMI and SMC master keys of a range, CVN and version that are
    missing; the key ids generated."""
    made = []
    for purpose in PURPOSES:
        ref = MasterKeyRef(scheme, prefix, cvn, purpose, version)
        if not keys.has(ref.key_id):
            keys.generate(ref)
            made.append(ref.key_id)
    return made


def certify_range(keys: KeyStore, spec: RangeSpec, ca: AnyCaKey) -> BinRange:
    """A :class:`BinRange` for ``spec`` with the issuer key certified by ``ca`` for the
    range's prefix (Book 2 §5.1, issuer identifier = prefix); with an SM2 CA, the
    issuer's SM2 key in an SM2 certificate (:mod:`emvwire.oda.sm`)."""
    try:
        if isinstance(ca, Sm2CaKey):
            issuer_id = sm2_issuer_key_id(spec.scheme)
            certificate = issue_sm2_issuer_certificate(
                keys.sm2_key(sm2_ca_key_id(ca.rid, ca.index)),
                keys.sm2_key(issuer_id).public,
                issuer_identifier=spec.prefix,
                expiry=CERTIFICATE_EXPIRY,
                serial=os.urandom(3),
            )
            remainder = exponent = b""
        else:
            issuer_id = issuer_key_id(spec.scheme)
            parts = issue_issuer_certificate(
                keys.signing_key(ca_key_id(ca.rid, ca.index)),
                keys.rsa_public(issuer_id),
                issuer_identifier=spec.prefix,
                expiry=CERTIFICATE_EXPIRY,
                serial=os.urandom(3),
            )
            certificate, remainder, exponent = parts
    except EmvWireError as exc:
        raise KeyStoreError(f"cannot certify the issuer key for {spec.prefix}: {exc}") from None
    return BinRange(
        prefix=spec.prefix,
        scheme=spec.scheme,
        kind=spec.kind,
        cvn=spec.cvn,
        pan_length=spec.pan_length,
        issuer_key_id=issuer_id,
        ca_rid=ca.rid,
        ca_index=ca.index,
        certificate=certificate,
        remainder=remainder,
        exponent=exponent,
        created_at=utc_now(),
    )


def ca_key_file(cas: Iterable[AnyCaKey]) -> dict[str, object]:
    """The CA public keys as a ``tapstack-capk/1`` key file (for a terminal's store)."""
    return {
        "format": KEY_FILE_FORMAT,
        "keys": [
            {**ca.to_json_object(), "note": "tapstack issuer CA (not a real scheme key)"}
            for ca in cas
        ],
    }
