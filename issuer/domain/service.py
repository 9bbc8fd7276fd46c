"""The issuer's domain operations: accounts, cards, tokens, terminals, operators.

:class:`IssuerService` takes a :class:`~issuer.ledger.repository.Ledger` and a
:class:`~issuer.keys.base.KeyStore` (wired by :mod:`issuer.bootstrap`), so tests and
the CLI run it without a server. Each public method is one unit of work. PANs and
tokens enter and leave only through :class:`IssuedCard` / :class:`IssuedToken` (whose
reprs mask them) and :meth:`IssuerService.reveal`; the database holds them sealed
(:mod:`issuer.ledger.schema`).

The CLI and the operator API run the same methods. A service :meth:`acting as
<IssuerService.acting_as>` someone writes every change it makes to the audit log in
the change's own transaction (:mod:`issuer.domain.audit`); the lists of the API page
through :meth:`IssuerService.page`.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from emvwire.mask import mask_pan
from issuer.domain import funds
from issuer.domain.audit import Acting
from issuer.domain.credentials import OPERATOR_PREFIX, hash_credential, new_credential
from issuer.errors import (
    ConflictError,
    InvalidStateError,
    KeyStoreError,
    NotFoundError,
    ValidationError,
)
from issuer.keys.base import KeyStore, MasterKeyRef
from issuer.model import currency as currencies
from issuer.model.currency import currency
from issuer.model.entities import (
    Account,
    AccountKind,
    AccountStatus,
    Authorisation,
    BinRange,
    Card,
    CardOrigin,
    CardStatus,
    Journal,
    Terminal,
    TerminalCertificate,
    TerminalStatus,
    Token,
    TokenStatus,
    new_id,
    utc_now,
)
from issuer.model.lifecycle import check_card_change, check_token_change
from issuer.model.operators import AuditRecord, Operator, OperatorStatus, check_scopes
from issuer.model.pan import (
    check_mcc,
    check_pan,
    check_requestor_id,
    generate_pan,
    generate_par,
)

if TYPE_CHECKING:
    from issuer.ledger.repository import Discrepancy, Ledger, Page, UnitOfWork

__all__ = ["IssuedCard", "IssuedToken", "IssuerService", "end_of_month", "parse_expiry"]

#: Attempts at drawing an unused PAN before giving up (a range nearly full).
_PAN_ATTEMPTS = 20
#: The audited action of each change of a card's or token's status.
_CARD_ACTIONS = {
    CardStatus.PAUSED: "card.suspend",
    CardStatus.ACTIVE: "card.resume",
    CardStatus.CLOSED: "card.close",
}
_TOKEN_ACTIONS = {
    TokenStatus.SUSPENDED: "token.suspend",
    TokenStatus.ACTIVE: "token.resume",
    TokenStatus.DELETED: "token.delete",
}
_PSN = re.compile(r"[0-9]{2}")


def end_of_month(year: int, month: int) -> date:
    """The last day of a month (card expiry dates are months; Book 3 Annex A 5F24)."""
    return date(year, month, calendar.monthrange(year, month)[1])


def parse_expiry(text: str) -> date:
    """``YYYY-MM`` (or ``MM/YY``) -> the last day of that month."""
    text = str(text).strip()
    m = re.fullmatch(r"([0-9]{4})-([0-9]{2})", text) or re.fullmatch(r"([0-9]{2})/([0-9]{2})", text)
    if not m:
        raise ValidationError("an expiry date is YYYY-MM (or MM/YY)")
    if "/" in text:
        month, year = int(m.group(1)), 2000 + int(m.group(2))
    else:
        year, month = int(m.group(1)), int(m.group(2))
    if not 1 <= month <= 12:
        raise ValidationError("an expiry month is 01 to 12")
    return end_of_month(year, month)


def _aad(kind: str, object_id: str) -> bytes:
    return f"{kind}:{object_id}".encode()


@dataclass(frozen=True, slots=True)
class IssuedCard:
    """A new card and its PAN (shown masked)."""

    card: Card
    pan: str = field(repr=False)

    def __repr__(self) -> str:
        return f"IssuedCard({self.card.id}, {mask_pan(self.pan)})"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new token, its number (shown masked) and the card it stands for."""

    token: Token
    token_pan: str = field(repr=False)
    card: Card

    def __repr__(self) -> str:
        return f"IssuedToken({self.token.id}, {mask_pan(self.token_pan)})"


