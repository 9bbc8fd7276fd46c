# ruff: noqa: S105, S608 - statements (and column lists) are assembled from module constants only, never input
"""The repositories of :mod:`issuer.ledger.repository`, written once in SQL.

Statements use ``?`` placeholders; a :class:`Dialect` turns them into the driver's
(``%s`` for psycopg) and says how a dialect spells ``FOR UPDATE`` and which driver
errors are unique violations or transient. The adapters
(:mod:`issuer.ledger.sqlite`, :mod:`issuer.ledger.postgres`) supply connections.
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from types import TracebackType
from typing import Any, Final

from issuer.errors import (
    ConflictError,
    IntegrityError,
    InvalidStateError,
    LedgerError,
    NotFoundError,
    TransientError,
)
from issuer.ledger.controls_sql import SqlIncrements, SqlPrograms, SqlSpendingControls
from issuer.ledger.events_sql import SqlEvents, SqlWebhooks
from issuer.ledger.operators_sql import SqlAuditLog, SqlOperatorRequests, SqlOperators, SqlPages
from issuer.ledger.repository import Discrepancy, Reservation, UnitOfWork
from issuer.model.entities import (
    SYSTEM_PREFIX,
    Account,
    AccountKind,
    AccountStatus,
    AtcVerdict,
    Authorisation,
    AuthorisationEvent,
    AuthorisationKind,
    AuthorisationStatus,
    BinRange,
    Book,
    Card,
    CardOrigin,
    CardStatus,
    CertificateStatus,
    Entry,
    Journal,
    JournalKind,
    Terminal,
    TerminalCertificate,
    TerminalStatus,
    Token,
    TokenStatus,
    utc_now,
)

__all__ = [
    "Dialect",
    "SqlConnection",
    "SqlRepositories",
    "SqlUnitOfWork",
    "Statement",
    "check_ledger",
]


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between SQL databases, for the repositories."""

    name: str
    placeholder: str
    for_update: str
    is_unique_violation: Callable[[BaseException], bool]
    is_transient: Callable[[BaseException], bool]
    is_driver_error: Callable[[BaseException], bool]
    #: Whether the driver sends several statements in one round trip
    #: (:meth:`SqlConnection.each`: psycopg's pipeline mode).
    pipelines: bool = False

    @functools.lru_cache(maxsize=512)  # noqa: B019 - dialects are module constants
    def sql(self, statement: str) -> str:
        """``statement`` with this dialect's placeholders."""
        return statement if self.placeholder == "?" else statement.replace("?", self.placeholder)


