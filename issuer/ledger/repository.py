"""Repository interfaces of the issuer's database, and the unit of work joining them.

The domain (:mod:`issuer.domain`) and the authorisation service talk to these
interfaces only (cosmicpython's repository and unit-of-work patterns).
:mod:`issuer.ledger.sql` implements them once over SQL for both adapters,
:mod:`issuer.ledger.sqlite` and :mod:`issuer.ledger.postgres`.

A :class:`UnitOfWork` is one database transaction::

    with ledger.unit_of_work() as uow:
        account = uow.accounts.get(account_id, for_update=True)
        uow.journals.post(journal)
        uow.commit()

Leaving the block without :meth:`UnitOfWork.commit` rolls back. ``for_update=True``
locks the row until the end of the transaction (``SELECT ... FOR UPDATE`` on
PostgreSQL; SQLite write transactions are ``BEGIN IMMEDIATE`` and so serialised).
Lock order, to avoid deadlocks between concurrent authorisations: ATC state, then
account, then authorisation rows.

Concurrency failures (lock time-out, serialisation failure, deadlock) raise
:class:`issuer.errors.TransientError`: retry the whole unit of work.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from issuer.model.controls import (
    ControlLevel,
    DecisionEndpoint,
    Increment,
    ProgramDecision,
    SpendingControls,
)
from issuer.model.entities import (
    Account,
    AccountStatus,
    AtcVerdict,
    Authorisation,
    AuthorisationEvent,
    AuthorisationStatus,
    BinRange,
    Card,
    CardStatus,
    Entry,
    Journal,
    Terminal,
    TerminalCertificate,
    TerminalStatus,
    Token,
    TokenStatus,
)
from issuer.model.events import (
    Delivery,
    EndpointStatus,
    Event,
    WebhookEndpoint,
)
from issuer.model.operators import AuditRecord, Operator, OperatorStatus

__all__ = [
    "AccountRepository",
    "AtcRepository",
    "AuditRepository",
    "AuthorisationRepository",
    "BinRangeRepository",
    "CardRepository",
    "CertificateRepository",
    "Claimed",
    "Discrepancy",
    "EventRepository",
    "IncrementRepository",
    "JournalRepository",
    "Ledger",
    "OperatorRepository",
    "OperatorRequestRepository",
    "Page",
    "PageRepository",
    "ProgramRepository",
    "Reservation",
    "SpendingControlRepository",
    "TerminalRepository",
    "TokenRepository",
    "Undispatched",
    "UnitOfWork",
    "WebhookRepository",
]


class AccountRepository(Protocol):
    """Accounts. Balances change only through :meth:`JournalRepository.post`; a system
    account's are summed from its entries when read (it keeps no running balance)."""

    def add(self, account: Account) -> None:
        """Insert a new account (balance and held start at zero)."""

    def get(self, account_id: str, *, for_update: bool = False) -> Account:
        """One account; :class:`NotFoundError` if absent."""

    def list(self, *, include_system: bool = False, limit: int = 1000) -> list[Account]:
        """Accounts, oldest first."""

    def set_status(self, account_id: str, status: AccountStatus) -> None:
        """Change an account's status."""

    def reserve(
        self,
        account_id: str,
        amount: int,
        *,
        card_id: str | None = None,
        token_id: str | None = None,
        since: str | None = None,
        limit: int | None = None,
    ) -> bool:
        """Add ``amount`` to the held book if that much is available (balance + credit
        limit - held), in one statement that locks the row; ``False`` (and nothing
        changed) if not. The caller then posts the hold journal with
        ``apply_balances=False``.

        With ``since`` and ``limit``, on condition too that the card (or, with
        ``token_id``, the token) has fewer than ``limit`` approved authorisations since
        ``since`` (the velocity rule, :meth:`AuthorisationRepository.count_since`): the
        common case of an authorisation in one statement. ``False`` if either fails;
        the caller counts to tell which."""


class BinRangeRepository(Protocol):
    """The issuer's PAN and token ranges."""

    def add(self, bin_range: BinRange) -> None:
        """Insert a range; :class:`ConflictError` if the prefix exists."""

    def get(self, prefix: str) -> BinRange:
        """One range; :class:`NotFoundError` if absent."""

    def list(self) -> list[BinRange]:
        """All ranges, by prefix."""

    def retire(self, prefix: str, when: str) -> None:
        """Mark an active range retired; :class:`InvalidStateError` if it is already."""

    def retired_keys(self) -> frozenset[tuple[str, str, int, int]]:
        """The retired master key versions: (scheme, prefix, CVN, version)."""

    def retire_key(self, scheme: str, prefix: str, cvn: int, version: int, when: str) -> None:
        """Record a master key version retired; :class:`InvalidStateError` if it is."""


