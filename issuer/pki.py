"""The issuer's TLS: its private CA for terminal certificates, its server certificate,
and the client certificates it issues to terminals, recorded in the ledger.

The home's ``tls/`` folder (:class:`emvwire.tls.TlsFolder`) holds ``ca.crt`` and
``ca.key`` (the CA of terminal certificates; the back office is a terminal too),
``server.crt`` and ``server.key`` (what ``issuer serve`` presents) and
``server-ca.crt`` (what terminals verify the server with: ``--issuer-ca``). ``issuer
init`` makes them (or imports a CA, a server certificate, or both), checked before
anything is written.

Private keys at rest are PKCS #8, encrypted (PBES2, AES-256-CBC) under a password the
key store derives: HMAC-SHA256 under its PAN hash key of a fixed label (letters, so
never a PAN's hash), hex (:func:`tls_password`). They open only where the key store
opens (a file store with its passphrase, a PKCS#11 token with its PIN), like the key
store's own secrets; their files are mode 0600 besides.

An operator of the API gets a certificate of the same CA naming it as
``urn:tapstack:operator:<id>`` (:func:`add_operator`), its serial recorded on the
operator in the transaction that makes it.

A terminal's certificate (:func:`add_terminal`, :func:`renew_terminal`) names it as
``urn:tapstack:terminal:<id>`` (:mod:`emvwire.pki`) and is recorded (serial,
fingerprint, validity) in the transaction that adds the terminal, or alone for a
renewal: the previous certificate stays valid, so a terminal switches to the new one
when it likes, without downtime. Without a request (``csr``) the key is made here and
returned once for the caller to write (mode 0600) and hand over; with one, the key
never leaves the terminal.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Final

from emvwire.pki import CLIENT_DAYS, fingerprint
from emvwire.tls import IssuedCertificate, TlsFolder
from issuer.domain.service import IssuerService
from issuer.keys.base import KeyStore
from issuer.model.entities import (
    CertificateStatus,
    Terminal,
    TerminalCertificate,
    utc_now,
    utc_text,
)
from issuer.model.operators import Operator

__all__ = [
    "CA_NAME",
    "TLS_DIR",
    "add_operator",
    "add_terminal",
    "certificate_record",
    "renew_terminal",
    "service_context",
    "tls_folder",
    "tls_password",
]

#: The TLS folder of an issuer home.
TLS_DIR: Final = "tls"
#: The common name of the issuer's CA.
CA_NAME: Final = "tapstack issuer terminal CA"
#: What the key store's HMAC key derives the private keys' password from.
_PASSWORD_LABEL: Final = "tapstack:tls:private-key-password"  # noqa: S105 - a label, no secret


def tls_password(keys: KeyStore) -> bytes:
    """The password of the home's TLS private keys (module docstring)."""
    return keys.pan_hash(_PASSWORD_LABEL).hex().encode("ascii")


def tls_folder(home: Path, keys: KeyStore) -> TlsFolder:
    """The TLS folder of the issuer home ``home``, its keys opened with ``keys``."""
    return TlsFolder(home / TLS_DIR, tls_password(keys))


def service_context(home: Path, keys: KeyStore) -> ssl.SSLContext:
    """The context ``issuer serve`` listens with: its server certificate and key, and
    client certificates of its CA required (:func:`emvwire.tls.server_context`). On
    SIGHUP, ``tls_folder(home, keys).reload(context)`` takes up a renewed server
    certificate."""
    return tls_folder(home, keys).server_context()


def certificate_record(issued: IssuedCertificate, terminal_id: str) -> TerminalCertificate:
    """The ledger's record of a certificate issued to ``terminal_id``."""
    cert = issued.certificate
    return TerminalCertificate(
        serial=issued.identity.serial,
        terminal_id=terminal_id,
        fingerprint=fingerprint(cert),
        not_before=utc_text(cert.not_valid_before_utc),
        not_after=utc_text(cert.not_valid_after_utc),
        status=CertificateStatus.ACTIVE,
        created_at=utc_now(),
    )


class _Certify:
    """Issues the certificate of the terminal id it is given, and keeps it."""

    def __init__(
        self, folder: TlsFolder, csr: bytes | None, days: int, now: datetime | None
    ) -> None:
        self.folder, self.csr, self.days, self.now = folder, csr, days, now
        self.issued: IssuedCertificate | None = None

    def __call__(self, terminal_id: str) -> TerminalCertificate:
        self.issued = self.folder.issue_client(
            "terminal", terminal_id, csr=self.csr, days=self.days, now=self.now
        )
        return certificate_record(self.issued, terminal_id)


def add_terminal(
    service: IssuerService,
    folder: TlsFolder,
    merchant: str,
    mcc: str,
    *,
    country: str = "0250",
    csr: bytes | None = None,
    days: int = CLIENT_DAYS,
    now: datetime | None = None,
    city: str | None = None,
    currency: str | None = None,
) -> tuple[Terminal, str, IssuedCertificate]:
    """Register a terminal with its client certificate (one transaction): the terminal,
    its credential (shown once) and the certificate (with its new key unless ``csr``);
    ``city`` and ``currency`` for its QR codes."""
    certify = _Certify(folder, csr, days, now)
    terminal, credential = service.add_terminal(
        merchant, mcc, country=country, certify=certify, city=city, currency=currency
    )
    assert certify.issued is not None
    return terminal, credential, certify.issued


def renew_terminal(
    service: IssuerService,
    folder: TlsFolder,
    terminal_id: str,
    *,
    csr: bytes | None = None,
    days: int = CLIENT_DAYS,
    now: datetime | None = None,
) -> IssuedCertificate:
    """A new client certificate of an active terminal, recorded; its earlier ones stay
    valid until they expire or are revoked (module docstring)."""
    certify = _Certify(folder, csr, days, now)
    service.add_certificate(terminal_id, certify)
    assert certify.issued is not None
    return certify.issued


def add_operator(
    service: IssuerService,
    folder: TlsFolder,
    name: str,
    scopes: Iterable[str],
    *,
    csr: bytes | None = None,
    days: int = CLIENT_DAYS,
    now: datetime | None = None,
) -> tuple[Operator, str, IssuedCertificate]:
    """Make an operator of the API with its client certificate (one transaction): the
    operator, its credential (shown once) and the certificate (with its new key unless
    ``csr``)."""
    issued: list[IssuedCertificate] = []

    def certify(operator_id: str) -> tuple[str, str]:
        issued.append(folder.issue_client("operator", operator_id, csr=csr, days=days, now=now))
        return issued[0].identity.serial, utc_text(issued[0].certificate.not_valid_after_utc)

    operator, credential = service.add_operator(name, scopes, certify=certify)
    return operator, credential, issued[0]