class SqlConnection:
    """A driver connection seen by the repositories: run, fetch one, fetch all.

    Driver errors become issuer errors: unique violations :class:`ConflictError`,
    concurrency failures :class:`TransientError`, others :class:`LedgerError`.
    Statements in ``?`` style reach a ``?`` driver (sqlite3) as they are; others are
    rewritten once per statement text and remembered (the hot path runs the same dozen).
    """

    def __init__(self, raw: Any, dialect: Dialect) -> None:
        self.raw = raw
        self.dialect = dialect
        self._rewrite = dialect.placeholder != "?"
        self._texts: dict[str, str] = _REWRITTEN.setdefault(dialect.placeholder, {})
        #: Statements :meth:`later` queued, sent ahead of the next one.
        self._ahead: list[tuple[str, Sequence[Any]]] = []

    def _sql(self, sql: str) -> str:
        if not self._rewrite:
            return sql
        found = self._texts.get(sql)
        if found is None:
            found = self._texts[sql] = sql.replace("?", self.dialect.placeholder)
        return found

    def _translate(self, exc: BaseException) -> BaseException:
        d = self.dialect
        if d.is_unique_violation(exc):
            return ConflictError("that record exists already")
        if d.is_transient(exc):
            return TransientError(f"database busy ({type(exc).__name__}): retry")
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "append-only" in text or "pending authorisation" in text:
            return IntegrityError(text)
        return LedgerError(f"database error: {text[:200]}")

    def _execute(self, sql: str, params: Sequence[Any]) -> Any:
        """Run one statement; the driver's cursor (sqlite3 and psycopg connections
        both have ``execute``; without parameters psycopg does no ``%`` processing)."""
        return self.raw.execute(sql, params) if params else self.raw.execute(sql)

    def later(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Execute a statement whose answer nobody reads. A dialect that
        :attr:`~Dialect.pipelines` sends it ahead of the next statement, in that one's
        round trip (its error, if any, is raised there: the statements after it in the
        transaction are not run); others run it now."""
        if self.dialect.pipelines:
            self._ahead.append((sql, params))
        else:
            self.run(sql, params)

    def unsent(self) -> list[str]:
        """The statements :meth:`later` queued and not sent yet."""
        return [sql for sql, _ in self._ahead]

    def forget(self) -> None:
        """Drop the statements :meth:`later` queued (a transaction ended unsent)."""
        self._ahead.clear()

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Execute; the number of rows affected."""
        if self._ahead:
            return self.each([(sql, params)])[0].rowcount
        try:
            cur = self._execute(self._sql(sql), params)
            return int(cur.rowcount)
        except Exception as exc:
            if self.dialect.is_driver_error(exc):
                raise self._translate(exc) from None
            raise

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Execute; every row."""
        if self._ahead:
            return self.each([(sql, params)])[0].rows
        try:
            cur = self._execute(self._sql(sql), params)
            return [tuple(r) for r in cur.fetchall()]
        except Exception as exc:
            if self.dialect.is_driver_error(exc):
                raise self._translate(exc) from None
            raise

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """Execute; the first row or ``None``."""
        if self._ahead:
            rows = self.each([(sql, params)])[0].rows
            return rows[0] if rows else None
        try:
            cur = self._execute(self._sql(sql), params)
            row = cur.fetchone()
        except Exception as exc:
            if self.dialect.is_driver_error(exc):
                raise self._translate(exc) from None
            raise
        return None if row is None else tuple(row)

    def each(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[Statement]:
        """Execute each statement in order; each one's rows affected and rows.
        A dialect that :attr:`~Dialect.pipelines` sends them all in one round trip
        (PostgreSQL's extended query protocol pipelined, one flush), after those
        :meth:`later` queued; on a conflict, the statements after the failed one are
        not run."""
        if not self.dialect.pipelines:
            out = []
            for sql, params in statements:
                try:
                    cur = self._execute(self._sql(sql), params)
                    out.append(Statement(int(cur.rowcount), _rows(cur)))
                except Exception as exc:
                    if self.dialect.is_driver_error(exc):
                        raise self._translate(exc) from None
                    raise
            return out
        ahead, self._ahead = self._ahead, []
        try:
            with self.raw.pipeline():
                for sql, params in ahead:
                    self._execute(self._sql(sql), params)
                cursors = [self._execute(self._sql(sql), params) for sql, params in statements]
            return [Statement(int(cur.rowcount), _rows(cur)) for cur in cursors]
        except Exception as exc:
            if self.dialect.is_driver_error(exc):
                # psycopg may then count a statement prepared that the failed pipeline
                # never prepared ("prepared statement ... does not exist" later): the
                # connection is not used again (closed: its transaction rolls back).
                self.raw.close()
                raise self._translate(exc) from None
            raise


@dataclass(frozen=True, slots=True)
class Statement:
    """What :meth:`SqlConnection.each` says of one statement: the rows it affected
    and the rows it returned."""

    rowcount: int
    rows: list[tuple[Any, ...]]


def _rows(cur: Any) -> list[tuple[Any, ...]]:
    return [] if cur.description is None else [tuple(r) for r in cur.fetchall()]


#: Statement texts rewritten for each placeholder style (:class:`SqlConnection`).
_REWRITTEN: dict[str, dict[str, str]] = {}


def _bytes(value: Any) -> bytes:
    return bytes(value) if value is not None else b""


def _mccs(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    return tuple(m for m in text.split(",") if m)


def _channels(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(c for c in text.split(",") if c)


def channels_text(channels: tuple[str, ...] | None) -> str | None:
    """A token's channels as its ``channels`` column holds them (``None``: every one)."""
    return None if channels is None else ",".join(channels)


def _mcc_text(mccs: tuple[str, ...] | None) -> str | None:
    return None if mccs is None else ",".join(mccs)


# -- accounts ----------------------------------------------------------------------------

_ACCOUNT_COLUMNS: Final = (
    "id, holder, kind, currency, credit_limit, status, created_at, balance, held"
)


def _account(row: tuple[Any, ...]) -> Account:
    return Account(
        row[0],
        row[1],
        AccountKind(row[2]),
        row[3],
        int(row[4]),
        AccountStatus(row[5]),
        row[6],
        int(row[7]),
        int(row[8]),
    )


class SqlAccounts:
    """:class:`~issuer.ledger.repository.AccountRepository` in SQL."""

    def __init__(self, db: SqlConnection) -> None:
        self.db = db

    def add(self, account: Account) -> None:
        self.db.run(
            "INSERT INTO accounts (id, holder, kind, currency, credit_limit, status, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                account.id,
                account.holder,
                account.kind.value,
                account.currency,
                account.credit_limit,
                account.status.value,
                account.created_at,
            ),
        )

    def get(self, account_id: str, *, for_update: bool = False) -> Account:
        lock = self.db.dialect.for_update if for_update else ""
        row = self.db.one(
            f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id = ?{lock}", (account_id,)
        )
        if row is None:
            raise NotFoundError(f"no account {account_id!r}")
        account = _account(row)
        if account.kind is AccountKind.SYSTEM:
            # System accounts keep no running balance (every journal touches one, so
            # a running balance would serialise all of them on one row): summed here.
            sums = self.db.one(
                "SELECT COALESCE(SUM(CASE WHEN book = 'posted' THEN amount ELSE 0 END), 0),"
                " COALESCE(SUM(CASE WHEN book = 'held' THEN amount ELSE 0 END), 0)"
                " FROM entries WHERE account_id = ?",
                (account_id,),
            )
            assert sums is not None
            account = replace(account, balance=int(sums[0]), held=int(sums[1]))
        return account

    def list(self, *, include_system: bool = False, limit: int = 1000) -> list[Account]:
        where = "" if include_system else " WHERE kind <> 'system'"
        rows = self.db.all(
            f"SELECT {_ACCOUNT_COLUMNS} FROM accounts{where} ORDER BY created_at, id LIMIT ?",
            (limit,),
        )
        return [self.get(r[0]) if r[2] == AccountKind.SYSTEM.value else _account(r) for r in rows]

    def set_status(self, account_id: str, status: AccountStatus) -> None:
        if not self.db.run(
            "UPDATE accounts SET status = ? WHERE id = ?", (status.value, account_id)
        ):
            raise NotFoundError(f"no account {account_id!r}")

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
        sql, params = reserve_statement(
            account_id, amount, card_id=card_id, token_id=token_id, since=since, limit=limit
        )
        return bool(self.db.run(sql, params))


def reserve_statement(
    account_id: str,
    amount: int,
    *,
    card_id: str | None = None,
    token_id: str | None = None,
    since: str | None = None,
    limit: int | None = None,
    fresh_atc_of: str | None = None,
) -> tuple[str, tuple[object, ...]]:
    """The statement of :meth:`SqlAccounts.reserve`; with ``fresh_atc_of``, on
    condition too that this transaction's ATC check of that instrument accepted its
    ATC (the ``fresh`` mark of :data:`_ATC_UPSERT`, in the same round trip)."""
    sql = (
        "UPDATE accounts SET held = held + ? WHERE id = ? AND kind <> 'system'"
        " AND balance + credit_limit - held >= ?"
    )
    params: tuple[object, ...] = (amount, account_id, amount)
    if since is not None and limit is not None:
        column, value = ("token_id", token_id) if token_id is not None else ("card_id", card_id)
        sql += (
            f" AND (SELECT COUNT(*) FROM authorisations WHERE {column} = ?"
            " AND approved = 1 AND kind = 'authorisation' AND created_at >= ?) < ?"
        )
        params += (value, since, limit)
    if fresh_atc_of is not None:
        sql += " AND EXISTS (SELECT 1 FROM atc_state WHERE instrument_id = ? AND fresh = 1)"
        params += (fresh_atc_of,)
    return sql, params


# -- BIN ranges --------------------------------------------------------------------------

_BIN_COLUMNS: Final = (
    "prefix, scheme, kind, cvn, pan_length, issuer_key_id, ca_rid, ca_index, certificate,"
    " remainder, exponent, created_at, status, retired_at"
)


def _bin(row: tuple[Any, ...]) -> BinRange:
    return BinRange(
        row[0],
        row[1],
        row[2],
        int(row[3]),
        int(row[4]),
        row[5],
        _bytes(row[6]),
        int(row[7]),
        _bytes(row[8]),
        _bytes(row[9]),
        _bytes(row[10]),
        row[11],
        row[12],
        row[13],
    )


class SqlBinRanges:
    """:class:`~issuer.ledger.repository.BinRangeRepository` in SQL."""

    def __init__(self, db: SqlConnection) -> None:
        self.db = db

    def add(self, bin_range: BinRange) -> None:
        r = bin_range
        self.db.run(
            f"INSERT INTO bin_ranges ({_BIN_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                r.prefix,
                r.scheme,
                r.kind,
                r.cvn,
                r.pan_length,
                r.issuer_key_id,
                r.ca_rid,
                r.ca_index,
                r.certificate,
                r.remainder,
                r.exponent,
                r.created_at,
                r.status,
                r.retired_at,
            ),
        )

    def retire(self, prefix: str, when: str) -> None:
        if not self.db.run(
            "UPDATE bin_ranges SET status = 'retired', retired_at = ?"
            " WHERE prefix = ? AND status = 'active'",
            (when, prefix),
        ):
            self.get(prefix)
            raise InvalidStateError(f"range {prefix} is retired already")

    def retired_keys(self) -> frozenset[tuple[str, str, int, int]]:
        return frozenset(
            (r[0], r[1], int(r[2]), int(r[3]))
            for r in self.db.all("SELECT scheme, prefix, cvn, version FROM retired_master_keys")
        )

    def retire_key(self, scheme: str, prefix: str, cvn: int, version: int, when: str) -> None:
        if (scheme, prefix, cvn, version) in self.retired_keys():
            raise InvalidStateError(
                f"master key version {version} of {scheme} {prefix} CVN {cvn} is retired already"
            )
        self.db.run(
            "INSERT INTO retired_master_keys (scheme, prefix, cvn, version, retired_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (scheme, prefix, cvn, version, when),
        )

    def get(self, prefix: str) -> BinRange:
        row = self.db.one(f"SELECT {_BIN_COLUMNS} FROM bin_ranges WHERE prefix = ?", (prefix,))
        if row is None:
            raise NotFoundError(f"no BIN range {prefix!r}")
        return _bin(row)

    def list(self) -> list[BinRange]:
        return [
            _bin(r) for r in self.db.all(f"SELECT {_BIN_COLUMNS} FROM bin_ranges ORDER BY prefix")
        ]


