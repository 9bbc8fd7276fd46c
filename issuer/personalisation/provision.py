"""Provisioning: a card or a phone wallet token, personalised into a card profile.

For a **card**, a new PAN in the scheme's card range; for a **phone**, a payment token
in the scheme's token range bound to a card of the account (the funding PAN: one given,
else the account's newest active card of the scheme, else a new funding-only card),
with its domain controls. Then (EMV Book 2 §A1.4, §6): the ICC master keys are derived
in the key store from the range's master keys, a fresh ICC RSA key is certified by the
issuer key (which signs inside the store), and :func:`emvwire.personalise.personalise`
lays out the profile that ``card serve`` runs. A range of UnionPay's SM suite (its
issuer key is an SM2 key) gets a fresh ICC SM2 key, certified with SM2
(:mod:`emvwire.oda.sm`).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emvwire.crypto.sm2 import Sm2PrivateKey
from emvwire.errors import EmvWireError
from emvwire.oda import CertificateParts, SigningKey
from emvwire.personalise import IssuerCertificate, personalise
from emvwire.profile import CardProfile, TokenInfo
from issuer.errors import IssuerError, KeyStoreError, ValidationError
from issuer.keys.base import KeyKind, KeyStore
from issuer.model.entities import BinRange, Card, CardOrigin, CardStatus, Token
from issuer.personalisation.ranges import ICC_KEY_SIZE, Progress

if TYPE_CHECKING:
    from issuer.domain.service import IssuerService

__all__ = [
    "DEFAULT_REQUESTOR_IDS",
    "ProvisionResult",
    "build_profile",
    "issuer_certificate",
    "provision",
    "write_profile",
]

#: Token requestor ids (9F19) of the phone wallet, per scheme (the fixtures' values).
DEFAULT_REQUESTOR_IDS = {
    "visa": "40010030273",
    "mastercard": "50110030273",
    "amex": "30010030273",
    "unionpay": "60010030273",
}


@dataclass(frozen=True, slots=True)
class ProvisionResult:
    """What provisioning made: the profile, the card (funding card for a phone), the
    token (phone), and whether a funding card was created for it."""

    profile: CardProfile
    card: Card
    token: Token | None = None
    funding_created: bool = False

    def to_json(self) -> dict[str, Any]:
        """JSON-ready summary (masked)."""
        return {
            "form": self.profile.form,
            "name": self.profile.name,
            "card": self.card.to_json(),
            "token": self.token.to_json() if self.token else None,
            "funding_card_created": self.funding_created,
        }


def _sm2_range(keys: KeyStore, bin_range: BinRange) -> bool:
    return keys.info(bin_range.issuer_key_id).kind is KeyKind.SM2


def issuer_certificate(keys: KeyStore, bin_range: BinRange) -> IssuerCertificate:
    """The range's issuer key (RSA signing in the store, or SM2) with its certificate."""
    parts = CertificateParts(bin_range.certificate, bin_range.remainder, bin_range.exponent)
    if _sm2_range(keys, bin_range):
        return IssuerCertificate(keys.sm2_key(bin_range.issuer_key_id), bin_range.ca_index, parts)
    return IssuerCertificate(keys.signing_key(bin_range.issuer_key_id), bin_range.ca_index, parts)


def build_profile(
    keys: KeyStore,
    bin_range: BinRange,
    *,
    form: str,
    name: str,
    pan: str,
    psn: str,
    expiry: date,
    cvn: int,
    key_version: int = 1,
    cardholder: str = "",
    token: TokenInfo | None = None,
    icc_key: SigningKey | None = None,
    uid: bytes | None = None,
    progress: Progress | None = None,
) -> CardProfile:
    """Personalise one application from the store's keys (module docstring).

    ``icc_key`` may be given (tests reuse one); else a fresh key of
    :data:`~issuer.personalisation.ranges.ICC_KEY_SIZE` is generated (a fresh SM2 key
    on a range of the SM suite, whatever ``icc_key`` is). ``uid`` defaults
    to a random single-size UID (first byte 08: random UID, ISO/IEC 14443-3 §6.4.4).
    The ICC master keys derive from version ``key_version`` of the range's master keys.
    """
    scheme = bin_range.scheme
    icc_keys = keys.derive_icc_keys(scheme, bin_range.prefix, cvn, pan, psn, key_version)
    icc: SigningKey | Sm2PrivateKey
    if _sm2_range(keys, bin_range):
        icc = Sm2PrivateKey.generate()
    elif icc_key is None:
        bits, exponent = ICC_KEY_SIZE[scheme]
        if progress is not None:
            progress(f"generating the ICC key ({bits}-bit RSA)")
        icc = SigningKey.generate(bits, exponent)
    else:
        icc = icc_key
    try:
        return personalise(
            kernel=scheme,  # type: ignore[arg-type]
            form=form,  # type: ignore[arg-type]
            name=name,
            pan=pan,
            psn=psn,
            expiry=expiry,
            cvn=cvn,
            icc_keys=icc_keys,
            icc_key=icc,
            issuer=issuer_certificate(keys, bin_range),
            cardholder=cardholder,
            token=token,
            uid=uid if uid is not None else b"\x08" + secrets.token_bytes(3),
        )
    except EmvWireError as exc:
        raise KeyStoreError(f"personalisation failed: {exc}") from None


