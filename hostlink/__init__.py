"""The terminal's host connection: online authorisation with the issuer service.

:class:`HostClient` sends a transaction's field 55 data and track 2 with a request id
(``Idempotency-Key``), retries with the same id on a time-out or a busy answer, and
when no answer comes sends a time-out reversal, so that an authorisation the issuer
made but the terminal never heard of does not hold the cardholder's money.
:class:`Iso8583Client` does the same in ISO 8583 messages; :func:`connect` picks one
by the issuer URL's scheme. :class:`WalletClient` is a phone wallet's: it looks up a
merchant and pays a merchant-presented QR code.
"""

from typing import Any

from emvwire.tls import ClientTls, PlainHttpError
from hostlink.client import (
    UNREACHABLE,
    HostClient,
    HostError,
    HostLinkError,
    HostOutcome,
    HostRefusedError,
    HostTlsError,
    HostUnreachableError,
)
from hostlink.iso8583 import Iso8583Client
from hostlink.wallet import WalletClient

__all__ = [
    "ISO8583_SCHEMES",
    "UNREACHABLE",
    "HostClient",
    "HostError",
    "HostLinkError",
    "HostOutcome",
    "HostRefusedError",
    "HostTlsError",
    "HostUnreachableError",
    "Iso8583Client",
    "WalletClient",
    "connect",
]

#: The URL schemes of the issuer's ISO 8583 listener (plain TCP, TLS).
ISO8583_SCHEMES = ("iso8583", "iso8583s")


def connect(
    url: str, terminal_id: str, terminal_key: str, *, tls: ClientTls, **options: Any
) -> HostClient | Iso8583Client:
    """The client of the issuer at ``url`` by its scheme: ``https://`` the HTTP API
    (:class:`HostClient`), ``iso8583s://`` the ISO 8583 listener (:class:`Iso8583Client`),
    both verified and with the client certificate of ``tls``; ``http://`` and
    ``iso8583://`` in clear only with ``tls.dev_plain_http`` (else
    :class:`~emvwire.tls.PlainHttpError`). ``options`` as the client takes them
    (``timeout``, ``retries``, ``backoff``); ``ValueError`` for another scheme."""
    scheme = url.partition("://")[0].lower()
    if scheme not in ISO8583_SCHEMES:
        return HostClient(url, terminal_id, terminal_key, tls=tls, **options)
    if scheme == "iso8583" and not tls.dev_plain_http:
        raise PlainHttpError(
            f"{url}: plain TCP would send the credential unencrypted; use iso8583s:// "
            "(in clear only for local development: --dev-plain-http)"
        )
    context = tls.context() if scheme == "iso8583s" else None
    return Iso8583Client(url, terminal_id, terminal_key, ssl_context=context, **options)