# -- cards -------------------------------------------------------------------------------

_CARD_COLUMNS: Final = (
    "id, account_id, scheme, bin, pan_masked, pan_last4, pan_hash, pan_sealed, psn, expiry,"
    " cvn, par, status, origin, created_at, flag, key_version"
)


def _card(row: tuple[Any, ...]) -> Card:
    return Card(
        id=row[0],
        account_id=row[1],
        scheme=row[2],
        bin=row[3],
        pan_masked=row[4],
        pan_last4=row[5],
        pan_hash=_bytes(row[6]),
        pan_sealed=_bytes(row[7]),
        psn=row[8],
        expiry=date.fromisoformat(row[9]),
        cvn=int(row[10]),
        par=row[11],
        status=CardStatus(row[12]),
        origin=CardOrigin(row[13]),
        created_at=row[14],
        flag=row[15],
        key_version=int(row[16]),
    )


class SqlCards:
    """:class:`~issuer.ledger.repository.CardRepository` in SQL."""

    def __init__(self, db: SqlConnection) -> None:
        self.db = db

    def add(self, card: Card) -> None:
        c = card
        self.db.run(
            f"INSERT INTO cards ({_CARD_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                c.id,
                c.account_id,
                c.scheme,
                c.bin,
                c.pan_masked,
                c.pan_last4,
                c.pan_hash,
                c.pan_sealed,
                c.psn,
                c.expiry.isoformat(),
                c.cvn,
                c.par,
                c.status.value,
                c.origin.value,
                c.created_at,
                c.flag,
                c.key_version,
            ),
        )

    def get(self, card_id: str, *, for_update: bool = False) -> Card:
        lock = self.db.dialect.for_update if for_update else ""
        row = self.db.one(f"SELECT {_CARD_COLUMNS} FROM cards WHERE id = ?{lock}", (card_id,))
        if row is None:
            raise NotFoundError(f"no card {card_id!r}")
        return _card(row)

    def find_by_pan_hash(self, pan_hash: bytes) -> Card | None:
        row = self.db.one(f"SELECT {_CARD_COLUMNS} FROM cards WHERE pan_hash = ?", (pan_hash,))
        return _card(row) if row else None

    def list(
        self, *, account_id: str | None = None, status: CardStatus | None = None
    ) -> list[Card]:
        where, params = _filters(account_id=account_id, status=status and status.value)
        rows = self.db.all(
            f"SELECT {_CARD_COLUMNS} FROM cards{where} ORDER BY created_at, id", params
        )
        return [_card(r) for r in rows]

    def set_status(self, card_id: str, status: CardStatus) -> None:
        if not self.db.run("UPDATE cards SET status = ? WHERE id = ?", (status.value, card_id)):
            raise NotFoundError(f"no card {card_id!r}")

    def set_flag(self, card_id: str, flag: str | None) -> None:
        if not self.db.run("UPDATE cards SET flag = ? WHERE id = ?", (flag, card_id)):
            raise NotFoundError(f"no card {card_id!r}")


def _filters(**conditions: Any) -> tuple[str, tuple[Any, ...]]:
    parts = [f"{name} = ?" for name, value in conditions.items() if value is not None]
    params = tuple(value for value in conditions.values() if value is not None)
    return (" WHERE " + " AND ".join(parts) if parts else ""), params


# -- tokens ------------------------------------------------------------------------------

_TOKEN_COLUMNS: Final = (
    "id, card_id, account_id, scheme, bin, token_masked, token_last4, token_hash,"
    " token_sealed, psn, expiry, cvn, par, requestor_id, status, contactless_only,"
    " allowed_mccs, blocked_mccs, created_at, flag, key_version, channels"
)