def _cardholder(holder: str) -> str:
    text = "".join(ch if ch.isascii() and (ch.isalnum() or ch in " ./-") else " " for ch in holder)
    return text.upper().strip()[:26] or "/"


def provision(
    service: IssuerService,
    account_id: str,
    scheme: str,
    form: str,
    *,
    cvn: int | None = None,
    expiry: date | None = None,
    card_id: str | None = None,
    requestor_id: str | None = None,
    contactless_only: bool = True,
    allowed_mccs: Iterable[str] | None = None,
    blocked_mccs: Iterable[str] | None = None,
    name: str | None = None,
    icc_key: SigningKey | None = None,
    progress: Progress | None = None,
    prefix: str | None = None,
) -> ProvisionResult:
    """Create a card (``form="card"``) or a phone token (``form="phone"``) for an
    account and personalise it (module docstring). ``prefix`` picks the card range
    of a card (default: the scheme's first active card range); the range's CVN is the
    card's unless ``cvn`` says otherwise (UnionPay: TDES or the SM4 suite per range)."""
    if form not in ("card", "phone"):
        raise ValidationError("the form is card or phone")
    if scheme not in ICC_KEY_SIZE:
        raise ValidationError(f"the scheme is one of {', '.join(ICC_KEY_SIZE)}")
    keys = service.keys
    account = service.account(account_id)
    if form == "card":
        if card_id is not None:
            raise ValidationError("--card is for a phone token (the card it is bound to)")
        issued = service.issue_card(account_id, scheme, cvn=cvn, prefix=prefix, expiry=expiry)
        card = issued.card
        try:
            profile = build_profile(
                keys,
                _range(service, card.bin),
                form="card",
                name=name or f"{scheme}-card-{card.pan_last4}",
                pan=issued.pan,
                psn=card.psn,
                expiry=card.expiry,
                cvn=card.cvn,
                key_version=card.key_version,
                cardholder=_cardholder(account.holder),
                icc_key=icc_key,
                progress=progress,
            )
        except IssuerError:
            service.close_card(card.id)
            raise
        return ProvisionResult(profile, card)
    if prefix is not None:
        raise ValidationError("--range is for a card (a phone's token range is the scheme's)")
    funding, created = _funding_card(service, account_id, scheme, card_id)
    requestor = requestor_id or DEFAULT_REQUESTOR_IDS[scheme]
    issued_token = service.issue_token(
        funding.id,
        requestor_id=requestor,
        cvn=cvn,
        expiry=expiry,
        contactless_only=contactless_only,
        allowed_mccs=allowed_mccs,
        blocked_mccs=blocked_mccs,
    )
    token = issued_token.token
    try:
        profile = build_profile(
            keys,
            _range(service, token.bin),
            form="phone",
            name=name or f"{scheme}-phone-{token.token_last4}",
            pan=issued_token.token_pan,
            psn=token.psn,
            expiry=token.expiry,
            cvn=token.cvn,
            key_version=token.key_version,
            token=TokenInfo(token.requestor_id, token.par, funding.pan_last4),
            icc_key=icc_key,
            progress=progress,
        )
    except IssuerError:
        service.delete_token(token.id)
        raise
    return ProvisionResult(profile, funding, token, created)


def _range(service: IssuerService, prefix: str) -> BinRange:
    for bin_range in service.bin_ranges():
        if bin_range.prefix == prefix:
            return bin_range
    raise KeyStoreError(f"no BIN range {prefix}")


def _funding_card(
    service: IssuerService, account_id: str, scheme: str, card_id: str | None
) -> tuple[Card, bool]:
    if card_id is not None:
        card = service.card(card_id)
        if card.account_id != account_id:
            raise ValidationError(f"card {card_id} is not of account {account_id}")
        if card.scheme != scheme:
            raise ValidationError(f"card {card_id} is a {card.scheme} card, not {scheme}")
        return card, False
    active = [
        c
        for c in service.cards(account_id=account_id)
        if c.scheme == scheme and c.status is CardStatus.ACTIVE
    ]
    if active:
        return active[-1], False
    return service.issue_card(account_id, scheme, origin=CardOrigin.FUNDING).card, True


def write_profile(profile: CardProfile, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a profile (mode 0600: it holds keys); refuse to replace a file unless asked."""
    target = Path(path)
    if target.exists() and not overwrite:
        raise ValidationError(f"{target} exists (use --force to replace it)")
    if target.parent and not target.parent.exists():
        raise ValidationError(f"no such folder: {target.parent}")
    profile.dump(target)
    target.chmod(0o600)
    return target
