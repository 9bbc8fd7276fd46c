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
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Final

from emvwire.errors import EmvWireError
from emvwire.oda import CaKey, SigningKey, issue_issuer_certificate
from emvwire.oda.capk import KEY_FILE_FORMAT
from issuer.errors import ConfigError, KeyStoreError, ValidationError
from issuer.keys.base import PURPOSES, KeyStore, MasterKeyRef, ca_key_id, issuer_key_id
from issuer.model.entities import BinRange, utc_now

__all__ = [
    "CA_FOR_SCHEME",
    "DEFAULT_RANGES",
    "ICC_KEY_SIZE",
    "ISSUER_KEY_SIZE",
    "PACKAGED_TEST_CA",
    "CaSpec",
    "Progress",
    "RangeSpec",
    "ca_key_file",
    "certify_range",
    "check_range_spec",
    "default_test_ca_dir",
    "ensure_ca",
    "ensure_issuer_key",
    "ensure_master_keys",
    "load_test_ca_key",
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


def load_test_ca_key(scheme: str, ca_dir: Path | None = None) -> SigningKey:
    """The scheme's test CA private key, from ``ca_dir`` or :func:`default_test_ca_dir`;
    :class:`ConfigError` if it is not there."""
    spec = CA_FOR_SCHEME[scheme]
    folder = ca_dir or default_test_ca_dir()
    pem = folder / spec.test_pem if folder else None
    if pem is None or not pem.is_file():
        raise ConfigError(
            f"the test CA's private key {spec.test_pem} is not found (in the package's "
            "test_ca folder, --ca-dir or TAPSTACK_TEST_CA_DIR); use --ca new for a fresh CA"
        )
    try:
        return SigningKey.from_pem(pem.read_bytes())
    except EmvWireError as exc:
        raise ConfigError(f"test CA key {pem.name}: {exc}") from None


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


def certify_range(keys: KeyStore, spec: RangeSpec, ca: CaKey) -> BinRange:
    """A :class:`BinRange` for ``spec`` with the issuer key certified by ``ca`` for the
    range's prefix (Book 2 §5.1, issuer identifier = prefix)."""
    issuer_id = issuer_key_id(spec.scheme)
    ca_id = ca_key_id(ca.rid, ca.index)
    try:
        parts = issue_issuer_certificate(
            keys.signing_key(ca_id),
            keys.rsa_public(issuer_id),
            issuer_identifier=spec.prefix,
            expiry=CERTIFICATE_EXPIRY,
            serial=os.urandom(3),
        )
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
        certificate=parts.certificate,
        remainder=parts.remainder,
        exponent=parts.exponent,
        created_at=utc_now(),
    )


def ca_key_file(cas: Iterable[CaKey]) -> dict[str, object]:
    """The CA public keys as a ``tapstack-capk/1`` key file (for a terminal's store)."""
    return {
        "format": KEY_FILE_FORMAT,
        "keys": [
            {**ca.to_json_object(), "note": "tapstack issuer CA (not a real scheme key)"}
            for ca in cas
        ],
    }