def _token(row: tuple[Any, ...]) -> Token:
    return Token(
        id=row[0],
        card_id=row[1],
        account_id=row[2],
        scheme=row[3],
        bin=row[4],
        token_masked=row[5],
        token_last4=row[6],
        token_hash=_bytes(row[7]),
        token_sealed=_bytes(row[8]),
        psn=row[9],
        expiry=date.fromisoformat(row[10]),
        cvn=int(row[11]),
        par=row[12],
        requestor_id=row[13],
        status=TokenStatus(row[14]),
        contactless_only=bool(row[15]),
        allowed_mccs=_mccs(row[16]),
        blocked_mccs=_mccs(row[17]),
        created_at=row[18],
        flag=row[19],
        key_version=int(row[20]),
        channels=_channels(row[21]),
    )


class SqlTokens:
    """:class:`~issuer.ledger.repository.TokenRepository` in SQL."""

    def __init__(self, db: SqlConnection) -> None:
        self.db = db

    def add(self, token: Token) -> None:
        t = token
        self.db.run(
            f"INSERT INTO tokens ({_TOKEN_COLUMNS}) VALUES"
            " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                t.id,
                t.card_id,
                t.account_id,
                t.scheme,
                t.bin,
                t.token_masked,
                t.token_last4,
                t.token_hash,
                t.token_sealed,
                t.psn,
                t.expiry.isoformat(),
                t.cvn,
                t.par,
                t.requestor_id,
                t.status.value,
                int(t.contactless_only),
                _mcc_text(t.allowed_mccs),
                _mcc_text(t.blocked_mccs),
                t.created_at,
                t.flag,
                t.key_version,
                channels_text(t.channels),
            ),
        )

    def get(self, token_id: str, *, for_update: bool = False) -> Token:
        lock = self.db.dialect.for_update if for_update else ""
        row = self.db.one(f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE id = ?{lock}", (token_id,))
        if row is None:
            raise NotFoundError(f"no token {token_id!r}")
        return _token(row)

    def find_by_token_hash(self, token_hash: bytes) -> Token | None:
        row = self.db.one(
            f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE token_hash = ?", (token_hash,)
        )
        return _token(row) if row else None

    def list(
        self,
        *,
        card_id: str | None = None,
        account_id: str | None = None,
        status: TokenStatus | None = None,
    ) -> list[Token]:
        where, params = _filters(
            card_id=card_id, account_id=account_id, status=status and status.value
        )
        rows = self.db.all(
            f"SELECT {_TOKEN_COLUMNS} FROM tokens{where} ORDER BY created_at, id", params
        )
        return [_token(r) for r in rows]

    def set_status(self, token_id: str, status: TokenStatus) -> None:
        if not self.db.run("UPDATE tokens SET status = ? WHERE id = ?", (status.value, token_id)):
            raise NotFoundError(f"no token {token_id!r}")

    def set_flag(self, token_id: str, flag: str | None) -> None:
        if not self.db.run("UPDATE tokens SET flag = ? WHERE id = ?", (flag, token_id)):
            raise NotFoundError(f"no token {token_id!r}")


# -- terminals ---------------------------------------------------------------------------

_TERMINAL_COLUMNS: Final = (
    "id, merchant, mcc, credential_hash, status, created_at, country, city, currency"
)


def _terminal(row: tuple[Any, ...]) -> Terminal:
    return Terminal(
        row[0], row[1], row[2], row[3], TerminalStatus(row[4]), row[5], row[6], row[7], row[8]
    )


class SqlTerminals:
    """:class:`~issuer.ledger.repository.TerminalRepository` in SQL."""

    def __init__(self, db: SqlConnection) -> None:
        self.db = db

    def add(self, terminal: Terminal) -> None:
        t = terminal
        values = (
            t.id, t.merchant, t.mcc, t.credential_hash, t.status.value, t.created_at, t.country,
            t.city, t.currency,
        )  # fmt: skip
        self.db.run(
            f"INSERT INTO terminals ({_TERMINAL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            values,
        )

    def get(self, terminal_id: str) -> Terminal:
        row = self.db.one(f"SELECT {_TERMINAL_COLUMNS} FROM terminals WHERE id = ?", (terminal_id,))
        if row is None:
            raise NotFoundError(f"no terminal {terminal_id!r}")
        return _terminal(row)

    def list(self) -> list[Terminal]:
        rows = self.db.all(f"SELECT {_TERMINAL_COLUMNS} FROM terminals ORDER BY created_at, id")
        return [_terminal(r) for r in rows]

    def set_status(self, terminal_id: str, status: TerminalStatus) -> None:
        if not self.db.run(
            "UPDATE terminals SET status = ? WHERE id = ?", (status.value, terminal_id)
        ):
            raise NotFoundError(f"no terminal {terminal_id!r}")


# -- terminal certificates -------------------------------------------------------------

_CERTIFICATE_COLUMNS: Final = (
    "serial, terminal_id, fingerprint, not_before, not_after, status, created_at, revoked_at"
)


def _certificate(row: tuple[Any, ...]) -> TerminalCertificate:
    return TerminalCertificate(
        row[0], row[1], row[2], row[3], row[4], CertificateStatus(row[5]), row[6], row[7]
    )


class SqlCertificates:
    """:class:`~issuer.ledger.repository.CertificateRepository` in SQL."""

    def __init__(self, db: SqlConnection) -> None:
        self.db = db

    def add(self, certificate: TerminalCertificate) -> None:
        c = certificate
        self.db.run(
            f"INSERT INTO terminal_certificates ({_CERTIFICATE_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (c.serial, c.terminal_id, c.fingerprint, c.not_before, c.not_after,
             c.status.value, c.created_at, c.revoked_at),
        )  # fmt: skip

    def get(self, serial: str) -> TerminalCertificate | None:
        row = self.db.one(
            f"SELECT {_CERTIFICATE_COLUMNS} FROM terminal_certificates WHERE serial = ?",
            (serial,),
        )
        return None if row is None else _certificate(row)

    def list(self, terminal_id: str) -> list[TerminalCertificate]:
        rows = self.db.all(
            f"SELECT {_CERTIFICATE_COLUMNS} FROM terminal_certificates WHERE terminal_id = ?"
            " ORDER BY created_at, serial",
            (terminal_id,),
        )
        return [_certificate(r) for r in rows]

    def revoke(self, serial: str, at: str) -> bool:
        return bool(
            self.db.run(
                "UPDATE terminal_certificates SET status = 'revoked', revoked_at = ?"
                " WHERE serial = ? AND status = 'active'",
                (at, serial),
            )
        )

    def revoke_terminal(self, terminal_id: str, at: str) -> int:
        return self.db.run(
            "UPDATE terminal_certificates SET status = 'revoked', revoked_at = ?"
            " WHERE terminal_id = ? AND status = 'active'",
            (at, terminal_id),
        )


