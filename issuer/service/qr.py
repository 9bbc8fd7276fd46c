"""The QR code routes of the authorisation service (:mod:`issuer.domain.qr`), without
transport: what :class:`~issuer.service.api.Api` hands them and what they answer
(contract messages, :mod:`emvwire.contract`).

- A terminal opens the sale of the dynamic code it shows (``POST /v1/qr/sales``: the
  answer carries the code's text), reads it (``GET /v1/qr/sales/{bill}``) and cancels
  it (``.../cancel``). With ``?wait=N`` (at most :data:`MAX_WAIT` s) the read is a
  **long poll**: answered as soon as the sale is no longer open (paid, expired,
  cancelled, or a payment of it was declined), or after N seconds with it open.
  A payment decided in this process wakes its waiters at once; a payment decided by
  another worker (or another service on the same PostgreSQL) is seen within
  :data:`POLL` seconds, as each waiter reads the sale again that often.
- A phone wallet (``Authorization: Bearer <wallet id>:<credential>``, and over mutual
  TLS a client certificate naming ``urn:tapstack:wallet:<id>``, issued by ``issuer
  wallet add``) looks a merchant up (``GET /v1/qr/merchants/{id}``) and pays its code
  (``POST /v1/qr/payments``). A wallet's certificates are not recorded one by one: a
  revoked wallet's credential is refused, and with it every certificate of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Final

import msgspec

from emvwire import contract
from emvwire.country import country_by_numeric
from emvwire.pki import PkiError, identity_of
from issuer.domain.authorise import Authoriser
from issuer.domain.cache import ReadCache
from issuer.domain.credentials import CredentialCache
from issuer.domain.decisions import Issuing
from issuer.domain.qr import Paid, QrPayments, terminal_code, terminal_currency
from issuer.errors import IssuerError, NotFoundError
from issuer.model.entities import QrSale, QrSaleStatus, Terminal, TerminalStatus, Wallet

__all__ = ["MAX_WAIT", "POLL", "QrService", "SaleQuery", "WalletRefusedError"]

#: Longest long poll (seconds): under the HTTP server's and the clients' own limits.
MAX_WAIT: Final = 30.0
#: How often a waiting long poll reads its sale again (seconds).
POLL: Final = 0.25
_WALLET_ID: Final = re.compile(r"wlt_[a-z2-7]{16}")


class SaleQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The query of ``GET /v1/qr/sales/{bill}``."""

    wait: Annotated[
        float,
        msgspec.Meta(ge=0, le=MAX_WAIT, description="long poll: wait up to this many seconds"),
    ] = 0.0


class WalletRefusedError(IssuerError):
    """No wallet credential, an unknown or revoked wallet, a wrong credential, or a
    client certificate that does not name the wallet (401)."""


def _waiting(sale: QrSale) -> bool:
    return sale.status in (QrSaleStatus.OPEN, QrSaleStatus.PAYING)


