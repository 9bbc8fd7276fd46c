"""Certificates of tapstack's private PKI (RFC 5280 profile), for mutual TLS between
terminals, gates, the back office and the issuer.

Every service that clients connect to keeps its own private CA: the issuer's signs the
certificates of its terminals (the back office among them: it is a terminal of the
issuer), the back office's those of its gates. Keys are ECDSA on P-256 (FIPS 186-5,
RFC 5480; fast handshakes, small certificates), signatures ECDSA with SHA-256.

- **CA** (:func:`make_ca`): self-signed, ``basicConstraints`` CA with path length 0,
  ``keyUsage`` keyCertSign and cRLSign; valid :data:`CA_DAYS` (10 years).
- **Server** (:func:`issue_server`): ``subjectAltName`` with the host names and IP
  addresses clients use (default :data:`DEFAULT_HOSTS`: ``localhost`` and
  ``127.0.0.1``), ``extendedKeyUsage`` serverAuth; valid :data:`SERVER_DAYS` (1 year).
- **Client** (:func:`issue_client`): names the terminal, operator or gate twice: the subject's
  common name is its id, and one URI ``subjectAltName``
  ``urn:tapstack:<kind>:<id>`` (``kind``: :data:`KINDS`) is what
  :func:`identity_of` reads (the common name is for people); ``extendedKeyUsage``
  clientAuth; valid :data:`CLIENT_DAYS` (1 year).

A client key can stay where it was made: :func:`make_csr` makes a PKCS #10 request
(RFC 2986) and the CA takes only its public key (after checking its signature, the
proof of possession); the subject is always the CA's choice, never the request's.
Every certificate has a random serial of up to 159 bits (RFC 5280 §4.1.2.2), shown as
upper-case hex digits (:func:`serial_text`), and starts five minutes before it is made
(clock skew). Renewal is a new certificate for the same id: the old one stays valid
until it expires or is revoked, so a client switches without downtime.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from emvwire.errors import EmvWireError

__all__ = [
    "CA_DAYS",
    "CLIENT_DAYS",
    "DEFAULT_HOSTS",
    "KINDS",
    "SERVER_DAYS",
    "CertificateIdentity",
    "PkiError",
    "PrivateKey",
    "certificate_pem",
    "check_ca",
    "fingerprint",
    "hex_pairs",
    "identity_of",
    "issue_client",
    "issue_server",
    "load_certificates",
    "load_csr_key",
    "load_private_key",
    "make_ca",
    "make_csr",
    "new_key",
    "private_key_pem",
    "serial_text",
    "subject_urn",
    "verify_issued_by",
    "write_private",
    "write_public",
]

#: Validity of a CA certificate, a server certificate and a client certificate (days).
CA_DAYS: Final = 3650
SERVER_DAYS: Final = 365
CLIENT_DAYS: Final = 365
#: The names a server certificate holds when none are given.
DEFAULT_HOSTS: Final = ("localhost", "127.0.0.1")
#: What a client certificate names: a terminal, an operator (of the issuer's API) or a
#: phone wallet (of the issuer), or a gate (of the back office).
KINDS: Final = ("terminal", "gate", "operator", "wallet")
#: How far back a certificate's validity starts (clocks of clients that run late).
_SKEW: Final = timedelta(minutes=5)
_URN: Final = re.compile(r"urn:tapstack:(terminal|gate|operator|wallet):([A-Za-z0-9_.-]{1,64})")
_ID: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")

#: The private keys of this PKI.
PrivateKey = ec.EllipticCurvePrivateKey


class PkiError(EmvWireError, ValueError):
    """A key, certificate or request that is malformed, of the wrong kind, or does not
    name a terminal or gate; the message says which."""


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


def new_key() -> PrivateKey:
    """A new ECDSA P-256 private key (FIPS 186-5)."""
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(key: PrivateKey, password: bytes | None = None) -> bytes:
    """``key`` as PKCS #8 PEM (RFC 5958), encrypted under ``password`` when given
    (PBES2 with AES-256-CBC, RFC 8018)."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def load_private_key(pem: bytes, password: bytes | None = None) -> PrivateKey:
    """An EC private key from PEM (PKCS #8 or SEC 1), decrypted with ``password``."""
    try:
        key = serialization.load_pem_private_key(pem, password)
    except (ValueError, TypeError) as exc:
        raise PkiError(f"not a readable private key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError("the private key is not an EC key (ECDSA P-256 expected)")
    return key


def certificate_pem(cert: x509.Certificate) -> bytes:
    """One certificate as PEM."""
    return cert.public_bytes(serialization.Encoding.PEM)


def load_certificates(pem: bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM file (a chain: leaf first); :class:`PkiError` if none."""
    try:
        found = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise PkiError(f"not a PEM certificate ({exc})") from None
    if not found:
        raise PkiError("no certificate in the PEM data")
    return found


def serial_text(cert: x509.Certificate) -> str:
    """The serial number as upper-case hex digits of even length (as ``openssl x509
    -serial`` prints it)."""
    text = f"{cert.serial_number:X}"
    return "0" * (len(text) % 2) + text


def hex_pairs(text: str) -> str:
    """Hex digits in colon-separated pairs, as ``openssl`` shows serials and
    fingerprints to people: no run of decimal digits in it can read as a card number to
    the output's masking (:func:`emvwire.mask.scrub`)."""
    return ":".join(text[i : i + 2] for i in range(0, len(text), 2))


def fingerprint(cert: x509.Certificate) -> str:
    """The SHA-256 fingerprint of the certificate (its DER encoding), lower-case hex."""
    return cert.fingerprint(hashes.SHA256()).hex()


def subject_urn(kind: str, ident: str) -> str:
    """The URI ``subjectAltName`` of a client certificate: ``urn:tapstack:<kind>:<id>``."""
    if kind not in KINDS:
        raise PkiError(f"a client certificate names a {' or a '.join(KINDS)}, not {kind!r}")
    if not _ID.fullmatch(ident):
        raise PkiError(f"an id in a certificate is 1-64 of A-Z a-z 0-9 _ . -, not {ident!r}")
    return f"urn:tapstack:{kind}:{ident}"


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    days: int,
    now: datetime | None,
) -> x509.CertificateBuilder:
    if days < 1:
        raise PkiError("a certificate is valid for a day at least")
    start = _now(now) - _SKEW
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + _SKEW + timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _name(common_name: str, unit: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tapstack")]
    if unit:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    parts.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(parts)


def _issued_by(builder: x509.CertificateBuilder, ca: x509.Certificate) -> x509.CertificateBuilder:
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """digitalSignature (ECDSA handshakes), and keyCertSign and cRLSign for a CA."""
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip


def _end_entity(usage: x509.ObjectIdentifier) -> list[tuple[x509.ExtensionType, bool]]:
    return [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (_key_usage(ca=False), True),
        (x509.ExtendedKeyUsage([usage]), False),
    ]


def check_ca(ca: x509.Certificate, ca_key: PrivateKey) -> None:
    """That ``ca`` is a CA certificate (basicConstraints cA) and ``ca_key`` its key;
    :class:`PkiError` if not."""
    if ca.public_key() != ca_key.public_key():
        raise PkiError("the CA key is not the key of the CA certificate")
    try:
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        raise PkiError("the CA certificate has no basicConstraints: not a CA") from None
    if not constraints.ca:
        raise PkiError("the CA certificate is not a CA (basicConstraints cA false)")


def make_ca(
    name: str, *, key: PrivateKey | None = None, days: int = CA_DAYS, now: datetime | None = None
) -> tuple[x509.Certificate, PrivateKey]:
    """A new self-signed CA named ``name`` (module docstring) and its key (``key``, or
    a new one)."""
    key = key or new_key()
    subject = _name(name)
    builder = (
        _builder(subject, subject, key.public_key(), days, now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
    )
    cert = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
    ).sign(key, hashes.SHA256())
    return cert, key


def _host_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        host = host.strip().strip("[]")
        if not host:
            raise PkiError("an empty host name")
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            if not re.fullmatch(r"[A-Za-z0-9*]([A-Za-z0-9.-]{0,252})", host):
                raise PkiError(f"not a host name or IP address: {host!r}") from None
            names.append(x509.DNSName(host.lower()))
    if not names:
        raise PkiError("a server certificate names one host at least")
    return names


def issue_server(
    ca: x509.Certificate,
    ca_key: PrivateKey,
    hosts: Sequence[str] = DEFAULT_HOSTS,
    *,
    key: PrivateKey | None = None,
    days: int = SERVER_DAYS,
    now: datetime | None = None,
) -> tuple[x509.Certificate, PrivateKey]:
    """A server certificate for ``hosts`` (names and IP addresses, module docstring)
    signed by the CA, and its key (``key``, or a new one)."""
    check_ca(ca, ca_key)
    key = key or new_key()
    names = _host_names(hosts)
    builder = _builder(
        _name(hosts[0].strip("[]"), "server"), ca.subject, key.public_key(), days, now
    )
    for extension, critical in _end_entity(ExtendedKeyUsageOID.SERVER_AUTH):
        builder = builder.add_extension(extension, critical=critical)
    builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return _issued_by(builder, ca).sign(ca_key, hashes.SHA256()), key


def issue_client(
    ca: x509.Certificate,
    ca_key: PrivateKey,
    public_key: ec.EllipticCurvePublicKey,
    kind: str,
    ident: str,
    *,
    days: int = CLIENT_DAYS,
    now: datetime | None = None,
) -> x509.Certificate:
    """The client certificate of terminal or gate ``ident`` (``kind``) for
    ``public_key``, signed by the CA (module docstring)."""
    check_ca(ca, ca_key)
    urn = subject_urn(kind, ident)
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise PkiError("a client key is an EC key (ECDSA P-256)")
    builder = _builder(_name(ident, kind), ca.subject, public_key, days, now)
    for extension, critical in _end_entity(ExtendedKeyUsageOID.CLIENT_AUTH):
        builder = builder.add_extension(extension, critical=critical)
    builder = builder.add_extension(
        x509.SubjectAlternativeName([x509.UniformResourceIdentifier(urn)]), critical=False
    )
    return _issued_by(builder, ca).sign(ca_key, hashes.SHA256())


def make_csr(key: PrivateKey, kind: str, ident: str) -> bytes:
    """A PKCS #10 request (RFC 2986), PEM, for the client certificate of ``ident``: what
    a terminal or gate sends its CA so that its key never leaves it."""
    urn = subject_urn(kind, ident)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name(ident, kind))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(urn)]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def load_csr_key(pem: bytes) -> ec.EllipticCurvePublicKey:
    """The public key of a PKCS #10 request whose signature verifies (the requester
    holds the key); its subject is ignored (module docstring)."""
    try:
        csr = x509.load_pem_x509_csr(pem)
    except ValueError as exc:
        raise PkiError(f"not a PEM certificate request ({exc})") from None
    if not csr.is_signature_valid:
        raise PkiError("the certificate request's signature does not verify")
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise PkiError("the certificate request's key is not ECDSA P-256")
    return key


