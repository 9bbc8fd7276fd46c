# ruff: noqa: S608 - statements are assembled from module constants only, never input
"""The ledger's side of QR code payments (schema migration 10), in SQL: phone wallets,
sales of dynamic merchant-presented codes, a terminal's city and currency, a token's
channels.

:func:`qr_tables` gives these repositories over the connection of a unit of work
(:class:`~issuer.ledger.sql.SqlUnitOfWork`, the only kind of ledger there is), in its
transaction. A sale moves only forward: ``open`` -> ``paying`` (claimed by one
payment request) -> ``paid``, or back to ``open`` when that payment was declined;
``open`` -> ``expired`` or ``cancelled``. Each move is one conditional UPDATE, so two
payments racing for one sale (two workers, two databases connections) cannot both
claim it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from issuer.errors import LedgerError, NotFoundError
from issuer.ledger.sql import SqlConnection, SqlUnitOfWork, channels_text
from issuer.model.entities import QrSale, QrSaleStatus, TerminalStatus, Wallet, utc_now

if TYPE_CHECKING:
    from issuer.ledger.repository import UnitOfWork

__all__ = ["QrTables", "SqlQrSales", "SqlWallets", "qr_tables"]

_WALLET_COLUMNS: Final = "id, name, credential_hash, status, created_at"
_SALE_COLUMNS: Final = (
    "terminal_id, bill, amount, currency, status, created_at, updated_at, expires_at, claim,"
    " transaction_id, declined"
)


def _wallet(row: tuple[Any, ...]) -> Wallet:
    return Wallet(row[0], row[1], row[2], TerminalStatus(row[3]), row[4])


def _sale(row: tuple[Any, ...]) -> QrSale:
    return QrSale(
        terminal_id=row[0],
        bill=row[1],
        amount=int(row[2]),
        currency=row[3],
        status=QrSaleStatus(row[4]),
        created_at=row[5],
        updated_at=row[6],
        expires_at=row[7],
        claim=row[8],
        transaction_id=row[9],
        declined=tuple(i for i in str(row[10]).split(",") if i),
    )


class SqlWallets:
    """Phone wallets by id."""

    def __init__(self, db: SqlConnection) -> None:
        self.db = db

    def add(self, wallet: Wallet) -> None:
        w = wallet
        self.db.run(
            f"INSERT INTO wallets ({_WALLET_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
            (w.id, w.name, w.credential_hash, w.status.value, w.created_at),
        )

    def get(self, wallet_id: str) -> Wallet:
        row = self.db.one(f"SELECT {_WALLET_COLUMNS} FROM wallets WHERE id = ?", (wallet_id,))
        if row is None:
            raise NotFoundError(f"no wallet {wallet_id!r}")
        return _wallet(row)

    def list(self) -> list[Wallet]:
        rows = self.db.all(f"SELECT {_WALLET_COLUMNS} FROM wallets ORDER BY created_at, id")
        return [_wallet(r) for r in rows]

    def revoke(self, wallet_id: str) -> None:
        if not self.db.run("UPDATE wallets SET status = 'revoked' WHERE id = ?", (wallet_id,)):
            raise NotFoundError(f"no wallet {wallet_id!r}")


class SqlQrSales:
    """Sales of dynamic merchant-presented codes by (terminal, bill number)."""

    def __init__(self, db: SqlConnection) -> None:
        self.db = db

    def add(self, sale: QrSale) -> bool:
        """Record a new sale; ``False`` if the terminal has one with that bill."""
        s = sale
        values = (
            s.terminal_id, s.bill, s.amount, s.currency, s.status.value, s.created_at,
            s.updated_at, s.expires_at, s.claim, s.transaction_id, ",".join(s.declined),
        )  # fmt: skip
        return bool(
            self.db.run(
                f"INSERT INTO qr_sales ({_SALE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (terminal_id, bill) DO NOTHING",
                values,
            )
        )

    def get(self, terminal_id: str, bill: str, *, for_update: bool = False) -> QrSale | None:
        lock = self.db.dialect.for_update if for_update else ""
        row = self.db.one(
            f"SELECT {_SALE_COLUMNS} FROM qr_sales WHERE terminal_id = ? AND bill = ?{lock}",
            (terminal_id, bill),
        )
        return None if row is None else _sale(row)

    def _move(self, sale: QrSale, sets: str, params: tuple[Any, ...], *expected: str) -> bool:
        marks = ", ".join("?" for _ in expected)
        return bool(
            self.db.run(
                f"UPDATE qr_sales SET {sets}, updated_at = ?"
                f" WHERE terminal_id = ? AND bill = ? AND status IN ({marks})",
                (*params, utc_now(), sale.terminal_id, sale.bill, *expected),
            )
        )

    def claim(self, sale: QrSale, request_id: str) -> bool:
        """``open`` -> ``paying`` for the payment ``request_id``; whether it moved."""
        return self._move(sale, "status = 'paying', claim = ?", (request_id,), "open")

    def paid(self, sale: QrSale, transaction_id: str) -> bool:
        """``paying`` -> ``paid`` by the approved authorisation ``transaction_id``."""
        return self._move(sale, "status = 'paid', transaction_id = ?", (transaction_id,), "paying")

    def reopen(self, sale: QrSale) -> bool:
        """``paying`` -> ``open``: the claiming payment was declined or failed."""
        return self._move(sale, "status = 'open', claim = NULL", (), "paying")

    def note_declined(self, sale: QrSale, transaction_id: str) -> None:
        """List the declined authorisation ``transaction_id`` among the sale's attempts."""
        self.db.run(
            "UPDATE qr_sales SET declined = ?, updated_at = ? WHERE terminal_id = ? AND bill = ?",
            (",".join((*sale.declined, transaction_id)), utc_now(), sale.terminal_id, sale.bill),
        )

    def end(self, sale: QrSale, status: QrSaleStatus) -> bool:
        """``open`` -> ``expired`` or ``cancelled``; whether it moved."""
        if status not in (QrSaleStatus.EXPIRED, QrSaleStatus.CANCELLED):
            raise LedgerError("a sale ends expired or cancelled")
        return self._move(sale, "status = ?", (status.value,), "open")


class QrTables:
    """The QR repositories of one unit of work, and the two columns of migration 10
    on older tables (a terminal's city and currency, a token's channels)."""

    def __init__(self, db: SqlConnection) -> None:
        self.db = db
        self.wallets = SqlWallets(db)
        self.sales = SqlQrSales(db)

    def set_terminal_place(self, terminal_id: str, city: str | None, currency: str | None) -> None:
        """Record a terminal's city and currency (``None`` keeps the recorded one)."""
        if not self.db.run(
            "UPDATE terminals SET city = COALESCE(?, city), currency = COALESCE(?, currency)"
            " WHERE id = ?",
            (city, currency, terminal_id),
        ):
            raise NotFoundError(f"no terminal {terminal_id!r}")

    def set_token_channels(self, token_id: str, channels: tuple[str, ...] | None) -> None:
        """Restrict a token to ``channels`` (``None``: every channel)."""
        if not self.db.run(
            "UPDATE tokens SET channels = ? WHERE id = ?", (channels_text(channels), token_id)
        ):
            raise NotFoundError(f"no token {token_id!r}")


def qr_tables(uow: UnitOfWork) -> QrTables:
    """The QR repositories in ``uow``'s transaction."""
    if not isinstance(uow, SqlUnitOfWork):
        raise LedgerError("QR payments need an SQL ledger")
    return QrTables(uow.db)
