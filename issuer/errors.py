"""The error tree of the issuer.

Everything the issuer's domain, ledger and key stores raise on a bad request is an
:class:`IssuerError`; each class carries the process exit code the CLI uses for it,
from the table all four tools share (:class:`clikit.exits.Exit`; clig.dev: non-zero
exit on failure, distinct codes for distinct causes). Messages never hold a full PAN, a
track image or a key (PCI DSS v4.0 Req. 3.4.1).
"""

from __future__ import annotations

from clikit.exits import Exit

__all__ = [
    "ConfigError",
    "ConflictError",
    "IntegrityError",
    "InvalidStateError",
    "IssuerError",
    "KcvMismatchError",
    "KeyStoreError",
    "LedgerError",
    "NotFoundError",
    "RefusedError",
    "TransientError",
    "ValidationError",
]


class IssuerError(Exception):
    """Base class of every error the issuer raises on a bad request or state."""

    exit_code: int = Exit.INTERNAL


class ValidationError(IssuerError, ValueError):
    """An argument is malformed (a PAN that fails Luhn, an MCC of 3 digits, ...)."""

    exit_code = Exit.USAGE


class NotFoundError(IssuerError, LookupError):
    """No account, card, token, terminal, key or transaction by that identifier."""

    exit_code = Exit.NOT_FOUND


class ConflictError(IssuerError):
    """The object already exists (a PAN registered twice, a key id taken)."""

    exit_code = Exit.CONFLICT


class InvalidStateError(IssuerError):
    """A life-cycle rule forbids the change (resuming a closed card, ...)."""

    exit_code = Exit.CONFLICT


class RefusedError(InvalidStateError):
    """A business rule refuses the request; ``code`` names the rule for machines
    (``not_resubmittable``, ``insufficient_funds``, ``aggregation_limit_exceeded``)."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


class KeyStoreError(IssuerError):
    """The key store cannot do what was asked (locked, wrong passphrase, no such key)."""

    exit_code = Exit.REFUSED


class KcvMismatchError(KeyStoreError):
    """An imported key does not match the key check value given with it."""


class ConfigError(IssuerError):
    """The issuer home is missing or its configuration is unusable."""

    exit_code = Exit.CONFIG


class LedgerError(IssuerError):
    """The database refused an operation."""

    exit_code = Exit.STORAGE


class IntegrityError(LedgerError):
    """A ledger invariant does not hold (a balance differs from its entries)."""


class TransientError(LedgerError):
    """A concurrency failure (lock time-out, serialisation failure, deadlock) that a
    caller may retry with the same unit of work."""