@dataclass(frozen=True, slots=True)
class CertificateIdentity:
    """Who a client certificate names: ``kind`` (:data:`KINDS`) and ``id``, its serial
    (:func:`serial_text`) and the end of its validity (UTC)."""

    kind: str
    id: str
    serial: str
    not_after: datetime


@functools.lru_cache(maxsize=4096)
def _identity(pem: bytes) -> CertificateIdentity:
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise PkiError(f"not a PEM certificate ({exc})") from None
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise PkiError("the certificate has no subjectAltName: it names no client") from None
    found = [
        m for m in map(_URN.fullmatch, names.get_values_for_type(x509.UniformResourceIdentifier))
        if m
    ]  # fmt: skip
    if len(found) != 1:
        raise PkiError(
            "the certificate names no terminal, operator or gate (one urn:tapstack: URI)"
        )
    kind, ident = found[0].group(1), found[0].group(2)
    return CertificateIdentity(kind, ident, serial_text(cert), cert.not_valid_after_utc)


def identity_of(pem: str | bytes) -> CertificateIdentity:
    """Who the client certificate ``pem`` names (the first certificate of a chain: the
    leaf), from its ``urn:tapstack:<kind>:<id>`` URI (module docstring). Parsing is
    remembered per certificate: a server may call this for every request.
    :class:`PkiError` when it names no terminal, operator or gate."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    end = data.find(b"-----END CERTIFICATE-----")
    if end >= 0:
        data = data[: end + len(b"-----END CERTIFICATE-----")]
    return _identity(data.strip() + b"\n")


def verify_issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """Whether ``ca`` signed ``cert`` (its name and signature)."""
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def write_private(path: Path, data: bytes) -> None:
    """Write a private key file once: mode 0600 from its creation, refused if the file
    exists (a key is never overwritten in place), flushed to disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def write_public(path: Path, data: bytes) -> None:
    """Write a certificate file (mode 0644), replacing it atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
