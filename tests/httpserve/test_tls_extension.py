"""The services' server over TLS with client certificates: every request's scope
carries the ASGI TLS extension with the verified client certificate (PEM, leaf first)
and its subject; a plain-HTTP request carries none; a client without a certificate the
context trusts gets no request through. The CA, the server's and the client's
certificates are made here with cryptography."""

from __future__ import annotations

import datetime
import json
import logging
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from httpserve.asgi import send_json
from tests.support.hostile import read_answer
from tests.support.servers import asgi_serving


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, Any] | None, *, ca: bool
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    signer_name, signer_key = issuer or (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(signer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
        )
    return builder.sign(signer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("Test CA", ca_key, None, ca=True)
    out: dict[str, Any] = {"ca": folder / "ca.crt"}
    _write(folder / "ca", ca, ca_key)
    for who in ("server", "terminal-7"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(who, key, ("Test CA", ca_key), ca=False)
        _write(folder / who, cert, key)
        out[who] = (folder / f"{who}.crt", folder / f"{who}.key", cert)
    stranger_key = ec.generate_private_key(ec.SECP256R1())
    stranger = _certificate("stranger", stranger_key, None, ca=False)
    _write(folder / "stranger", stranger, stranger_key)
    out["stranger"] = (folder / "stranger.crt", folder / "stranger.key", stranger)
    return out


async def _echo(scope: Any, receive: Any, send: Any) -> None:
    """Answers the TLS extension of the request (or null)."""
    if scope["type"] != "http":
        return
    await receive()
    tls = scope.get("extensions", {}).get("tls")
    await send_json(send, 200, json.dumps(tls).encode())


@pytest.fixture
def served(pki: dict[str, Any], caplog: pytest.LogCaptureFixture) -> Iterator[tuple[str, int]]:
    caplog.set_level(logging.DEBUG)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki["ca"]))
    context.verify_mode = ssl.CERT_REQUIRED
    certfile, keyfile, _ = pki["server"]
    context.load_cert_chain(certfile, keyfile)
    with asgi_serving(_echo, ssl_context=context) as address:
        yield address
    loud = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not loud, [r.getMessage() for r in loud]


def _client(pki: dict[str, Any], who: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki["ca"]))
    if who is not None:
        certfile, keyfile, _ = pki[who]
        context.load_cert_chain(certfile, keyfile)
    return context


def _get(address: tuple[str, int], context: ssl.SSLContext) -> tuple[int, bytes]:
    with (
        socket.create_connection(address, timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as conn,
    ):
        for _ in range(2):  # the extension on every request of the connection
            conn.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            status, _, body = read_answer(conn)
        return status, body


def test_the_client_certificate_reaches_the_app(
    served: tuple[str, int], pki: dict[str, Any]
) -> None:
    status, body = _get(served, _client(pki, "terminal-7"))
    assert status == 200
    tls = json.loads(body)
    leaf = pki["terminal-7"][2]
    assert tls["client_cert_chain"][0] == leaf.public_bytes(serialization.Encoding.PEM).decode()
    assert x509.load_pem_x509_certificate(tls["client_cert_chain"][0].encode()) == leaf
    assert tls["client_cert_name"] == "CN=terminal-7"
    assert tls["client_cert_error"] is None
    assert tls["tls_version"] in (0x0303, 0x0304)


@pytest.mark.parametrize("who", [None, "stranger"])
def test_no_request_without_a_trusted_certificate(
    served: tuple[str, int], pki: dict[str, Any], who: str | None
) -> None:
    try:
        status, _ = _get(served, _client(pki, who))
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return
    assert status == 0  # TLS 1.3: the refusal may come with the first read


def test_plain_http_has_no_tls_extension() -> None:
    with asgi_serving(_echo) as address, socket.create_connection(address, timeout=10) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = read_answer(conn)
    assert (status, json.loads(body)) == (200, None)