# -- authorisations ----------------------------------------------------------------------

_AUTH_COLUMNS: Final = (
    "id, kind, terminal_id, request_id, request_hash, amount, currency, approved,"
    " response_code, status, created_at, updated_at, card_id, token_id, account_id,"
    " parent_id, mcc, decline_reason, atc, held_amount, captured_amount, released_amount,"
    " expires_at, response, channel"
)


def _auth(row: tuple[Any, ...]) -> Authorisation:
    return Authorisation(
        id=row[0],
        kind=AuthorisationKind(row[1]),
        terminal_id=row[2],
        request_id=row[3],
        request_hash=row[4],
        amount=int(row[5]),
        currency=row[6],
        approved=bool(row[7]),
        response_code=row[8],
        status=AuthorisationStatus(row[9]),
        created_at=row[10],
        updated_at=row[11],
        card_id=row[12],
        token_id=row[13],
        account_id=row[14],
        parent_id=row[15],
        mcc=row[16],
        decline_reason=row[17],
        atc=None if row[18] is None else int(row[18]),
        held_amount=int(row[19]),
        captured_amount=int(row[20]),
        released_amount=int(row[21]),
        expires_at=row[22],
        response=row[23],
        channel=row[24],
    )


@functools.lru_cache(maxsize=128)
def _auth_insert(count: int, strict: bool = False) -> str:
    """The INSERT of ``count`` authorisation records in one statement (one whose
    terminal sent its request id already is skipped); it returns the ids inserted.
    ``strict``: such a record fails the statement instead (a unique violation)."""
    row = "(" + ", ".join("?" for _ in range(25)) + ")"
    sql = f"INSERT INTO authorisations ({_AUTH_COLUMNS}) VALUES {', '.join([row] * count)}"
    return sql if strict else sql + " ON CONFLICT (terminal_id, request_id) DO NOTHING RETURNING id"


def add_statement(
    auths: Sequence[Authorisation], *, strict: bool = False
) -> tuple[str, list[object]]:
    """The statement of :meth:`SqlAuthorisations.add` for ``auths`` (its rows: the
    ids inserted; ``strict``: :func:`_auth_insert`'s)."""
    params: list[object] = []
    for auth in auths:
        params += _auth_values(auth)
    return _auth_insert(len(auths), strict), params


def _auth_values(a: Authorisation) -> tuple[object, ...]:
    return (
        a.id,
        a.kind.value,
        a.terminal_id,
        a.request_id,
        a.request_hash,
        a.amount,
        a.currency,
        int(a.approved),
        a.response_code,
        a.status.value,
        a.created_at,
        a.updated_at,
        a.card_id,
        a.token_id,
        a.account_id,
        a.parent_id,
        a.mcc,
        a.decline_reason,
        a.atc,
        a.held_amount,
        a.captured_amount,
        a.released_amount,
        a.expires_at,
        a.response,
        a.channel,
    )


class SqlAuthorisations:
    """:class:`~issuer.ledger.repository.AuthorisationRepository` in SQL."""

    def __init__(self, db: SqlConnection) -> None:
        self.db = db

    def add(self, auth: Authorisation) -> bool:
        return bool(self.db.all(*add_statement([auth])))

    def _event(
        self, transaction_id: str, kind: str, amount: int, request_id: str | None, when: str
    ) -> None:
        self.db.run(
            "INSERT INTO authorisation_events (transaction_id, kind, amount, request_id,"
            " created_at) VALUES (?, ?, ?, ?, ?)",
            (transaction_id, kind, amount, request_id, when),
        )

    def get(self, transaction_id: str, *, for_update: bool = False) -> Authorisation:
        lock = self.db.dialect.for_update if for_update else ""
        row = self.db.one(
            f"SELECT {_AUTH_COLUMNS} FROM authorisations WHERE id = ?{lock}", (transaction_id,)
        )
        if row is None:
            raise NotFoundError(f"no transaction {transaction_id!r}")
        return _auth(row)

    def find_by_request(self, terminal_id: str, request_id: str) -> Authorisation | None:
        row = self.db.one(
            f"SELECT {_AUTH_COLUMNS} FROM authorisations WHERE terminal_id = ? AND request_id = ?",
            (terminal_id, request_id),
        )
        return _auth(row) if row else None

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
        where, params = _filters(
            card_id=card_id,
            account_id=account_id,
            terminal_id=terminal_id,
            token_id=token_id,
            parent_id=parent_id,
            status=status and status.value,
        )
        rows = self.db.all(
            f"SELECT {_AUTH_COLUMNS} FROM authorisations{where}"
            " ORDER BY created_at DESC, id DESC LIMIT ?",
            (*params, limit),
        )
        return [_auth(r) for r in rows]

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
        now = utc_now()
        changed = self.db.run(
            "UPDATE authorisations SET status = ?,"
            " captured_amount = COALESCE(?, captured_amount),"
            " released_amount = COALESCE(?, released_amount), updated_at = ?"
            " WHERE id = ? AND status = ?",
            (status.value, captured_amount, released_amount, now, transaction_id, expected.value),
        )
        if not changed:
            return False
        self._event(transaction_id, event, amount, request_id, now)
        return True

    def events(self, transaction_id: str) -> builtins.list[AuthorisationEvent]:
        rows = self.db.all(
            "SELECT transaction_id, kind, amount, created_at, request_id"
            " FROM authorisation_events WHERE transaction_id = ? ORDER BY seq",
            (transaction_id,),
        )
        return [AuthorisationEvent(r[0], r[1], int(r[2]), r[3], r[4]) for r in rows]

    def pending_expired(self, now: str, *, limit: int = 100) -> builtins.list[Authorisation]:
        rows = self.db.all(
            f"SELECT {_AUTH_COLUMNS} FROM authorisations WHERE status = 'pending'"
            " AND expires_at IS NOT NULL AND expires_at < ? ORDER BY expires_at LIMIT ?",
            (now, limit),
        )
        return [_auth(r) for r in rows]

    def count_since(self, *, card_id: str | None, token_id: str | None, since: str) -> int:
        column, value = ("token_id", token_id) if token_id is not None else ("card_id", card_id)
        row = self.db.one(
            f"SELECT COUNT(*) FROM authorisations WHERE {column} = ? AND approved = 1"
            " AND kind = 'authorisation' AND created_at >= ?",
            (value, since),
        )
        return int(row[0]) if row else 0