class CardRepository(Protocol):
    """Cards (PANs of accounts)."""

    def add(self, card: Card) -> None:
        """Insert a card; :class:`ConflictError` if its PAN hash is taken."""

    def get(self, card_id: str, *, for_update: bool = False) -> Card:
        """One card; :class:`NotFoundError` if absent."""

    def find_by_pan_hash(self, pan_hash: bytes) -> Card | None:
        """The card with this keyed PAN hash, if any."""

    def list(
        self, *, account_id: str | None = None, status: CardStatus | None = None
    ) -> list[Card]:
        """Cards, oldest first, optionally of one account or status."""

    def set_status(self, card_id: str, status: CardStatus) -> None:
        """Change a card's status."""

    def set_flag(self, card_id: str, flag: str | None) -> None:
        """Mark (or clear) a card as suspect, with a reason."""


class TokenRepository(Protocol):
    """Payment tokens (the token vault's table)."""

    def add(self, token: Token) -> None:
        """Insert a token; :class:`ConflictError` if its hash is taken."""

    def get(self, token_id: str, *, for_update: bool = False) -> Token:
        """One token; :class:`NotFoundError` if absent."""

    def find_by_token_hash(self, token_hash: bytes) -> Token | None:
        """The token with this keyed hash, if any."""

    def list(
        self,
        *,
        card_id: str | None = None,
        account_id: str | None = None,
        status: TokenStatus | None = None,
    ) -> list[Token]:
        """Tokens, oldest first."""

    def set_status(self, token_id: str, status: TokenStatus) -> None:
        """Change a token's status."""

    def set_flag(self, token_id: str, flag: str | None) -> None:
        """Mark (or clear) a token as suspect."""


class TerminalRepository(Protocol):
    """Terminals and their credential hashes."""

    def add(self, terminal: Terminal) -> None:
        """Insert a terminal."""

    def get(self, terminal_id: str) -> Terminal:
        """One terminal; :class:`NotFoundError` if absent."""

    def list(self) -> list[Terminal]:
        """All terminals, oldest first."""

    def set_status(self, terminal_id: str, status: TerminalStatus) -> None:
        """Change a terminal's status."""


class CertificateRepository(Protocol):
    """Terminals' client certificates (:mod:`issuer.pki`), by serial."""

    def add(self, certificate: TerminalCertificate) -> None:
        """Record an issued certificate; :class:`ConflictError` if its serial or
        fingerprint is recorded already."""

    def get(self, serial: str) -> TerminalCertificate | None:
        """The certificate of this serial (upper-case hex), if recorded."""

    def list(self, terminal_id: str) -> list[TerminalCertificate]:
        """A terminal's certificates, oldest first."""

    def revoke(self, serial: str, at: str) -> bool:
        """Revoke one active certificate; ``False`` if none of that serial is active."""

    def revoke_terminal(self, terminal_id: str, at: str) -> int:
        """Revoke every active certificate of a terminal; how many."""


class AuthorisationRepository(Protocol):
    """Authorisation records (append-only but for their state) and their events."""

    def add(self, auth: Authorisation) -> bool:
        """Insert ``auth`` (its events are the changes that follow). ``False`` (and
        nothing written) if its terminal already sent that request id: the caller then
        replays :meth:`find_by_request`."""

    def get(self, transaction_id: str, *, for_update: bool = False) -> Authorisation:
        """One record; :class:`NotFoundError` if absent."""

    def find_by_request(self, terminal_id: str, request_id: str) -> Authorisation | None:
        """The record of a terminal's request id, if any (idempotency)."""

    def list(
        self,
        *,
        card_id: str | None = None,
        account_id: str | None = None,
        terminal_id: str | None = None,
        token_id: str | None = None,
        parent_id: str | None = None,
        status: AuthorisationStatus | None = None,
        limit: int = 100,
    ) -> list[Authorisation]:
        """Records, newest first."""

    def transition(
        self,
        transaction_id: str,
        *,
        expected: AuthorisationStatus,
        status: AuthorisationStatus,
        event: str,
        amount: int = 0,
        captured_amount: int | None = None,
        released_amount: int | None = None,
        request_id: str | None = None,
    ) -> bool:
        """Compare and set: move from ``expected`` to ``status`` and append an event.
        ``False`` if the record was not in ``expected`` (someone else moved it): so a
        hold is released exactly once."""

    def events(self, transaction_id: str) -> builtins.list[AuthorisationEvent]:
        """A record's events, oldest first."""

    def pending_expired(self, now: str, *, limit: int = 100) -> builtins.list[Authorisation]:
        """Pending records whose ``expires_at`` is before ``now``."""

    def count_since(self, *, card_id: str | None, token_id: str | None, since: str) -> int:
        """Approved authorisations of a card or token since ``since`` (velocity)."""


