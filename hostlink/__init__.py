"""The terminal's host connection: online authorisation with the issuer service.

:class:`HostClient` sends a transaction's field 55 data and track 2 with a request id
(``Idempotency-Key``), retries with the same id on a time-out or a busy answer, and
when no answer comes sends a time-out reversal, so that an authorisation the issuer
made but the terminal never heard of does not hold the cardholder's money.
"""

from hostlink.client import (
    UNREACHABLE,
    HostClient,
    HostError,
    HostLinkError,
    HostOutcome,
    HostRefusedError,
    HostUnreachableError,
)

__all__ = [
    "UNREACHABLE",
    "HostClient",
    "HostError",
    "HostLinkError",
    "HostOutcome",
    "HostRefusedError",
    "HostUnreachableError",
]
