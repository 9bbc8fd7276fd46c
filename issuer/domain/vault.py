"""The token vault: from the PAN or token a terminal read to the card, its account and
the token, with the token's status and domain restriction controls checked.

EMVCo Payment Tokenisation: a payment token stands for a PAN within a domain (here:
channel and merchant category); the token service de-tokenises before the issuer
decides, and a token outside its domain is declined as such. The channels a token may
pay on (:class:`emvwire.contract.Channel`: a tap, a phone's code scanned by a till, a
phone paying a merchant's code) are one such control, apart from ``contactless_only``
(no use beyond card-present proximity payments, which all three are). Look-up is by
the keyed PAN hash (:meth:`issuer.keys.base.KeyStore.pan_hash`), so neither the vault
nor the database compares PANs in clear.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from emvwire.contract import DeclineReason
from issuer.errors import IssuerError
from issuer.keys.base import KeyStore, MasterKeyRef
from issuer.model.entities import Account, AccountStatus, Card, CardStatus, Token, TokenStatus

if TYPE_CHECKING:
    from issuer.ledger.repository import UnitOfWork

__all__ = ["DeclinedError", "Instrument", "TokenVault"]


class DeclinedError(IssuerError):
    """An instrument may not be used, or a request not be approved: ``reason`` says why
    (a closed set); ``flag`` marks the card or token for review (a suspected attack)."""

    def __init__(self, reason: DeclineReason, message: str = "", *, flag: bool = False) -> None:
        self.reason = reason
        self.flag = flag
        super().__init__(message or reason.value)


@dataclass(frozen=True, slots=True)
class Instrument:
    """What a PAN or token resolves to. The card application that made a cryptogram is
    the token's when ``token`` is set (its own range, CVN, PSN and ATC), else the card's.
    """

    card: Card
    account: Account
    token: Token | None = None

    @property
    def instrument_id(self) -> str:
        """The id the ATC is tracked under: the token's or the card's."""
        return self.token.id if self.token is not None else self.card.id

    @property
    def scheme(self) -> str:
        """The payment scheme."""
        return self.card.scheme

    @property
    def cvn(self) -> int:
        """The cryptogram version of the application."""
        return self.token.cvn if self.token is not None else self.card.cvn

    @property
    def psn(self) -> str:
        """The PAN sequence number of the application."""
        return self.token.psn if self.token is not None else self.card.psn

    @property
    def expiry(self) -> date:
        """The application's expiry date."""
        return self.token.expiry if self.token is not None else self.card.expiry

    @property
    def key_version(self) -> int:
        """The version of the range's master keys the application's keys derive from."""
        return self.token.key_version if self.token is not None else self.card.key_version

    @property
    def key_ref(self) -> MasterKeyRef:
        """The AC master key the application's keys derive from."""
        bin_ = self.token.bin if self.token is not None else self.card.bin
        return MasterKeyRef(self.scheme, bin_, self.cvn, "ac", self.key_version)


class TokenVault:
    """De-tokenisation and instrument checks (module docstring)."""

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys

    def lookup(self, uow: UnitOfWork, pan: str) -> Instrument | None:
        """The instrument of a PAN or token, or ``None`` if this issuer has none."""
        return self.lookup_hash(uow, self.keys.pan_hash(pan))

    @staticmethod
    def lookup_hash(uow: UnitOfWork, digest: bytes) -> Instrument | None:
        """:meth:`lookup` by the keyed hash of the PAN or token
        (:meth:`~issuer.keys.base.KeyStore.pan_hash`)."""
        # Cards first: a plastic card's tap takes one look-up (a number is a card's or
        # a token's, never both: their ranges are apart).
        card = uow.cards.find_by_pan_hash(digest)
        if card is not None:
            return Instrument(card, uow.accounts.get(card.account_id))
        token = uow.tokens.find_by_token_hash(digest)
        if token is None:
            return None
        funding = uow.cards.get(token.card_id)
        return Instrument(funding, uow.accounts.get(funding.account_id), token)

    @staticmethod
    def check(
        instrument: Instrument,
        *,
        today: date,
        contactless: bool = True,
        mcc: str | None = None,
        channel: str = "contactless",
    ) -> DeclineReason | None:
        """Why ``instrument`` may not pay now, or ``None``: account, card and token
        status, expiry, then the token's domain controls (contactless only, the
        ``channel`` among its channels, MCCs)."""
        card, token = instrument.card, instrument.token
        if instrument.account.status is not AccountStatus.OPEN:
            return DeclineReason.ACCOUNT_CLOSED
        if card.status is CardStatus.CLOSED:
            return DeclineReason.CARD_CLOSED
        if card.status is CardStatus.PAUSED:
            return DeclineReason.CARD_PAUSED
        if token is not None:
            if token.status is TokenStatus.DELETED:
                return DeclineReason.TOKEN_DELETED
            if token.status is TokenStatus.SUSPENDED:
                return DeclineReason.TOKEN_SUSPENDED
            if token.expiry < today:
                return DeclineReason.TOKEN_EXPIRED
        if card.expiry < today:
            return DeclineReason.CARD_EXPIRED
        if token is not None:
            if token.contactless_only and not contactless:
                return DeclineReason.TOKEN_DOMAIN_VIOLATION
            if token.channels is not None and channel not in token.channels:
                return DeclineReason.TOKEN_DOMAIN_VIOLATION
            if token.allowed_mccs is not None and (mcc is None or mcc not in token.allowed_mccs):
                return DeclineReason.TOKEN_DOMAIN_VIOLATION
            if token.blocked_mccs is not None and mcc in token.blocked_mccs:
                return DeclineReason.TOKEN_DOMAIN_VIOLATION
        return None

    def detokenise(
        self,
        uow: UnitOfWork,
        pan: str,
        *,
        today: date,
        contactless: bool = True,
        mcc: str | None = None,
    ) -> Instrument:
        """:meth:`lookup` then :meth:`check`; :class:`DeclinedError` with the reason."""
        instrument = self.lookup(uow, pan)
        if instrument is None:
            raise DeclinedError(DeclineReason.CARD_NOT_FOUND, "no card or token of this issuer")
        reason = self.check(instrument, today=today, contactless=contactless, mcc=mcc)
        if reason is not None:
            raise DeclinedError(reason)
        return instrument
