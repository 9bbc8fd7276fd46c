"""The issuer's domain: accounts, cards, tokens, terminals, money and the token vault.

Pure of I/O but for the repositories and key store it is given
(:mod:`issuer.ledger.repository`, :mod:`issuer.keys.base`).
"""

from issuer.domain.decline import APPROVED, RESPONSE_CODES, DeclineReason, response_code
from issuer.domain.service import IssuedCard, IssuedToken, IssuerService
from issuer.domain.vault import DeclinedError, Instrument, TokenVault
from issuer.model.entities import (
    Account,
    AccountKind,
    AccountStatus,
    AtcVerdict,
    Authorisation,
    AuthorisationKind,
    AuthorisationStatus,
    BinRange,
    Card,
    CardOrigin,
    CardStatus,
    Terminal,
    TerminalStatus,
    Token,
    TokenStatus,
)

__all__ = [
    "APPROVED",
    "RESPONSE_CODES",
    "Account",
    "AccountKind",
    "AccountStatus",
    "AtcVerdict",
    "Authorisation",
    "AuthorisationKind",
    "AuthorisationStatus",
    "BinRange",
    "Card",
    "CardOrigin",
    "CardStatus",
    "DeclineReason",
    "DeclinedError",
    "Instrument",
    "IssuedCard",
    "IssuedToken",
    "IssuerService",
    "Terminal",
    "TerminalStatus",
    "Token",
    "TokenStatus",
    "TokenVault",
    "response_code",
]