class JournalRepository(Protocol):
    """The double-entry ledger: append-only journals of entries."""

    def post(self, journal: Journal, *, apply_balances: bool = True) -> None:
        """Append a balanced journal and apply it to the accounts' books (unless
        ``apply_balances=False``: :meth:`AccountRepository.reserve` did).
        :class:`IntegrityError` if any book of it does not sum to zero."""

    def for_account(self, account_id: str, *, limit: int = 100) -> list[Journal]:
        """Journals touching an account, newest first."""

    def for_transaction(self, transaction_id: str) -> list[Journal]:
        """Journals of an authorisation, oldest first."""

    def entries(self, account_id: str) -> list[Entry]:
        """Every entry of an account, oldest first."""


class AtcRepository(Protocol):
    """Application Transaction Counters seen per card application (card or token).

    ``check_and_record`` decides, atomically under concurrency, whether an ATC is
    strictly new within the window: the instrument's state row (its highest ATC and
    the bitmap of the ATCs seen in the window below it) is created or locked and
    updated by one statement, so two transactions can never both record one ATC.
    """

    def check_and_record(
        self,
        instrument_id: str,
        atc: int,
        *,
        window: int,
        max_jump: int | None = None,
        transaction_id: str | None = None,
    ) -> AtcVerdict:
        """:attr:`AtcVerdict.NEW` (and recorded) if ``atc`` was never seen and is above
        ``highest - window``; ``REPLAYED`` if seen; ``ROLLED_BACK`` if at or below the
        window; ``JUMPED`` if more than ``max_jump`` above the highest. ``window`` is 1
        to 63; ``transaction_id`` is not kept (the record holds its ATC)."""

    def highest(self, instrument_id: str) -> int | None:
        """The highest ATC recorded, if any."""


class OperatorRepository(Protocol):
    """Operators of the API (:mod:`issuer.model.operators`)."""

    def add(self, operator: Operator) -> None:
        """Insert a new operator."""

    def get(self, operator_id: str) -> Operator:
        """One operator; :class:`NotFoundError` if absent."""

    def set_certificate(self, operator_id: str, serial: str, not_after: str) -> None:
        """Record the client certificate issued to the operator."""

    def set_status(self, operator_id: str, status: OperatorStatus, at: str) -> None:
        """Change the operator's status (``at``: when it was revoked)."""


class OperatorRequestRepository(Protocol):
    """The ``Idempotency-Key`` of each operator POST that changed something, with the
    hash of its request, the status it was answered and the object it made or changed
    (written in the transaction of the change)."""

    def add(
        self,
        operator_id: str,
        key: str,
        request_hash: str,
        status: int,
        object_type: str,
        object_id: str,
    ) -> None:
        """Record a done request (:class:`ConflictError` if its key is recorded)."""

    def get(self, operator_id: str, key: str) -> tuple[str, int, str, str] | None:
        """(request hash, status, object type, object id) of a recorded key."""


class AuditRepository(Protocol):
    """The append-only audit log."""

    def append(self, record: AuditRecord) -> None:
        """Add one record."""


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list, newest first, and whether more follow (cursor pagination:
    the next page starts after the last object of this one)."""

    data: list[T]
    has_more: bool


class PageRepository(Protocol):
    """Cursor pagination over the issuer's objects, newest first."""

    def page(
        self,
        kind: str,
        *,
        limit: int,
        starting_after: str | None = None,
        filters: Mapping[str, str | None] | None = None,
    ) -> Page[Any]:
        """Up to ``limit`` objects of ``kind`` (``accounts``, ``cards``, ``tokens``,
        ``terminals``, ``ranges``, ``authorisations``, ``operators``, ``audit``),
        newest first, after the object ``starting_after`` (its id; a range's prefix);
        ``filters`` by column (``None``: any). :class:`NotFoundError` if
        ``starting_after`` names no such object."""


class Undispatched(NamedTuple):
    """An event whose deliveries are not made yet (:meth:`EventRepository.undispatched`)."""

    seq: int
    id: str
    type: str
    object_id: str
    terminal_id: str | None


