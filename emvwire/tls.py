"""TLS for every link of tapstack: the contexts of servers and clients, what a client
is told about its server, and a service's folder of keys and certificates.

Both sides speak TLS 1.2 or 1.3 (RFC 8446; 1.3 when both can, the standard library's
choice), never older, and authenticate each other (mutual TLS):

- :func:`server_context`: the server's certificate chain and key, and the CA its
  clients' certificates must chain to; a client without a valid certificate of that
  CA (none, another CA's, expired) fails the handshake, before any request is read.
  Which terminal or gate a verified certificate names is
  :func:`emvwire.pki.identity_of`; that it is not revoked, and matches the bearer
  credential, each service checks per request.
- :func:`client_context`: the server's certificate verified against the configured
  CA (the system's trust store when none is configured), with its host name checked
  (RFC 6125), and the client's own certificate and key.
- :class:`ClientTls`: what a client of a service is configured with; an ``http://``
  URL is refused unless ``dev_plain_http`` says this is local development.
- :class:`KeptConnection`: a client's one HTTP/1.1 connection, kept alive between
  requests and opened anew, before a request, once it has been idle long enough that
  the server may have closed it.
- :class:`TlsFolder`: a service's CA, server certificate and keys in one folder
  (``ca.crt``, ``ca.key``, ``server.crt``, ``server.key``, ``server-ca.crt``), checked
  before anything is written (:func:`plan_folder`) and written whole or not at all;
  the CA issues client certificates (:meth:`TlsFolder.issue_client`) and a new server
  certificate (:meth:`TlsFolder.renew_server`), which a running
  server takes up without a restart (:meth:`TlsFolder.reload`, e.g. on SIGHUP).
"""

from __future__ import annotations

import contextlib
import http.client
import shutil
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import SplitResult, urlsplit

from cryptography import x509

from emvwire.pki import (
    CLIENT_DAYS,
    DEFAULT_HOSTS,
    SERVER_DAYS,
    CertificateIdentity,
    PkiError,
    PrivateKey,
    certificate_pem,
    check_ca,
    fingerprint,
    identity_of,
    issue_client,
    issue_server,
    load_certificates,
    load_csr_key,
    load_private_key,
    make_ca,
    new_key,
    private_key_pem,
    serial_text,
    verify_issued_by,
    write_private,
    write_public,
)

__all__ = [
    "CA_CERT",
    "CA_KEY",
    "DEV_PLAIN_HTTP",
    "REUSE_WITHIN",
    "SERVER_CA",
    "SERVER_CERT",
    "SERVER_KEY",
    "ClientTls",
    "IssuedCertificate",
    "KeptConnection",
    "PlainHttpError",
    "TlsFolder",
    "TlsPlan",
    "client_context",
    "plan_folder",
    "reload_server_certificate",
    "server_context",
    "summary_lines",
]

#: The files of a :class:`TlsFolder`.
CA_CERT: Final = "ca.crt"
CA_KEY: Final = "ca.key"
SERVER_CERT: Final = "server.crt"
SERVER_KEY: Final = "server.key"
#: The CA that clients verify the server with (the folder's CA unless the server
#: certificate was imported from another).
SERVER_CA: Final = "server-ca.crt"

Pathish = str | Path


class PlainHttpError(PkiError):
    """An ``http://`` URL without the local-development flag."""


def _ssl_failure(what: str, exc: Exception) -> PkiError:
    reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
    return PkiError(f"{what}: {reason}")