class QrService:
    """The QR routes over an issuer (module docstring). ``require_certificate``: every
    wallet request comes with a client certificate naming it (mutual TLS)."""

    def __init__(
        self,
        issuer: Issuing,
        authoriser: Authoriser,
        credentials: CredentialCache,
        *,
        require_certificate: bool = False,
    ) -> None:
        self.payments = QrPayments(issuer, authoriser)
        self._cache: ReadCache = issuer.cache
        self._credentials = credentials
        self.require_certificate = require_certificate
        #: The events of the long polls under way, per sale (each made in its loop).
        self._waiters: dict[tuple[str, str], list[asyncio.Event]] = {}

    # -- wallets -----------------------------------------------------------------------

    def wallet(
        self, headers: Mapping[str, str], certificate: str | None, generation: int
    ) -> Wallet:
        """The wallet whose credential the request carries (module docstring), else
        :class:`WalletRefusedError`."""
        scheme, _, token = headers.get("authorization", "").partition(" ")
        wallet_id, sep, secret = token.strip().partition(":")
        if scheme.lower() != "bearer" or not sep or not _WALLET_ID.fullmatch(wallet_id):
            raise WalletRefusedError("a wallet credential is needed")
        key = ("wallet", wallet_id)
        wallet: Wallet | None = self._cache.get(key)
        if wallet is None:
            try:
                wallet = self.payments.wallet(wallet_id)
            except NotFoundError:
                raise WalletRefusedError("unknown wallet or wrong credential") from None
            self._cache.put(key, wallet, generation)
        if wallet.status is not TerminalStatus.ACTIVE or not self._credentials.verify(
            wallet.id, wallet.credential_hash, secret
        ):
            raise WalletRefusedError("unknown wallet or wrong credential")
        if self.require_certificate and not _names(certificate, wallet):
            raise WalletRefusedError("the client certificate does not prove this wallet")
        return wallet

    def merchant(self, merchant_id: str) -> contract.QrMerchant:
        """``GET /v1/qr/merchants/{id}``: the merchant as the issuer knows it."""
        terminal = self.payments.merchant(merchant_id)
        try:
            country = country_by_numeric(terminal.country).alpha2
        except ValueError:
            country = terminal.country
        return contract.QrMerchant(
            id=terminal.id,
            name=terminal.merchant,
            city=terminal.city,
            mcc=terminal.mcc,
            country=country,
            currency=terminal_currency(terminal).alpha,
            status=terminal.status.value,
        )

    def pay(
        self, wallet: Wallet, message: contract.QrPaymentRequest, key: str
    ) -> contract.Decision:
        """``POST /v1/qr/payments``: the decision; the sale's waiters woken."""
        paid: Paid = self.payments.pay(wallet, message, key)
        if paid.sale is not None:
            self.wake(*paid.sale)
        return paid.decision

    # -- sales -------------------------------------------------------------------------

    def view(self, terminal: Terminal, sale: QrSale) -> contract.QrSale:
        """A sale as the contract shows it to its terminal, with its code's text."""
        code = terminal_code(terminal, amount=sale.amount, bill=sale.bill)
        paid = self.payments.payment_of(sale)
        return contract.QrSale(
            bill=sale.bill,
            amount=sale.amount,
            currency=sale.currency,
            status=sale.status.value,
            payload=code.encode(),
            expires_at=sale.expires_at,
            created_at=sale.created_at,
            transaction=sale.transaction_id,
            card=paid.card if paid else "",
            response_code=paid.response_code if paid else "",
            declined=list(sale.declined),
        )

    def open_sale(self, terminal: Terminal, message: contract.QrSaleRequest) -> contract.QrSale:
        """``POST /v1/qr/sales``."""
        sale = self.payments.open_sale(terminal, message.bill, message.amount, message.expires_in)
        return self.view(terminal, sale)

    def cancel_sale(self, terminal: Terminal, bill: str) -> contract.QrSale:
        """``POST /v1/qr/sales/{bill}/cancel``; its waiters woken."""
        sale = self.payments.cancel_sale(terminal, bill)
        self.wake(terminal.id, bill)
        return self.view(terminal, sale)

    def sale(self, terminal: Terminal, bill: str) -> contract.QrSale:
        """``GET /v1/qr/sales/{bill}`` at once."""
        return self.view(terminal, self.payments.sale(terminal, bill))

    async def wait(self, terminal: Terminal, bill: str, seconds: float) -> contract.QrSale:
        """``GET /v1/qr/sales/{bill}?wait=N``: the long poll (module docstring)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(max(seconds, 0.0), MAX_WAIT)
        first = self.payments.sale(terminal, bill)
        sale = first
        key = (terminal.id, bill)
        event = asyncio.Event()
        self._waiters.setdefault(key, []).append(event)
        try:
            while _waiting(sale) and sale.declined == first.declined:
                left = deadline - loop.time()
                if left <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(left, POLL))
                event.clear()
                sale = self.payments.sale(terminal, bill)
        finally:
            waiters = self._waiters.get(key, [])
            waiters.remove(event)
            if not waiters:
                self._waiters.pop(key, None)
        return self.view(terminal, sale)

    def wake(self, terminal_id: str, bill: str) -> None:
        """Wake the long polls of a sale (a payment or a cancellation was decided), from
        the thread of their event loop."""
        for event in self._waiters.get((terminal_id, bill), ()):
            event.set()


def _names(certificate: str | None, wallet: Wallet) -> bool:
    """Whether ``certificate`` (the connection's verified client certificate) names
    ``wallet`` and has not expired."""
    if certificate is None:
        return False
    try:
        identity = identity_of(certificate)
    except PkiError:
        return False
    return (
        identity.kind == "wallet"
        and identity.id == wallet.id
        and datetime.now(UTC) < identity.not_after
    )