class EventRepository(Protocol):
    """The outbox (:mod:`issuer.ledger.schema`, migration 7): events written in the
    transaction of the change they describe.

    :meth:`add` of an object's first event (``sequence`` 1: a new authorisation, a new
    account, the hot path) only queues it: the unit of work inserts every queued event
    in one statement before it commits (:meth:`flush`), and forgets them if it rolls
    back. Another event (``sequence`` 0: numbered now, after the object's last) is
    inserted at once, after the queue."""

    def add(self, event: Event) -> None:
        """Write ``event`` (queued if ``sequence`` is 1, else numbered and inserted)."""

    def flush(self) -> None:
        """Insert the queued events (one statement)."""

    def discard(self) -> None:
        """Forget the queued events (the transaction rolled back)."""

    def get(self, event_id: str) -> Event:
        """One event; :class:`NotFoundError` if absent."""

    def locate(self, event_id: str) -> Undispatched:
        """An event's sequence, type, object and terminal; :class:`NotFoundError` if
        absent."""

    def list(
        self,
        *,
        type: str | None = None,
        object_id: str | None = None,
        limit: int = 100,
        starting_after: str | None = None,
    ) -> tuple[builtins.list[Event], bool]:
        """Events newest first (after ``starting_after``, an event id, for the next
        page), and whether more follow."""

    def undispatched(self, limit: int) -> builtins.list[Undispatched]:
        """The oldest events whose deliveries are not made, in commit order per object."""

    def mark_dispatched(self, seqs: Sequence[int]) -> None:
        """Record these events' deliveries made."""

    def dispatch_lock(self) -> bool:
        """Take the lock of the one dispatcher for this transaction, without waiting
        (PostgreSQL: an advisory lock; SQLite: its writer lock is held already);
        ``False`` if another process holds it."""


class Claimed(NamedTuple):
    """A delivery claimed for sending (:meth:`WebhookRepository.claim`)."""

    delivery_id: int
    endpoint_id: str
    attempts: int
    created_at: str
    event: Event


class WebhookRepository(Protocol):
    """Webhook endpoints (their secrets sealed) and deliveries."""

    def add(self, endpoint: WebhookEndpoint, secret_sealed: bytes) -> None:
        """Insert an endpoint."""

    def get(self, endpoint_id: str) -> WebhookEndpoint:
        """One endpoint; :class:`NotFoundError` if absent."""

    def list(self) -> builtins.list[WebhookEndpoint]:
        """Every endpoint, oldest first."""

    def sealed_secrets(self, endpoint_id: str) -> tuple[bytes, bytes | None, str | None]:
        """The sealed secret, the sealed previous one and until when it signs."""

    def set_status(self, endpoint_id: str, status: EndpointStatus) -> None:
        """Enable or disable an endpoint."""

    def rotate(self, endpoint_id: str, secret_sealed: bytes, previous_until: str) -> None:
        """A new secret; the current one becomes the previous, signing until
        ``previous_until``."""

    def remove(self, endpoint_id: str) -> None:
        """Delete an endpoint and its deliveries."""

    def add_deliveries(self, rows: Sequence[tuple[int, str, str, str]], now: str) -> None:
        """Pending deliveries due ``now``: (event seq, event id, endpoint id, object
        id) each; one that exists is left as it is."""

    def schedule(self, event: Undispatched, endpoint_id: str, now: str) -> None:
        """Deliver ``event`` to the endpoint again from ``now`` (a resend): the
        delivery made pending with no attempts, or made."""

    def claim(self, now: str, until: str, limit: int) -> builtins.list[Claimed]:
        """Lease due pending deliveries of enabled endpoints until ``until``, each the
        oldest pending one of its endpoint and object (order per object), so that no
        other worker takes them meanwhile."""

    def delivered(self, delivery_id: int, status: int, now: str) -> None:
        """Record a delivery answered with 2xx."""

    def attempt_failed(
        self,
        delivery_id: int,
        status: int | None,
        error: str,
        *,
        next_attempt_at: str | None,
    ) -> None:
        """Record a failed attempt: retried at ``next_attempt_at``, or given up
        (``None``: status ``failed``)."""

    def release(self, delivery_ids: Sequence[int]) -> None:
        """End the lease of claimed deliveries not attempted (claimable again)."""

    def due(self, now: str) -> bool:
        """Whether a pending delivery is due and unleased (a cheap look before a claim)."""

    def deliveries(self, event_id: str) -> builtins.list[Delivery]:
        """An event's deliveries, by endpoint."""

    def pending(self) -> int:
        """How many deliveries are pending."""