# -- journals ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=128)
def _entries_insert(count: int) -> str:
    """The INSERT of ``count`` entries in one statement."""
    values = ", ".join("(?, ?, ?, ?)" for _ in range(count))
    return f"INSERT INTO entries (journal_id, account_id, book, amount) VALUES {values}"


@functools.lru_cache(maxsize=64)
def _journals_insert(count: int) -> str:
    """The INSERT of ``count`` journals in one statement."""
    values = ", ".join("(?, ?, ?, ?, ?)" for _ in range(count))
    return f"INSERT INTO journals (id, kind, transaction_id, memo, created_at) VALUES {values}"


def journal_statements(journals: Sequence[Journal]) -> list[tuple[str, Sequence[Any]]]:
    """The inserts of journals and their entries, two statements (:meth:`SqlJournals.post`
    without its balances); :class:`IntegrityError` if a book of one does not sum to
    zero."""
    heads: list[Any] = []
    rows: list[Any] = []
    count = 0
    for journal in journals:
        if not journal.entries:
            raise IntegrityError("a journal needs entries")
        posted = held = 0
        for e in journal.entries:
            if e.book is Book.POSTED:
                posted += e.amount
            else:
                held += e.amount
            if e.amount:
                count += 1
                rows += (journal.id, e.account_id, e.book.value, e.amount)
        for book, total in ((Book.POSTED, posted), (Book.HELD, held)):
            if total:
                raise IntegrityError(f"journal {journal.id}: the {book} book sums to {total}")
        heads += (journal.id, journal.kind.value, journal.transaction_id, journal.memo,
                  journal.created_at)  # fmt: skip
    return [(_journals_insert(len(journals)), heads), (_entries_insert(count), rows)]


class SqlJournals:
    """:class:`~issuer.ledger.repository.JournalRepository` in SQL."""

    def __init__(self, db: SqlConnection) -> None:
        self.db = db

    def post(self, journal: Journal, *, apply_balances: bool = True) -> None:
        statements = journal_statements([journal])
        for sql, params in statements:
            self.db.run(sql, params)
        if not apply_balances:
            return
        entries = [e for e in journal.entries if e.amount]
        # Running balances of cardholder accounts, locked in id order so that two
        # journals never wait on each other in a cycle. System accounts have none.
        totals: dict[tuple[str, Book], int] = {}
        for e in entries:
            if not e.account_id.startswith(SYSTEM_PREFIX):
                totals[(e.account_id, e.book)] = totals.get((e.account_id, e.book), 0) + e.amount
        for (account_id, book), amount in sorted(
            totals.items(), key=lambda kv: (kv[0][0], kv[0][1].value)
        ):
            if not amount:
                continue
            column = "balance" if book is Book.POSTED else "held"
            if not self.db.run(
                f"UPDATE accounts SET {column} = {column} + ? WHERE id = ?", (amount, account_id)
            ):
                raise NotFoundError(f"no account {account_id!r}")

    def _journals(self, where: str, params: tuple[Any, ...], tail: str) -> list[Journal]:
        heads = self.db.all(
            f"SELECT j.id, j.kind, j.created_at, j.transaction_id, j.memo FROM journals j"
            f" {where} {tail}",
            params,
        )
        if not heads:
            return []
        ids = [h[0] for h in heads]
        marks = ", ".join("?" for _ in ids)
        lines: dict[str, list[Entry]] = {i: [] for i in ids}
        for jid, account, book, amount in self.db.all(
            f"SELECT journal_id, account_id, book, amount FROM entries"
            f" WHERE journal_id IN ({marks}) ORDER BY seq",
            tuple(ids),
        ):
            lines[jid].append(Entry(account, Book(book), int(amount)))
        return [
            Journal(h[0], JournalKind(h[1]), tuple(lines[h[0]]), h[2], h[3], h[4]) for h in heads
        ]

    def for_account(self, account_id: str, *, limit: int = 100) -> list[Journal]:
        return self._journals(
            "WHERE j.id IN (SELECT journal_id FROM entries WHERE account_id = ?)",
            (account_id, limit),
            "ORDER BY j.seq DESC LIMIT ?",
        )

    def for_transaction(self, transaction_id: str) -> list[Journal]:
        return self._journals("WHERE j.transaction_id = ?", (transaction_id,), "ORDER BY j.seq")

    def entries(self, account_id: str) -> list[Entry]:
        rows = self.db.all(
            "SELECT account_id, book, amount FROM entries WHERE account_id = ? ORDER BY seq",
            (account_id,),
        )
        return [Entry(r[0], Book(r[1]), int(r[2])) for r in rows]


# -- ATCs --------------------------------------------------------------------------------


#: The widest ATC window: the ATCs seen below the highest are bits of a BIGINT.
MAX_ATC_WINDOW: Final = 63