class IssuerService:
    """Accounts, cards, tokens, terminals and operators (module docstring)."""

    def __init__(
        self,
        ledger: Ledger,
        keys: KeyStore,
        *,
        today: Callable[[], date] = date.today,
        acting: Acting | None = None,
    ) -> None:
        self.ledger = ledger
        self.keys = keys
        self.today = today
        #: Who acts: each change is audited in its transaction (``None``: not audited,
        #: the domain used as a library, e.g. by tests and set-up code).
        self.acting = acting

    # -- the audit log ---------------------------------------------------------------

    def acting_as(self, acting: Acting | str) -> IssuerService:
        """This service on the same ledger and key store, its changes audited as done
        by ``acting`` (an actor name: ``cli:alice``, ``operator:op_...``)."""
        if isinstance(acting, str):
            acting = Acting(acting)
        return IssuerService(self.ledger, self.keys, today=self.today, acting=acting)

    def record_change(
        self,
        uow: UnitOfWork,
        action: str,
        object_type: str,
        object_id: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Audit a change in ``uow``, the transaction making it (nothing when no one
        is :attr:`acting`)."""
        if self.acting is not None:
            self.acting.record(uow, action, object_type, object_id, details)

    def record_outcome(
        self,
        action: str,
        object_type: str,
        object_id: str,
        outcome: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Audit, in a transaction of its own, an action that was refused or failed
        (nothing changed), or one whose change is outside the ledger (the key store)."""
        if self.acting is None:
            return
        with self.ledger.unit_of_work() as uow:
            Acting(self.acting.actor).record(uow, action, object_type, object_id, details, outcome)
            uow.commit()

    def audit_page(
        self,
        *,
        limit: int = 50,
        starting_after: str | None = None,
        actor: str | None = None,
        object_id: str | None = None,
    ) -> Page[AuditRecord]:
        """The audit log, newest first, by actor or object."""
        return self.page(
            "audit", limit=limit, starting_after=starting_after,
            actor=actor, object_id=object_id,
        )  # fmt: skip

    def page(
        self, kind: str, *, limit: int, starting_after: str | None = None, **filters: str | None
    ) -> Page[Any]:
        """One page of ``kind`` (accounts, cards, tokens, terminals, ranges,
        authorisations, operators, audit), newest first, after the object
        ``starting_after``; ``filters`` by column (``account_id``, ``status``...)."""
        with self.ledger.unit_of_work(write=False) as uow:
            return uow.pages.page(kind, limit=limit, starting_after=starting_after, filters=filters)

    # -- accounts --------------------------------------------------------------------

    def create_account(
        self,
        holder: str,
        *,
        kind: AccountKind | str = AccountKind.DEBIT,
        currency_code: str = "EUR",
        credit_limit: int = 0,
    ) -> Account:
        """Open an account. A debit account spends what was credited; a credit account
        its credit limit too."""
        holder = str(holder).strip()
        if not holder or len(holder) > 100:
            raise ValidationError("an account holder name is 1 to 100 characters")
        try:
            kind = AccountKind(kind)
        except ValueError:
            raise ValidationError("an account kind is debit or credit") from None
        if kind is AccountKind.SYSTEM:
            raise ValidationError("an account kind is debit or credit")
        if not isinstance(credit_limit, int) or credit_limit < 0:
            raise ValidationError("a credit limit is zero or more")
        if kind is AccountKind.DEBIT and credit_limit:
            raise ValidationError("a debit account has no credit limit")
        account = Account(
            new_id("acct"),
            holder,
            kind,
            currency(currency_code).alpha,
            credit_limit,
            AccountStatus.OPEN,
            utc_now(),
        )
        with self.ledger.unit_of_work() as uow:
            uow.accounts.add(account)
            self.record_change(
                uow, "account.create", "account", account.id,
                {"kind": kind.value, "currency": account.currency, "credit_limit": credit_limit},
            )  # fmt: skip
            uow.commit()
        return account

    def account(self, account_id: str) -> Account:
        """One account."""
        with self.ledger.unit_of_work(write=False) as uow:
            return self._customer(uow.accounts.get(account_id))

    @staticmethod
    def _customer(account: Account) -> Account:
        if account.kind is AccountKind.SYSTEM:
            raise NotFoundError(f"no account {account.id!r}")
        return account

    def accounts(self) -> list[Account]:
        """Every cardholder account."""
        with self.ledger.unit_of_work(write=False) as uow:
            return uow.accounts.list()

    def credit_account(
        self, account_id: str, amount: int, memo: str = ""
    ) -> tuple[Account, Journal]:
        """Add ``amount`` (minor units) to an account."""
        with self.ledger.unit_of_work() as uow:
            account = self._customer(uow.accounts.get(account_id, for_update=True))
            journal = funds.credit(uow, account, amount, memo)
            account = uow.accounts.get(account_id)
            self.record_change(
                uow, "account.credit", "account", account_id,
                {"amount": amount, "currency": account.currency, "journal": journal.id},
            )  # fmt: skip
            uow.commit()
        return account, journal

    def journals(self, account_id: str, *, limit: int = 100) -> list[Journal]:
        """The account's journals, newest first."""
        with self.ledger.unit_of_work(write=False) as uow:
            self._customer(uow.accounts.get(account_id))
            return uow.journals.for_account(account_id, limit=limit)

    def close_account(self, account_id: str) -> Account:
        """Close an account: every card closed, every token deleted."""
        with self.ledger.unit_of_work() as uow:
            account = self._customer(uow.accounts.get(account_id, for_update=True))
            if account.status is AccountStatus.CLOSED:
                raise InvalidStateError(f"account {account_id} is closed already")
            for card in uow.cards.list(account_id=account_id):
                if card.status is not CardStatus.CLOSED:
                    uow.cards.set_status(card.id, CardStatus.CLOSED)
            for token in uow.tokens.list(account_id=account_id):
                if token.status is not TokenStatus.DELETED:
                    uow.tokens.set_status(token.id, TokenStatus.DELETED)
            uow.accounts.set_status(account_id, AccountStatus.CLOSED)
            account = uow.accounts.get(account_id)
            self.record_change(uow, "account.close", "account", account_id)
            uow.commit()
        return account

    # -- ranges ----------------------------------------------------------------------

    def bin_ranges(self) -> list[BinRange]:
        """The issuer's PAN and token ranges."""
        with self.ledger.unit_of_work(write=False) as uow:
            return uow.bins.list()

    def bin_range(self, prefix: str) -> BinRange:
        """One range by its prefix."""
        with self.ledger.unit_of_work(write=False) as uow:
            return uow.bins.get(prefix)

    def retire_range(self, prefix: str) -> BinRange:
        """Retire a range: it issues and registers no more cards or tokens; those it
        has keep working (their keys are untouched)."""
        with self.ledger.unit_of_work() as uow:
            uow.bins.retire(prefix, utc_now())
            bin_range = uow.bins.get(prefix)
            self.record_change(uow, "range.retire", "range", prefix)
            uow.commit()
        return bin_range

    def _range(self, scheme: str, kind: str, prefix: str | None) -> BinRange:
        ranges = [
            r for r in self.bin_ranges() if r.scheme == scheme and r.kind == kind and r.active
        ]
        if prefix is not None:
            ranges = [r for r in ranges if r.prefix == prefix]
        if not ranges:
            where = f" {prefix}" if prefix else ""
            raise NotFoundError(f"no active {scheme} {kind} range{where} (see issuer range list)")
        return ranges[0]

    def _range_of_pan(self, scheme: str, pan: str) -> BinRange:
        ranges = [
            r
            for r in self.bin_ranges()
            if r.scheme == scheme and r.kind == "card" and r.active and pan.startswith(r.prefix)
        ]
        if not ranges:
            raise ValidationError(
                f"the PAN is in none of this issuer's active {scheme} card ranges "
                "(issuer range list; issuer range add)"
            )
        bin_range = max(ranges, key=lambda r: len(r.prefix))
        if len(pan) != bin_range.pan_length:
            raise ValidationError(
                f"range {bin_range.prefix} has PANs of {bin_range.pan_length} digits, "
                f"not {len(pan)}"
            )
        return bin_range

    # -- master key versions ------------------------------------------------------

    def retired_keys(self) -> frozenset[tuple[str, str, int, int]]:
        """The retired master key versions: (scheme, prefix, CVN, version)."""
        with self.ledger.unit_of_work(write=False) as uow:
            return uow.bins.retired_keys()

    def key_versions(self, scheme: str, prefix: str, cvn: int) -> list[tuple[int, bool]]:
        """The complete master key versions of a range and CVN (AC, SMI and SMC all in
        the key store), oldest first, each with whether it is retired."""
        retired = self.retired_keys()
        return [
            (v, (scheme, prefix, cvn, v) in retired)
            for v in self.keys.master_versions(scheme, prefix, cvn)
        ]

    def current_key_version(self, scheme: str, prefix: str, cvn: int) -> int:
        """The version new cards of a range and CVN get: the newest one not retired
        whose AC, SMI and SMC master keys are in the key store."""
        usable = [v for v, retired in self.key_versions(scheme, prefix, cvn) if not retired]
        if not usable:
            MasterKeyRef(scheme, prefix, cvn)  # a clear error for a bad CVN first
            raise KeyStoreError(
                f"no usable master keys for {scheme} range {prefix} CVN {cvn}: "
                f"issuer keys generate --scheme {scheme} --bin {prefix} --cvn {cvn} "
                "(or issuer keys import)"
            )
        return usable[-1]

    def retire_key_version(self, scheme: str, prefix: str, cvn: int, version: int) -> None:
        """Retire a master key version: the cards and tokens whose keys derive from it
        are declined (``KEY_RETIRED``) from a running service's next turn; new cards
        get the newest version left. The keys stay in the store."""
        if version not in self.keys.master_versions(scheme, prefix, cvn):
            raise NotFoundError(
                f"no master key version {version} of {scheme} range {prefix} CVN {cvn}"
            )
        with self.ledger.unit_of_work() as uow:
            uow.bins.retire_key(scheme, prefix, cvn, version, utc_now())
            self.record_change(
                uow, "keys.retire", "range", prefix,
                {"scheme": scheme, "cvn": cvn, "version": version},
            )  # fmt: skip
            uow.commit()

    def _usable_version(self, scheme: str, prefix: str, cvn: int, version: int | None) -> int:
        if version is None:
            return self.current_key_version(scheme, prefix, cvn)
        versions = dict(self.key_versions(scheme, prefix, cvn))
        if version not in versions:
            raise KeyStoreError(
                f"no master key version {version} for {scheme} range {prefix} CVN {cvn} "
                "(issuer keys list)"
            )
        if versions[version]:
            raise InvalidStateError(
                f"master key version {version} of {scheme} range {prefix} CVN {cvn} is retired"
            )
        return version

    def _check_expiry(self, expiry: date | None, default_years: int) -> date:
        today = self.today()
        if expiry is None:
            return end_of_month(today.year + default_years, today.month)
        if expiry < today:
            raise ValidationError("the expiry date has passed")
        return expiry

    # -- cards -----------------------------------------------------------------------

    def _open_account(self, account: Account) -> Account:
        account = self._customer(account)
        if account.status is not AccountStatus.OPEN:
            raise InvalidStateError(f"account {account.id} is closed")
        return account

    def issue_card(
        self,
        account_id: str,
        scheme: str,
        *,
        cvn: int | None = None,
        prefix: str | None = None,
        expiry: date | None = None,
        psn: str = "00",
        origin: CardOrigin = CardOrigin.PROVISIONED,
    ) -> IssuedCard:
        """A new PAN in the scheme's card range for an account. A chip card
        (``provisioned``) needs the range's master keys for its CVN; a ``funding`` card
        (behind tokens only) does not."""
        bin_range = self._range(scheme, "card", prefix)
        cvn = bin_range.cvn if cvn is None else cvn
        MasterKeyRef(scheme, bin_range.prefix, cvn)  # validates the CVN for the scheme
        version = 1
        if origin is not CardOrigin.FUNDING:
            version = self.current_key_version(scheme, bin_range.prefix, cvn)
        if not _PSN.fullmatch(psn):
            raise ValidationError("a PAN sequence number is 2 digits")
        expiry = self._check_expiry(expiry, 4)
        for _ in range(_PAN_ATTEMPTS):
            pan = generate_pan(bin_range.prefix, bin_range.pan_length)
            try:
                card = self._add_card(
                    account_id, scheme, bin_range, pan, psn, expiry, cvn, origin, version
                )
            except ConflictError:
                continue
            return IssuedCard(card, pan)
        raise ConflictError(f"no unused PAN found in range {bin_range.prefix}")

    def _add_card(
        self,
        account_id: str,
        scheme: str,
        bin_range: BinRange,
        pan: str,
        psn: str,
        expiry: date,
        cvn: int,
        origin: CardOrigin,
        key_version: int,
    ) -> Card:
        card_id = new_id("card")
        card = Card(
            id=card_id,
            account_id=account_id,
            scheme=scheme,
            bin=bin_range.prefix,
            pan_masked=mask_pan(pan),
            pan_last4=pan[-4:],
            pan_hash=self.keys.pan_hash(pan),
            pan_sealed=self.keys.seal(pan.encode(), _aad("card", card_id)),
            psn=psn,
            expiry=expiry,
            cvn=cvn,
            par=generate_par(scheme),
            status=CardStatus.ACTIVE,
            origin=origin,
            created_at=utc_now(),
            key_version=key_version,
        )
        with self.ledger.unit_of_work() as uow:
            self._open_account(uow.accounts.get(account_id, for_update=True))
            if uow.cards.find_by_pan_hash(card.pan_hash) is not None:
                raise ConflictError("this PAN is registered already")
            uow.cards.add(card)
            action = "card.register" if origin is CardOrigin.REGISTERED else "card.issue"
            self.record_change(
                uow, action, "card", card_id,
                {"account": account_id, "pan": card.pan_masked, "origin": origin.value,
                 "key_version": key_version},
            )  # fmt: skip
            uow.commit()
        return card

    def register_card(
        self,
        account_id: str,
        scheme: str,
        pan: str,
        *,
        psn: str,
        expiry: date,
        cvn: int,
        key_version: int | None = None,
    ) -> Card:
        """Record a card personalised elsewhere whose keys derive from this issuer's
        master keys: its PAN must be in one of the issuer's active card ranges (of the
        range's PAN length), its keys from ``key_version`` of the range's master keys
        for ``cvn`` (default: the newest not retired)."""
        pan = check_pan(pan)
        if not _PSN.fullmatch(str(psn)):
            raise ValidationError("a PAN sequence number is 2 digits")
        bin_range = self._range_of_pan(scheme, pan)
        MasterKeyRef(scheme, bin_range.prefix, cvn)
        version = self._usable_version(scheme, bin_range.prefix, cvn, key_version)
        expiry = self._check_expiry(expiry, 4)
        return self._add_card(
            account_id, scheme, bin_range, pan, psn, expiry, cvn, CardOrigin.REGISTERED, version
        )

    def card(self, card_id: str) -> Card:
        """One card."""
        with self.ledger.unit_of_work(write=False) as uow:
            return uow.cards.get(card_id)

    def cards(self, *, account_id: str | None = None) -> list[Card]:
        """Cards, oldest first."""
        with self.ledger.unit_of_work(write=False) as uow:
            if account_id is not None:
                self._customer(uow.accounts.get(account_id))
            return uow.cards.list(account_id=account_id)

    def _card_to(self, card_id: str, status: CardStatus) -> Card:
        with self.ledger.unit_of_work() as uow:
            card = uow.cards.get(card_id, for_update=True)
            check_card_change(card.id, card.status, status)
            if status is CardStatus.ACTIVE:
                self._open_account(uow.accounts.get(card.account_id))
            uow.cards.set_status(card.id, status)
            if status is CardStatus.CLOSED:
                for token in uow.tokens.list(card_id=card.id):
                    if token.status is not TokenStatus.DELETED:
                        uow.tokens.set_status(token.id, TokenStatus.DELETED)
            card = uow.cards.get(card.id)
            self.record_change(uow, _CARD_ACTIONS[status], "card", card.id)
            uow.commit()
        return card

    def pause_card(self, card_id: str) -> Card:
        """Pause a card (``issuer card suspend``): its authorisations decline."""
        return self._card_to(card_id, CardStatus.PAUSED)

    def resume_card(self, card_id: str) -> Card:
        """Resume a paused card."""
        return self._card_to(card_id, CardStatus.ACTIVE)

    def close_card(self, card_id: str) -> Card:
        """Close a card for good; its tokens are deleted."""
        return self._card_to(card_id, CardStatus.CLOSED)

    def reveal(self, item: Card | Token) -> str:
        """The clear PAN of a card or token (opened from its sealed copy)."""
        if isinstance(item, Card):
            return self.keys.unseal(item.pan_sealed, _aad("card", item.id)).decode()
        return self.keys.unseal(item.token_sealed, _aad("token", item.id)).decode()

    # -- tokens ----------------------------------------------------------------------

    def issue_token(
        self,
        card_id: str,
        *,
        requestor_id: str,
        cvn: int | None = None,
        prefix: str | None = None,
        expiry: date | None = None,
        psn: str = "00",
        contactless_only: bool = True,
        allowed_mccs: Iterable[str] | None = None,
        blocked_mccs: Iterable[str] | None = None,
    ) -> IssuedToken:
        """A payment token for a card, in the scheme's token range, with its domain
        controls: contactless only, allowed or blocked MCCs (never both)."""
        check_requestor_id(requestor_id)
        allowed = None if allowed_mccs is None else tuple(check_mcc(m) for m in allowed_mccs)
        blocked = None if blocked_mccs is None else tuple(check_mcc(m) for m in blocked_mccs)
        if allowed is not None and blocked is not None:
            raise ValidationError("give allowed MCCs or blocked MCCs, not both")
        if not _PSN.fullmatch(psn):
            raise ValidationError("a PAN sequence number is 2 digits")
        card = self.card(card_id)
        bin_range = self._range(card.scheme, "token", prefix)
        cvn = bin_range.cvn if cvn is None else cvn
        MasterKeyRef(card.scheme, bin_range.prefix, cvn)
        version = self.current_key_version(card.scheme, bin_range.prefix, cvn)
        expiry = self._check_expiry(expiry, 3)
        if expiry > card.expiry:
            expiry = card.expiry
        for _ in range(_PAN_ATTEMPTS):
            number = generate_pan(bin_range.prefix, bin_range.pan_length)
            token_id = new_id("tok")
            token = Token(
                id=token_id,
                card_id=card.id,
                account_id=card.account_id,
                scheme=card.scheme,
                bin=bin_range.prefix,
                token_masked=mask_pan(number),
                token_last4=number[-4:],
                token_hash=self.keys.pan_hash(number),
                token_sealed=self.keys.seal(number.encode(), _aad("token", token_id)),
                psn=psn,
                expiry=expiry,
                cvn=cvn,
                par=card.par,
                requestor_id=requestor_id,
                status=TokenStatus.ACTIVE,
                contactless_only=contactless_only,
                allowed_mccs=allowed,
                blocked_mccs=blocked,
                created_at=utc_now(),
                key_version=version,
            )
            try:
                with self.ledger.unit_of_work() as uow:
                    current = uow.cards.get(card.id, for_update=True)
                    if current.status is not CardStatus.ACTIVE:
                        raise InvalidStateError(f"card {card.id} is {current.status.value}")
                    self._open_account(uow.accounts.get(card.account_id))
                    if (
                        uow.tokens.find_by_token_hash(token.token_hash) is not None
                        or uow.cards.find_by_pan_hash(token.token_hash) is not None
                    ):
                        raise ConflictError("token number in use")
                    uow.tokens.add(token)
                    self.record_change(
                        uow, "token.issue", "token", token_id,
                        {"card": card.id, "token": token.token_masked},
                    )  # fmt: skip
                    uow.commit()
            except ConflictError:
                continue
            return IssuedToken(token, number, current)
        raise ConflictError(f"no unused token number found in range {bin_range.prefix}")

    def token(self, token_id: str) -> Token:
        """One token."""
        with self.ledger.unit_of_work(write=False) as uow:
            return uow.tokens.get(token_id)

    def tokens(self, *, card_id: str | None = None, account_id: str | None = None) -> list[Token]:
        """Tokens, oldest first."""
        with self.ledger.unit_of_work(write=False) as uow:
            return uow.tokens.list(card_id=card_id, account_id=account_id)

    def _token_to(self, token_id: str, status: TokenStatus) -> Token:
        with self.ledger.unit_of_work() as uow:
            token = uow.tokens.get(token_id, for_update=True)
            check_token_change(token.id, token.status, status)
            if status is TokenStatus.ACTIVE:
                card = uow.cards.get(token.card_id)
                if card.status is not CardStatus.ACTIVE:
                    raise InvalidStateError(
                        f"card {card.id} is {card.status.value}: resume it first"
                    )
            uow.tokens.set_status(token.id, status)
            token = uow.tokens.get(token.id)
            self.record_change(uow, _TOKEN_ACTIONS[status], "token", token.id)
            uow.commit()
        return token

    def suspend_token(self, token_id: str) -> Token:
        """Suspend a token; its card goes on working."""
        return self._token_to(token_id, TokenStatus.SUSPENDED)

    def resume_token(self, token_id: str) -> Token:
        """Resume a suspended token (its card must be active)."""
        return self._token_to(token_id, TokenStatus.ACTIVE)

    def delete_token(self, token_id: str) -> Token:
        """Delete a token for good."""
        return self._token_to(token_id, TokenStatus.DELETED)

    # -- terminals -------------------------------------------------------------------

    def add_terminal(
        self,
        merchant: str,
        mcc: str,
        *,
        country: str = "0250",
        certify: Callable[[str], TerminalCertificate] | None = None,
        city: str | None = None,
        currency: str | None = None,
    ) -> tuple[Terminal, str]:
        """Register a terminal: the record and its credential (shown once). With
        ``certify`` (the terminal id -> the record of a client certificate issued for
        it, :mod:`issuer.pki`) the certificate is recorded in the same transaction:
        both or neither. ``city`` and ``currency`` (ISO 4217) are for its QR codes."""
        merchant = str(merchant).strip()
        if not merchant or len(merchant) > 100:
            raise ValidationError("a merchant name is 1 to 100 characters")
        check_mcc(mcc)
        if not re.fullmatch(r"[0-9]{4}", country):
            raise ValidationError("a terminal country code is 4 digits (ISO 3166 numeric, 0250)")
        if city is not None and not 1 <= len(city.strip()) <= 100:
            raise ValidationError("a city is 1 to 100 characters")
        if currency is not None:
            currency = currencies.currency(currency).alpha
        credential = new_credential()
        terminal = Terminal(
            new_id("term"),
            merchant,
            mcc,
            hash_credential(credential),
            TerminalStatus.ACTIVE,
            utc_now(),
            country,
            None if city is None else city.strip(),
            currency,
        )
        with self.ledger.unit_of_work() as uow:
            uow.terminals.add(terminal)
            details: dict[str, Any] = {"merchant": merchant, "mcc": mcc, "country": country}
            if certify is not None:
                certificate = certify(terminal.id)
                uow.certificates.add(certificate)
                details["certificate"] = certificate.serial
            self.record_change(uow, "terminal.add", "terminal", terminal.id, details)
            uow.commit()
        return terminal, credential

    def terminal(self, terminal_id: str) -> Terminal:
        """One terminal."""
        with self.ledger.unit_of_work(write=False) as uow:
            return uow.terminals.get(terminal_id)

    def terminals(self) -> list[Terminal]:
        """Every terminal."""
        with self.ledger.unit_of_work(write=False) as uow:
            return uow.terminals.list()

    def revoke_terminal(self, terminal_id: str) -> Terminal:
        """Refuse a terminal's credential and every certificate of it from now on (one
        transaction)."""
        with self.ledger.unit_of_work() as uow:
            terminal = uow.terminals.get(terminal_id)
            if terminal.status is TerminalStatus.REVOKED:
                raise InvalidStateError(f"terminal {terminal_id} is revoked already")
            uow.terminals.set_status(terminal_id, TerminalStatus.REVOKED)
            uow.certificates.revoke_terminal(terminal_id, utc_now())
            terminal = uow.terminals.get(terminal_id)
            self.record_change(uow, "terminal.revoke", "terminal", terminal_id)
            uow.commit()
        return terminal

    def add_certificate(
        self, terminal_id: str, certify: Callable[[str], TerminalCertificate]
    ) -> TerminalCertificate:
        """Record a new client certificate of an active terminal (``certify`` issues
        it: a renewal; the terminal's other certificates stay as they are)."""
        with self.ledger.unit_of_work() as uow:
            terminal = uow.terminals.get(terminal_id)
            if terminal.status is not TerminalStatus.ACTIVE:
                raise InvalidStateError(f"terminal {terminal_id} is {terminal.status.value}")
            certificate = certify(terminal_id)
            uow.certificates.add(certificate)
            self.record_change(
                uow, "terminal.certificate.add", "terminal", terminal_id,
                {"certificate": certificate.serial},
            )  # fmt: skip
            uow.commit()
        return certificate

    def certificates(self, terminal_id: str) -> list[TerminalCertificate]:
        """A terminal's client certificates, oldest first."""
        with self.ledger.unit_of_work(write=False) as uow:
            uow.terminals.get(terminal_id)
            return uow.certificates.list(terminal_id)

    def revoke_certificate(self, terminal_id: str, serial: str) -> TerminalCertificate:
        """Refuse one client certificate of a terminal from now on (a lost key; the
        terminal and its other certificates stay)."""
        serial = serial.replace(":", "").strip().upper()
        with self.ledger.unit_of_work() as uow:
            found = uow.certificates.get(serial)
            if found is None or found.terminal_id != terminal_id:
                raise NotFoundError(f"terminal {terminal_id} has no certificate {serial}")
            if not uow.certificates.revoke(serial, utc_now()):
                raise InvalidStateError(f"certificate {serial} is revoked already")
            found = uow.certificates.get(serial)
            self.record_change(
                uow, "terminal.certificate.revoke", "terminal", terminal_id,
                {"certificate": serial},
            )  # fmt: skip
            uow.commit()
        assert found is not None
        return found

    # -- operators -------------------------------------------------------------------

    def add_operator(
        self,
        name: str,
        scopes: Iterable[str],
        *,
        certify: Callable[[str], tuple[str, str]] | None = None,
    ) -> tuple[Operator, str]:
        """Make an operator of the API: the record and its credential (shown once;
        only its Argon2id hash is kept). With ``certify`` (the operator id -> the
        serial and end of validity of a client certificate issued for it,
        :mod:`issuer.pki`) the certificate is recorded in the same transaction."""
        name = str(name).strip()
        if not name or len(name) > 100 or not name.isprintable():
            raise ValidationError("an operator name is 1 to 100 printable characters")
        credential = new_credential(OPERATOR_PREFIX)
        operator = Operator(
            new_id("op"),
            name,
            check_scopes(scopes),
            hash_credential(credential),
            OperatorStatus.ACTIVE,
            utc_now(),
        )
        with self.ledger.unit_of_work() as uow:
            uow.operators.add(operator)
            details: dict[str, Any] = {"name": name, "scopes": list(operator.scopes)}
            if certify is not None:
                serial, not_after = certify(operator.id)
                uow.operators.set_certificate(operator.id, serial, not_after)
                details["certificate"] = serial
            self.record_change(uow, "operator.add", "operator", operator.id, details)
            operator = uow.operators.get(operator.id)
            uow.commit()
        return operator, credential

    def operator(self, operator_id: str) -> Operator:
        """One operator."""
        with self.ledger.unit_of_work(write=False) as uow:
            return uow.operators.get(operator_id)

    def operators(self) -> list[Operator]:
        """Every operator, newest first."""
        found: list[Operator] = []
        after: str | None = None
        while True:
            page = self.page("operators", limit=1000, starting_after=after)
            found += page.data
            if not page.has_more:
                return found
            after = found[-1].id

    def revoke_operator(self, operator_id: str) -> Operator:
        """Refuse an operator's credential and certificate from its next request."""
        with self.ledger.unit_of_work() as uow:
            operator = uow.operators.get(operator_id)
            if operator.status is OperatorStatus.REVOKED:
                raise InvalidStateError(f"operator {operator_id} is revoked already")
            uow.operators.set_status(operator_id, OperatorStatus.REVOKED, utc_now())
            operator = uow.operators.get(operator_id)
            self.record_change(uow, "operator.revoke", "operator", operator_id)
            uow.commit()
        return operator

    # -- transactions and the ledger -------------------------------------------------

    def transactions(
        self,
        *,
        card_id: str | None = None,
        account_id: str | None = None,
        terminal_id: str | None = None,
        limit: int = 100,
    ) -> list[Authorisation]:
        """Authorisation records, newest first. A card's include its tokens'."""
        with self.ledger.unit_of_work(write=False) as uow:
            if card_id is not None:
                uow.cards.get(card_id)
                found = uow.authorisations.list(card_id=card_id, limit=limit)
                return found
            if account_id is not None:
                self._customer(uow.accounts.get(account_id))
            if terminal_id is not None:
                uow.terminals.get(terminal_id)
            return uow.authorisations.list(
                account_id=account_id, terminal_id=terminal_id, limit=limit
            )

    def authorisation(self, transaction_id: str) -> Authorisation:
        """One authorisation or refund record."""
        with self.ledger.unit_of_work(write=False) as uow:
            return uow.authorisations.get(transaction_id)

    def check_ledger(self) -> list[Discrepancy]:
        """Every broken ledger invariant (empty: consistent)."""
        return list(self.ledger.check())