class SpendingControlRepository(Protocol):
    """Spending controls per account, card or token (migration 9), and the spending
    they limit."""

    def get(self, level: ControlLevel, subject_id: str) -> SpendingControls | None:
        """The controls set on one account, card or token, if any."""

    def applying(
        self, *, account_id: str, card_id: str, token_id: str | None
    ) -> tuple[SpendingControls, ...]:
        """Every control set on the token (if any), the card and the account: the
        token's first, the account's last."""

    def put(self, controls: SpendingControls) -> None:
        """Set (replace) the controls of ``controls.level`` and ``subject_id``."""

    def delete(self, level: ControlLevel, subject_id: str) -> bool:
        """Remove the controls of one account, card or token; whether it had any."""

    def list(self) -> builtins.list[SpendingControls]:
        """Every set of controls."""

    def spent(
        self, level: ControlLevel, subject_id: str, since: Sequence[str]
    ) -> builtins.list[tuple[int, int]]:
        """For each start time of ``since`` (a record time; ``""``: all time), the
        amount spent and the count of approved authorisations of the account, card
        (its tokens' included) or token since then: a pending one counts its hold, a
        captured one what was captured, a reversed or expired one nothing."""


class ProgramRepository(Protocol):
    """The program's decision endpoint and its answers (migration 9)."""

    def endpoint(self) -> DecisionEndpoint | None:
        """The endpoint, if one is set."""

    def set_endpoint(self, endpoint: DecisionEndpoint) -> None:
        """Set (replace) the endpoint."""

    def clear_endpoint(self) -> bool:
        """Remove the endpoint; whether there was one."""

    def record(self, decision: ProgramDecision) -> None:
        """Record the program's answer to an authorisation (with it, same transaction)."""

    def decision(self, transaction_id: str) -> ProgramDecision | None:
        """What the program answered for an authorisation, if it was asked."""


class IncrementRepository(Protocol):
    """Increments of pending authorisations (migration 9)."""

    def find(self, terminal_id: str, request_id: str) -> Increment | None:
        """The increment a terminal asked with this request id, if any."""

    def for_transaction(self, transaction_id: str) -> builtins.list[Increment]:
        """An authorisation's increments, oldest first."""

    def add(self, increment: Increment) -> bool:
        """Record an increment; ``False`` (nothing written) if its terminal used that
        request id already."""

    def raise_hold(self, transaction_id: str, amount: int, request_id: str) -> bool:
        """Raise a pending approved authorisation's amount and hold by ``amount`` and
        append its ``incremented`` event; ``False`` if it is not pending."""

    def event(
        self, transaction_id: str, kind: str, amount: int, request_id: str, when: str
    ) -> None:
        """Append an event to an authorisation (``increment_declined``)."""


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """A ledger invariant that does not hold (:meth:`Ledger.check`)."""

    what: str
    subject: str
    expected: int
    actual: int

    def __str__(self) -> str:
        return f"{self.what} {self.subject}: expected {self.expected}, found {self.actual}"


@dataclass(frozen=True, slots=True)
class Reservation:
    """One authorisation's ATC check and hold, for :meth:`UnitOfWork.check_and_reserve`:
    the ATC of ``instrument_id`` (none to check: ``atc`` ``None``) as
    :meth:`AtcRepository.check_and_record` decides it, then, if the ATC is new (or
    none was checked) and ``amount`` is not ``None``, :meth:`AccountRepository.reserve`
    of ``amount`` on ``account_id`` with its velocity condition."""

    instrument_id: str
    atc: int | None
    window: int
    max_jump: int | None
    account_id: str
    amount: int | None
    card_id: str | None
    token_id: str | None
    since: str
    limit: int