# One statement decides and records an ATC (EMV Book 2 §8.1: the ATC is an anti-replay
# counter). ``atc_state`` keeps per card application the highest ATC and ``seen``, a
# bitmap of the ATCs accepted at and below it (bit i: highest - i; a sliding window
# like IPsec's anti-replay window, RFC 4303 §3.4.3). The upsert creates or locks the
# row (an upsert that updates takes the row lock, like SELECT ... FOR UPDATE, until
# the commit: two transactions never both accept one ATC), and computes from the old
# row: an ATC above the highest and not a jump raises it and shifts the bitmap; one
# inside the window sets its bit; ``fresh`` says whether this ATC was accepted now.
# Parameters: instrument, ATC, time, then jump, window, window mask (see below).
_RAISE = (
    "excluded.highest_atc > atc_state.highest_atc"
    " AND excluded.highest_atc <= atc_state.highest_atc + ?"
)
_INSIDE = (
    "excluded.highest_atc <= atc_state.highest_atc"
    " AND excluded.highest_atc > atc_state.highest_atc - ?"
)
_BIT = "(CAST(1 AS BIGINT) << (atc_state.highest_atc - excluded.highest_atc))"
_ATC_UPSERT: Final = (
    "INSERT INTO atc_state (instrument_id, highest_atc, updated_at, seen, fresh)"
    " VALUES (?, ?, ?, 1, 1) ON CONFLICT (instrument_id) DO UPDATE SET"
    f" seen = CASE WHEN {_RAISE} THEN CASE"
    " WHEN excluded.highest_atc - atc_state.highest_atc >= ? THEN 1"
    " ELSE ((atc_state.seen << (excluded.highest_atc - atc_state.highest_atc)) | 1) & ?"
    f" END WHEN {_INSIDE} THEN atc_state.seen | {_BIT} ELSE atc_state.seen END,"
    f" fresh = CASE WHEN {_RAISE} THEN 1"
    f" WHEN {_INSIDE} AND atc_state.seen & {_BIT} = 0 THEN 1 ELSE 0 END,"
    f" highest_atc = CASE WHEN {_RAISE} THEN excluded.highest_atc"
    " ELSE atc_state.highest_atc END,"
    f" updated_at = CASE WHEN {_RAISE} THEN excluded.updated_at"
    " ELSE atc_state.updated_at END"
    " RETURNING highest_atc, fresh, instrument_id"
)


@functools.lru_cache(maxsize=64)
def _atc_upsert(count: int) -> str:
    """:data:`_ATC_UPSERT` of ``count`` instruments (distinct) in one statement."""
    values = ", ".join("(?, ?, ?, 1, 1)" for _ in range(count))
    return _ATC_UPSERT.replace(" VALUES (?, ?, ?, 1, 1)", f" VALUES {values}", 1)


def atc_statement(
    checks: Sequence[tuple[str, int]], *, window: int, max_jump: int | None
) -> tuple[str, list[object]]:
    """The statement of :meth:`SqlAtcs.check_and_record` for ``(instrument, ATC)``
    checks of distinct instruments (its rows, one per check: :func:`atc_verdict`)."""
    if not 1 <= window <= MAX_ATC_WINDOW:
        raise ValueError(f"the ATC window is 1 to {MAX_ATC_WINDOW}")
    now = utc_now()
    params: list[object] = []
    for instrument_id, atc in checks:
        if not 0 <= atc <= 0xFFFF:
            raise ValueError("an ATC is 0 to 65535")
        params += (instrument_id, atc, now)
    jump = 0xFFFF if max_jump is None else max_jump
    mask = (1 << window) - 1
    params += (jump, window, mask, window,  # seen
               jump, window,  # fresh
               jump, jump)  # highest_atc, updated_at  # fmt: skip
    return _atc_upsert(len(checks)), params


def atc_verdict(
    row: tuple[Any, ...] | None, atc: int, *, window: int, max_jump: int | None
) -> AtcVerdict:
    """The verdict on ``atc`` from the row :func:`atc_statement` returned."""
    assert row is not None
    highest, fresh = int(row[0]), int(row[1])
    if fresh:
        return AtcVerdict.NEW
    if atc <= highest - window:
        return AtcVerdict.ROLLED_BACK
    if max_jump is not None and atc > highest + max_jump:
        return AtcVerdict.JUMPED
    return AtcVerdict.REPLAYED


class SqlAtcs:
    """:class:`~issuer.ledger.repository.AtcRepository` in SQL."""

    def __init__(self, db: SqlConnection) -> None:
        self.db = db

    def check_and_record(
        self,
        instrument_id: str,
        atc: int,
        *,
        window: int,
        max_jump: int | None = None,
        transaction_id: str | None = None,
    ) -> AtcVerdict:
        return atc_verdict(
            self.db.one(*atc_statement([(instrument_id, atc)], window=window, max_jump=max_jump)),
            atc, window=window, max_jump=max_jump,
        )  # fmt: skip

    def highest(self, instrument_id: str) -> int | None:
        row = self.db.one(
            "SELECT highest_atc FROM atc_state WHERE instrument_id = ?", (instrument_id,)
        )
        return None if row is None or int(row[0]) < 0 else int(row[0])


# -- the unit of work --------------------------------------------------------------------


class SqlRepositories:
    """The repositories over one :class:`SqlConnection`, made once per driver
    connection and shared by its units of work (one at a time)."""

    __slots__ = (
        "accounts", "atcs", "audit", "authorisations", "bins", "cards", "certificates",
        "controls", "db", "events", "increments", "journals", "operator_requests",
        "operators", "pages", "programs", "terminals", "tokens", "webhooks",
    )  # fmt: skip

    def __init__(self, db: SqlConnection) -> None:
        self.db = db
        self.accounts = SqlAccounts(db)
        self.bins = SqlBinRanges(db)
        self.cards = SqlCards(db)
        self.tokens = SqlTokens(db)
        self.terminals = SqlTerminals(db)
        self.certificates = SqlCertificates(db)
        self.authorisations = SqlAuthorisations(db)
        self.journals = SqlJournals(db)
        self.atcs = SqlAtcs(db)
        self.operators = SqlOperators(db)
        self.operator_requests = SqlOperatorRequests(db)
        self.audit = SqlAuditLog(db)
        self.pages = SqlPages(db)
        self.events = SqlEvents(db)
        self.webhooks = SqlWebhooks(db)
        self.controls = SqlSpendingControls(db)
        self.programs = SqlPrograms(db)
        self.increments = SqlIncrements(db)


