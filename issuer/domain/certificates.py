"""The client certificate check of the authorisation service, per request.

The TLS handshake has verified the client's certificate (chain to the issuer's CA,
validity; :func:`emvwire.tls.server_context`). A request is then served only if that
certificate names the terminal whose bearer credential the request carries (a
terminal cannot use another's credential), is recorded for it in the ledger and not
revoked, and the terminal is active (:func:`certificate_allowed`).

:class:`ClientCertificates` makes the check cheap enough for every request: the
certificate's identity is parsed once per certificate (:func:`emvwire.pki.identity_of`
remembers it) and the certificate's ledger row is kept in the service's
:class:`~issuer.domain.cache.ReadCache`, which drops it when the cache generation
moves, as a revocation makes it move (:mod:`issuer.ledger.schema`, migration 5): a
revoked certificate is refused from the next event-loop turn after the commit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from emvwire.pki import CertificateIdentity, PkiError, identity_of
from issuer.model.entities import (
    CertificateStatus,
    Terminal,
    TerminalCertificate,
    TerminalStatus,
)

if TYPE_CHECKING:
    from issuer.domain.cache import ReadCache
    from issuer.ledger.repository import Ledger

__all__ = ["ClientCertificates", "certificate_allowed"]


def certificate_allowed(
    identity: CertificateIdentity,
    terminal: Terminal,
    record: TerminalCertificate | None,
    *,
    now: datetime | None = None,
) -> bool:
    """Whether a request of ``terminal`` (the bearer credential's, verified) may be
    served over a TLS connection whose client certificate is ``identity``, recorded
    in the ledger as ``record`` (``None``: not recorded): it names this terminal, is
    its active record, has not expired, and the terminal is active."""
    return (
        identity.kind == "terminal"
        and identity.id == terminal.id
        and terminal.status is TerminalStatus.ACTIVE
        and record is not None
        and record.serial == identity.serial
        and record.terminal_id == terminal.id
        and record.status is CertificateStatus.ACTIVE
        and (now or datetime.now(UTC)) < identity.not_after
    )


class ClientCertificates:
    """:func:`certificate_allowed` with the ledger's rows cached (module docstring)."""

    def __init__(self, ledger: Ledger, cache: ReadCache) -> None:
        self._ledger = ledger
        self._cache = cache

    def allowed(
        self, certificate: str | bytes, terminal: Terminal, generation: int | None = None
    ) -> bool:
        """Whether ``terminal``'s request may be served on a connection whose verified
        client certificate is ``certificate`` (PEM, the leaf: the first of the TLS
        chain). ``generation``: the cache generation read at the start of the turn
        (``None``: read now)."""
        try:
            identity = identity_of(certificate)
        except PkiError:
            return False
        if identity.kind != "terminal" or identity.id != terminal.id:
            return False
        if generation is None:
            generation = self._cache.refresh()
        key = ("certificate", identity.serial)
        record: TerminalCertificate | None = self._cache.get(key)
        if record is None:
            with self._ledger.unit_of_work(write=False, snapshot=False) as uow:
                record = uow.certificates.get(identity.serial)
            if record is not None:
                self._cache.put(key, record, generation)
        return certificate_allowed(identity, terminal, record)