class UnitOfWork(ABC):
    """One database transaction with every repository (module docstring)."""

    accounts: AccountRepository
    bins: BinRangeRepository
    cards: CardRepository
    tokens: TokenRepository
    terminals: TerminalRepository
    certificates: CertificateRepository
    authorisations: AuthorisationRepository
    journals: JournalRepository
    atcs: AtcRepository
    operators: OperatorRepository
    operator_requests: OperatorRequestRepository
    audit: AuditRepository
    pages: PageRepository
    events: EventRepository
    webhooks: WebhookRepository
    controls: SpendingControlRepository
    programs: ProgramRepository
    increments: IncrementRepository

    @abstractmethod
    def commit(self) -> None:
        """Make the transaction's changes durable."""

    @abstractmethod
    def rollback(self) -> None:
        """Undo the transaction's changes."""

    def check_and_reserve(
        self, items: Sequence[Reservation]
    ) -> list[tuple[AtcVerdict | None, bool]]:
        """Each reservation's ATC verdict (``None``: none checked) and whether its
        amount was reserved, in order, as the repositories' own methods would decide
        them one after another. The items must be of distinct instruments and cards
        (a ledger may check all the ATCs first, then reserve in order: reservations of
        one account see the ones before). A ledger may send them in one round trip
        (:meth:`issuer.ledger.sql.SqlConnection.each`)."""
        out: list[tuple[AtcVerdict | None, bool]] = []
        for r in items:
            verdict = None
            if r.atc is not None:
                verdict = self.atcs.check_and_record(
                    r.instrument_id, r.atc, window=r.window, max_jump=r.max_jump
                )
            reserved = False
            if r.amount is not None and verdict in (None, AtcVerdict.NEW):
                reserved = self.accounts.reserve(
                    r.account_id, r.amount, card_id=r.card_id, token_id=r.token_id,
                    since=r.since, limit=r.limit,
                )  # fmt: skip
            out.append((verdict, reserved))
        return out

    def record_many(
        self, records: Sequence[Authorisation], holds: Sequence[Journal], *, last: bool = False
    ) -> list[bool]:
        """:meth:`AuthorisationRepository.add` of each record (whether it was added) and
        the hold journals, posted with ``apply_balances=False`` (their amounts were
        reserved). The caller rolls back if any was not added; a hold of a record not
        added may fail (:class:`~issuer.errors.LedgerError`: its journal refers to no
        record). A ledger may send them in one round trip; ``last`` (nothing but
        statements whose answers nobody reads runs after them before the commit), in
        the commit's: every record then counts as added, and one that is not fails the
        transaction, in the commit or the statement after them."""
        added = [self.authorisations.add(record) for record in records]
        for journal in holds:
            self.journals.post(journal, apply_balances=False)
        return added

    def __enter__(self) -> UnitOfWork:
        return self

    @abstractmethod
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Roll back unless committed; give the connection back."""


class Ledger(ABC):
    """A database: migrations, units of work, the invariant check."""

    #: ``"sqlite"`` or ``"postgresql"``.
    dialect: str = ""
    #: Whether its units of work send several statements in one round trip
    #: (:meth:`UnitOfWork.check_and_reserve`, :meth:`UnitOfWork.record_many`).
    pipelines: bool = False

    @abstractmethod
    def migrate(self) -> list[int]:
        """Apply missing migrations; the versions applied now."""

    @abstractmethod
    def schema_version(self) -> int:
        """The highest migration applied (0 for an empty database)."""

    @abstractmethod
    def unit_of_work(self, *, write: bool = True, snapshot: bool = True) -> UnitOfWork:
        """A new transaction (``write=False``: read only, takes no write lock).

        ``write=False, snapshot=False``: no transaction at all, each statement reads
        what is committed when it runs (no BEGIN and no end: fewer round trips) for
        reads that need no consistent snapshot between statements."""

    @abstractmethod
    def generation(self) -> int:
        """The cache generation (:mod:`issuer.ledger.schema`): a number that moves in
        the transaction of every change to a card's, token's, account's or terminal's
        status or other authorisation-relevant data. Rows cached while it stays the
        same are current; read without a transaction (what is committed now)."""

    def try_writer(self) -> bool:
        """Take this ledger's writer lock for the calling thread without waiting, if it
        has one (SQLite: one writer for every process): ``True`` when the next write
        unit of work will not wait for another process. An event loop asks first and
        meanwhile serves other requests. Ledgers with row locks answer ``True``."""
        return True

    def release_writer(self) -> None:  # noqa: B027 - nothing to give back by default
        """Give back what :meth:`try_writer` took, if no unit of work did."""

    def check(self) -> Sequence[Discrepancy]:
        """Every broken invariant: an account whose balance or held amount differs from
        the sum of its entries, a journal whose book does not sum to zero. Empty when
        the ledger is consistent."""
        with self.unit_of_work(write=False) as uow:
            return self._check(uow)

    @abstractmethod
    def _check(self, uow: UnitOfWork) -> Sequence[Discrepancy]:
        """:meth:`check` inside a unit of work."""

    @abstractmethod
    def close(self) -> None:
        """Close every connection."""

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