class SqlUnitOfWork(UnitOfWork):
    """A unit of work over one :class:`SqlConnection` in a transaction.

    ``finish(commit)`` ends the transaction and gives the connection back. ``repos``
    are the connection's :class:`SqlRepositories` if made already.
    """

    def __init__(
        self,
        db: SqlConnection,
        finish: Callable[[bool], None],
        repos: SqlRepositories | None = None,
    ) -> None:
        if repos is None or repos.db is not db:
            repos = SqlRepositories(db)
        self.db = db
        self._finish = finish
        self._done = False
        self.accounts = repos.accounts
        self.bins = repos.bins
        self.cards = repos.cards
        self.tokens = repos.tokens
        self.terminals = repos.terminals
        self.certificates = repos.certificates
        self.authorisations = repos.authorisations
        self.journals = repos.journals
        self.atcs = repos.atcs
        self.operators = repos.operators
        self.operator_requests = repos.operator_requests
        self.audit = repos.audit
        self.pages = repos.pages
        self.events: SqlEvents = repos.events
        self.webhooks: SqlWebhooks = repos.webhooks
        self.events.discard()  # left by a unit of work of this connection that failed
        self.controls = repos.controls
        self.programs = repos.programs
        self.increments = repos.increments

    def check_and_reserve(
        self, items: Sequence[Reservation]
    ) -> list[tuple[AtcVerdict | None, bool]]:
        """:meth:`UnitOfWork.check_and_reserve` in one :meth:`SqlConnection.each`: each
        reservation whose ATC is checked holds only if its ATC was accepted (the
        ``fresh`` mark its ATC statement left, just before it)."""
        checked = [r for r in items if r.atc is not None]
        if len({(r.window, r.max_jump) for r in checked}) > 1:
            return super().check_and_reserve(items)  # one ATC statement per window
        statements: list[tuple[str, Sequence[Any]]] = []
        if checked:
            statements.append(
                atc_statement(
                    [(r.instrument_id, r.atc) for r in checked if r.atc is not None],
                    window=checked[0].window, max_jump=checked[0].max_jump,
                )
            )  # fmt: skip
        for r in items:
            if r.amount is not None:
                statements.append(
                    reserve_statement(
                        r.account_id, r.amount, card_id=r.card_id, token_id=r.token_id,
                        since=r.since, limit=r.limit,
                        fresh_atc_of=r.instrument_id if r.atc is not None else None,
                    )
                )  # fmt: skip
        done = iter(self.db.each(statements))
        atcs = {row[2]: row for row in next(done).rows} if checked else {}
        out: list[tuple[AtcVerdict | None, bool]] = []
        for r in items:
            verdict = None
            if r.atc is not None:
                row = atcs.get(r.instrument_id)
                verdict = atc_verdict(row, r.atc, window=r.window, max_jump=r.max_jump)
            reserved = bool(next(done).rowcount) if r.amount is not None else False
            out.append((verdict, reserved))
        return out

    def record_many(
        self, records: Sequence[Authorisation], holds: Sequence[Journal], *, last: bool = False
    ) -> list[bool]:
        """:meth:`UnitOfWork.record_many` in one :meth:`SqlConnection.each` of three
        statements (the records, the journals, their entries). A hold of a record not
        added fails its journal's reference to it: the caller's unit of work fails (a
        batch of group commit then runs one by one). ``last`` on a dialect that
        pipelines: the three are sent with the next statement (:meth:`SqlConnection.later`:
        the commit's round trip), the records' insert strict (a request id taken fails
        the transaction there)."""
        deferred = last and self.db.dialect.pipelines
        statements: list[tuple[str, Sequence[Any]]] = []
        if records:
            statements.append(add_statement(records, strict=deferred))
        if holds:
            statements += journal_statements(holds)
        if deferred:
            for sql, params in statements:
                self.db.later(sql, params)
            return [True] * len(records)
        done = self.db.each(statements)
        added = {row[0] for row in done[0].rows} if records else set()
        return [record.id in added for record in records]

    def commit(self) -> None:
        if self._done:
            raise LedgerError("this unit of work has ended")
        try:
            self.events.flush()  # the outbox's queued events, in the transaction
        except BaseException:
            self.rollback()
            raise
        self._done = True
        try:
            self._finish(True)
        except Exception as exc:
            if self.db.dialect.is_driver_error(exc):
                raise self.db._translate(exc) from None
            raise

    def rollback(self) -> None:
        self.events.discard()
        if not self._done:
            self._done = True
            self._finish(False)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.rollback()


def check_ledger(db: SqlConnection) -> list[Discrepancy]:
    """The invariants of :meth:`issuer.ledger.repository.Ledger.check`, in SQL."""
    out: list[Discrepancy] = []
    rows = db.all(
        "SELECT a.id, a.balance, a.held,"
        " COALESCE(SUM(CASE WHEN e.book = 'posted' THEN e.amount ELSE 0 END), 0),"
        " COALESCE(SUM(CASE WHEN e.book = 'held' THEN e.amount ELSE 0 END), 0)"
        " FROM accounts a LEFT JOIN entries e ON e.account_id = a.id"
        " WHERE a.kind <> 'system'"
        " GROUP BY a.id, a.balance, a.held ORDER BY a.id"
    )
    for account, balance, held, posted_sum, held_sum in rows:
        if int(balance) != int(posted_sum):
            out.append(Discrepancy("balance of", account, int(posted_sum), int(balance)))
        if int(held) != int(held_sum):
            out.append(Discrepancy("held amount of", account, int(held_sum), int(held)))
    for book, total in db.all(
        "SELECT book, SUM(amount) FROM entries GROUP BY book HAVING SUM(amount) <> 0"
    ):
        out.append(Discrepancy(f"sum of all {book} entries", "ledger", 0, int(total)))
    for journal, book, total in db.all(
        "SELECT journal_id, book, SUM(amount) FROM entries GROUP BY journal_id, book"
        " HAVING SUM(amount) <> 0 ORDER BY journal_id"
    ):
        out.append(Discrepancy(f"{book} book of journal", journal, 0, int(total)))
    for txn, status, held_amount, released, outstanding in db.all(
        "SELECT t.id, t.status, t.held_amount, t.released_amount,"
        " COALESCE(SUM(e.amount), 0) FROM authorisations t"
        " LEFT JOIN journals j ON j.transaction_id = t.id"
        " LEFT JOIN entries e ON e.journal_id = j.id AND e.book = 'held'"
        " AND e.account_id = t.account_id"
        " WHERE t.kind = 'authorisation'"
        " GROUP BY t.id, t.status, t.held_amount, t.released_amount ORDER BY t.id"
    ):
        expected = int(held_amount) - int(released) if status == "pending" else 0
        if int(outstanding) != expected:
            out.append(Discrepancy("hold of transaction", txn, expected, int(outstanding)))
    return out