def server_context(
    cert: Pathish, key: Pathish, client_ca: Pathish | None, *, password: bytes | None = None
) -> ssl.SSLContext:
    """A server's context (module docstring): TLS 1.2 at least, the chain ``cert``
    (leaf first) with its ``key`` (decrypted with ``password``), client certificates
    required and verified against ``client_ca`` (a PEM file of one or more CAs);
    ``None``: no client certificate asked for (a web console's browsers, who sign in
    with a credential instead)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_NONE if client_ca is None else ssl.CERT_REQUIRED
    try:
        context.load_cert_chain(cert, key, password)
    except (OSError, ssl.SSLError) as exc:
        raise _ssl_failure(f"server certificate {cert} and key {key}", exc) from None
    if client_ca is None:
        return context
    try:
        context.load_verify_locations(cafile=client_ca)
    except (OSError, ssl.SSLError) as exc:
        raise _ssl_failure(f"client CA {client_ca}", exc) from None
    return context


def reload_server_certificate(
    context: ssl.SSLContext, cert: Pathish, key: Pathish, *, password: bytes | None = None
) -> None:
    """Give a running server's ``context`` a new certificate chain and key: handshakes
    from now on present it, connections open keep theirs (what a server does on
    SIGHUP). The pair is checked first, so a bad pair leaves ``context`` as it was
    (:class:`PkiError`)."""
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        probe.load_cert_chain(cert, key, password)
        context.load_cert_chain(cert, key, password)
    except (OSError, ssl.SSLError) as exc:
        raise _ssl_failure(f"server certificate {cert} and key {key}", exc) from None


def client_context(
    ca: Pathish | None = None,
    cert: Pathish | None = None,
    key: Pathish | None = None,
    *,
    password: bytes | None = None,
) -> ssl.SSLContext:
    """A client's context (module docstring): TLS 1.2 at least, the server verified
    against ``ca`` (``None``: the system's trust store) with its host name checked,
    and the client's certificate ``cert`` with its ``key`` when given (both or none)."""
    if (cert is None) != (key is None):
        raise PkiError("a client certificate needs its key, and a key its certificate")
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise _ssl_failure(f"server CA {ca}", exc) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None and key is not None:
        try:
            context.load_cert_chain(cert, key, password)
        except (OSError, ssl.SSLError) as exc:
            raise _ssl_failure(f"client certificate {cert} and key {key}", exc) from None
    return context


@dataclass(frozen=True, slots=True)
class ClientTls:
    """How a client reaches its server: ``ca`` verifies the server (``None``: the
    system's trust store), ``cert`` and ``key`` are the client's certificate and key
    (PEM files). ``dev_plain_http`` accepts an ``http://`` URL, for local development
    only: the credential then crosses the network in clear."""

    ca: Pathish | None = None
    cert: Pathish | None = None
    key: Pathish | None = None
    dev_plain_http: bool = False

    def context(self) -> ssl.SSLContext:
        """The client context of these files (:func:`client_context`)."""
        return client_context(self.ca, self.cert, self.key)

    def for_url(self, url: str, what: str = "server") -> tuple[SplitResult, ssl.SSLContext | None]:
        """``url`` split, and the context to reach it with: ``None`` for an ``http://``
        URL, which only ``dev_plain_http`` accepts (:class:`PlainHttpError`);
        :class:`PkiError` for a URL that is neither or files that do not load."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PkiError(f"the {what} URL is https://HOST[:PORT], not {url!r}")
        if parts.scheme == "https":
            return parts, self.context()
        if not self.dev_plain_http:
            raise PlainHttpError(
                f"{url}: plain HTTP would send the credential unencrypted; use https:// "
                "(plain HTTP only for local development: --dev-plain-http)"
            )
        return parts, None

    def for_nats(self, url: str) -> ssl.SSLContext | None:
        """The context to reach a NATS server at ``url`` with: ``tls://HOST:PORT``
        (the server verified against ``ca``, the client certificate presented when
        given: how every deployment links gates and back offices to NATS), or ``None``
        for ``nats://``, which only ``dev_plain_http`` accepts (a local server without
        TLS, such as a developer's): :class:`PlainHttpError`; :class:`PkiError` for
        another URL or files that do not load."""
        parts = urlsplit(url)
        if parts.scheme not in ("nats", "tls") or not parts.hostname:
            raise PkiError(f"the NATS URL is tls://HOST[:PORT], not {url!r}")
        if parts.scheme == "tls":
            return self.context()
        if not self.dev_plain_http:
            raise PlainHttpError(
                f"{url}: a nats:// link is not encrypted; use tls:// (plain only for "
                "local development: --dev-plain-http)"
            )
        return None


#: The client settings of local development over plain HTTP (tests, a first try).
DEV_PLAIN_HTTP: Final = ClientTls(dev_plain_http=True)


#: Seconds a kept connection may have been idle and still be used: below the 30 s
#: after which the services close an idle connection (``httpserve.limits.Limits``
#: ``idle_timeout``), so that a request is not sent on a connection its server has
#: just closed (RFC 9112 §9.6: a client must be ready to reopen one).
REUSE_WITHIN: Final = 25.0


class KeptConnection:
    """One HTTP/1.1 connection to ``host``:``port``, over TLS with ``context``
    (:meth:`ClientTls.for_url`; in clear without one), kept alive from request to
    request, and opened anew by :meth:`connection` once it has been idle more than
    ``reuse_within`` seconds (or after :meth:`close`)."""

    def __init__(
        self,
        host: str,
        port: int | None,
        context: ssl.SSLContext | None,
        *,
        reuse_within: float = REUSE_WITHIN,
    ) -> None:
        self.host, self.port, self.context = host, port, context
        self.reuse_within = reuse_within
        self._conn: http.client.HTTPConnection | None = None
        self._used = 0.0

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        """The connection for the next request (its socket opens with the request)."""
        now = time.monotonic()
        if self._conn is not None and now - self._used > self.reuse_within:
            self.close()
        if self._conn is None:
            if self.context is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
            else:
                self._conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=timeout, context=self.context
                )
        self._used = now
        return self._conn

    def close(self) -> None:
        """Close the connection (the next request opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """A client certificate just issued: the certificate, its PEM, who it names, and
    the PEM of its new key when the key was made here (``None`` for a request's)."""

    certificate: x509.Certificate
    pem: bytes
    identity: CertificateIdentity
    key_pem: bytes | None = field(default=None, repr=False)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the certificate, hex."""
        return fingerprint(self.certificate)

    def write(self, folder: Path, name: str) -> dict[str, str]:
        """Write ``NAME.crt`` and, when the key was made here, ``NAME.key`` (mode 0600,
        once: an existing key file is never overwritten) into ``folder``; what to show
        of it: serial, end of validity, fingerprint and the files (never the key)."""
        folder.mkdir(parents=True, exist_ok=True)
        out = {
            "serial": self.identity.serial,
            "not_after": self.identity.not_after.isoformat(),
            "fingerprint": self.fingerprint,
            "cert_file": str(folder / f"{name}.crt"),
        }
        if self.key_pem is not None:
            key_path = folder / f"{name}.key"
            try:
                write_private(key_path, self.key_pem)
            except FileExistsError:
                raise PkiError(f"{key_path} exists: a key file is never overwritten") from None
            out["key_file"] = str(key_path)
        write_public(folder / f"{name}.crt", self.pem)
        return out


def _describe(cert: x509.Certificate) -> dict[str, Any]:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        alt = [str(v) for v in names.get_values_for_type(x509.DNSName)]
        alt += [str(v) for v in names.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        alt = []
    return {
        "subject": cert.subject.rfc4514_string(),
        "serial": serial_text(cert),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "fingerprint": fingerprint(cert),
        "hosts": alt,
    }


@dataclass(frozen=True, slots=True)
class TlsPlan:
    """A service's CA and server certificate, made or imported and checked, before
    anything is written (:func:`plan_folder`, :meth:`TlsFolder.create`)."""

    ca: x509.Certificate
    ca_key: PrivateKey = field(repr=False)
    chain: tuple[x509.Certificate, ...]
    server_key: PrivateKey = field(repr=False)
    server_ca: bytes


def plan_folder(
    ca_name: str,
    *,
    hosts: Sequence[str] = DEFAULT_HOSTS,
    ca_cert: bytes | None = None,
    ca_key: bytes | None = None,
    server_cert: bytes | None = None,
    server_key: bytes | None = None,
    server_ca: bytes | None = None,
    now: datetime | None = None,
) -> TlsPlan:
    """A new CA named ``ca_name`` (or an imported one: ``ca_cert`` and ``ca_key``, PEM)
    and a server certificate for ``hosts`` signed by it (or an imported one:
    ``server_cert``, a chain, leaf first, and ``server_key``; ``server_ca`` the CA
    clients verify it with, needed unless the CA signed it), all checked
    (:class:`PkiError`), nothing written."""
    if (ca_cert is None) != (ca_key is None):
        raise PkiError("an imported CA certificate goes with its key")
    if (server_cert is None) != (server_key is None):
        raise PkiError("an imported server certificate goes with its key")
    if ca_cert is not None and ca_key is not None:
        ca = load_certificates(ca_cert)[0]
        ca_private = load_private_key(ca_key)
        check_ca(ca, ca_private)
    else:
        ca, ca_private = make_ca(ca_name, now=now)
    if server_cert is None or server_key is None:
        leaf, private = issue_server(ca, ca_private, hosts, now=now)
        return TlsPlan(ca, ca_private, (leaf,), private, certificate_pem(ca))
    chain = load_certificates(server_cert)
    private = load_private_key(server_key)
    if chain[0].public_key() != private.public_key():
        raise PkiError("the server key is not the key of the server certificate")
    if server_ca is not None:
        anchor = b"".join(certificate_pem(c) for c in load_certificates(server_ca))
    elif verify_issued_by(chain[0], ca):
        anchor = certificate_pem(ca)
    else:
        raise PkiError(
            "the CA did not sign the imported server certificate: give the CA that "
            "clients verify it with"
        )
    return TlsPlan(ca, ca_private, tuple(chain), private, anchor)


class TlsFolder:
    """A service's TLS folder (module docstring). Private keys are PKCS #8, encrypted
    under ``password`` when one is given, and mode 0600 in any case."""

    def __init__(self, path: Path, password: bytes | None = None) -> None:
        self.path = path
        self._password = password

    def __repr__(self) -> str:
        return f"TlsFolder({self.path})"

    def file(self, name: str) -> Path:
        """One of the folder's files (:data:`CA_CERT`, ...)."""
        return self.path / name

    def exists(self) -> bool:
        """Whether the folder holds its five files."""
        names = (CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY, SERVER_CA)
        return all((self.path / n).is_file() for n in names)

    # -- making the folder ---------------------------------------------------------------

    def create(self, plan: TlsPlan) -> None:
        """Write ``plan`` (:func:`plan_folder`, checked already) as the folder: whole or
        not at all (:class:`PkiError` if a folder is there)."""
        if self.path.exists():
            raise PkiError(f"{self.path} exists already")
        work = self.path.with_name(f".{self.path.name}.new")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(mode=0o700, parents=True)
        try:
            write_public(work / CA_CERT, certificate_pem(plan.ca))
            write_private(work / CA_KEY, private_key_pem(plan.ca_key, self._password))
            write_public(work / SERVER_CERT, b"".join(certificate_pem(c) for c in plan.chain))
            write_private(work / SERVER_KEY, private_key_pem(plan.server_key, self._password))
            write_public(work / SERVER_CA, plan.server_ca)
            work.rename(self.path)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise

    def remove(self) -> None:
        """Delete the folder (what a failed initialisation leaves must go)."""
        shutil.rmtree(self.path, ignore_errors=True)

    # -- the CA --------------------------------------------------------------------------

    def _read(self, name: str) -> bytes:
        try:
            return (self.path / name).read_bytes()
        except OSError as exc:
            raise PkiError(f"{self.path / name}: {exc.strerror or exc}") from None

    def ca_certificate(self) -> x509.Certificate:
        """The folder's CA certificate."""
        return load_certificates(self._read(CA_CERT))[0]

    def server_certificate(self) -> x509.Certificate:
        """The server's certificate (the leaf of ``server.crt``)."""
        return load_certificates(self._read(SERVER_CERT))[0]

    def _ca(self) -> tuple[x509.Certificate, PrivateKey]:
        return self.ca_certificate(), load_private_key(self._read(CA_KEY), self._password)

    def issue_client(
        self,
        kind: str,
        ident: str,
        *,
        csr: bytes | None = None,
        days: int = CLIENT_DAYS,
        now: datetime | None = None,
    ) -> IssuedCertificate:
        """A client certificate of ``ident`` for the key of ``csr`` (a PEM request, its
        signature checked), or for a new key returned with it (written nowhere here)."""
        key: PrivateKey | None = None
        if csr is not None:
            public = load_csr_key(csr)
        else:
            key = new_key()
            public = key.public_key()
        ca_cert, ca_key = self._ca()
        cert = issue_client(ca_cert, ca_key, public, kind, ident, days=days, now=now)
        pem = certificate_pem(cert)
        return IssuedCertificate(
            cert,
            pem,
            identity_of(pem),
            None if key is None else private_key_pem(key),
        )

    def renew_server(
        self,
        hosts: Sequence[str] = DEFAULT_HOSTS,
        *,
        days: int = SERVER_DAYS,
        now: datetime | None = None,
    ) -> x509.Certificate:
        """A new server key and certificate for ``hosts``, signed by the folder's CA,
        in place of the old (which stays valid until it expires: clients see no
        difference); a running server takes it with :meth:`reload`. Refused when the
        server certificate was imported from another CA (import the new one instead)."""
        ca_cert, ca_key = self._ca()
        if not verify_issued_by(self.server_certificate(), ca_cert):
            raise PkiError("the server certificate is not of this CA: import its renewal")
        cert, key = issue_server(ca_cert, ca_key, hosts, days=days, now=now)
        staged = {
            SERVER_KEY: self.path / f".{SERVER_KEY}.new",
            SERVER_CERT: self.path / f".{SERVER_CERT}.new",
        }
        for path in staged.values():
            path.unlink(missing_ok=True)
        write_private(staged[SERVER_KEY], private_key_pem(key, self._password))
        write_public(staged[SERVER_CERT], certificate_pem(cert))
        staged[SERVER_KEY].replace(self.path / SERVER_KEY)
        staged[SERVER_CERT].replace(self.path / SERVER_CERT)
        return cert

    # -- serving -------------------------------------------------------------------------

    def server_context(self, *, clients: bool = True) -> ssl.SSLContext:
        """The context a server of this folder listens with (:func:`server_context`:
        its certificate and key, client certificates of its CA required unless not
        ``clients``)."""
        return server_context(
            self.path / SERVER_CERT,
            self.path / SERVER_KEY,
            self.path / CA_CERT if clients else None,
            password=self._password,
        )

    def reload(self, context: ssl.SSLContext) -> None:
        """Load the folder's current server certificate and key into a running
        server's ``context`` (:func:`reload_server_certificate`; call on SIGHUP after
        :meth:`renew_server`)."""
        reload_server_certificate(
            context, self.path / SERVER_CERT, self.path / SERVER_KEY, password=self._password
        )

    def summary(self) -> dict[str, Any]:
        """The CA and the server certificate (subject, serial, end of validity,
        fingerprint, host names) and the file clients verify the server with."""
        out: dict[str, Any] = {"folder": str(self.path)}
        with contextlib.suppress(PkiError):
            out["ca"] = _describe(self.ca_certificate())
        with contextlib.suppress(PkiError):
            out["server"] = _describe(self.server_certificate())
        out["server_ca_file"] = str(self.path / SERVER_CA)
        return out


def summary_lines(summary: dict[str, Any], clients: str) -> list[str]:
    """A :meth:`TlsFolder.summary` for people: the CA, the server certificate, and the
    file ``clients`` (terminals, gates) verify the server with."""
    lines = [f"TLS: {summary['folder']}"]
    for role in ("ca", "server"):
        if role in summary:
            cert = summary[role]
            hosts = f" for {', '.join(cert['hosts'])}" if cert["hosts"] else ""
            lines.append(f"  {role:<6} {cert['subject']}{hosts}, until {cert['not_after'][:10]}")
    lines.append(f"  {clients} verify the server with {summary['server_ca_file']}")
    return lines
