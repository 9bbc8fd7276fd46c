"""The ISO 8583 listener and client over TLS (``iso8583s://``) with contexts the test
makes (a self-signed server certificate, a client certificate naming the terminal):
the client verifies the issuer, and the listener's ``identify`` hook binds the
terminal its verified client certificate names."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from emvwire.oda import SigningKey
from hostlink import HostUnreachableError, Iso8583Client
from issuer.bootstrap import IssuerApp
from issuer.service.iso8583 import Iso8583Handler
from issuer.service.iso8583_server import Iso8583Server
from tests.issuer.helpers import balances, make_world, tap
from tests.support.hostile import closed_by_server
from tests.support.servers import serving


def _certificate(folder: Path, name: str, *, ip: bool) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    if ip:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False)
    cert = builder.sign(key, hashes.SHA256())
    cert_file, key_file = folder / f"{name}.pem", folder / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_authorise_over_tls_with_a_client_certificate(
    issuer: IssuerApp, rsa_keys: dict[str, SigningKey], tmp_path: Path
) -> None:
    w = make_world(issuer, rsa_keys)
    terminal_id, key = w.auth.removeprefix("Bearer ").split(":", 1)
    server_cert, server_key = _certificate(tmp_path, "issuer", ip=True)
    client_cert, client_key = _certificate(tmp_path, terminal_id, ip=False)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=client_cert)
    server_ctx.load_cert_chain(server_cert, server_key)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    named: list[str] = []

    def identify(ssl_object: ssl.SSLObject) -> str | None:
        peer = ssl_object.getpeercert() or {}
        for rdn in peer.get("subject", ()):
            for attribute, value in rdn:
                if attribute == "commonName":
                    named.append(value)
                    return str(value)
        return None

    client_ctx = ssl.create_default_context(cafile=server_cert)
    client_ctx.load_cert_chain(client_cert, client_key)
    sock = socket.create_server(("127.0.0.1", 0))
    server = Iso8583Server(Iso8583Handler(w.app), sock, ssl_context=server_ctx, identify=identify)
    url = f"iso8583s://127.0.0.1:{sock.getsockname()[1]}"
    with serving(server):
        result = tap(w.card, 1500)
        with Iso8583Client(url, terminal_id, key, ssl_context=client_ctx) as host:
            outcome = host.authorise(result.authorisation_data, result.track2)
        assert outcome.approved
        assert named == [terminal_id]
        # A client that does not trust the issuer's certificate never gets through.
        stranger = ssl.create_default_context()
        with Iso8583Client(url, terminal_id, key, ssl_context=stranger, retries=0) as host:
            assert not host.echo()
            with pytest.raises(HostUnreachableError):
                host.reverse("txn_aaaaaaaaaaaaaaaa")
    assert balances(w) == (10_000, 1500)


def test_silent_sockets_are_dropped_after_the_handshake_timeout(
    issuer: IssuerApp, rsa_keys: dict[str, SigningKey], tmp_path: Path
) -> None:
    """Sockets that never send a ClientHello, or send bytes that are not TLS, are
    closed by the listener (not after asyncio's 60 s), and a terminal still gets
    through meanwhile."""
    w = make_world(issuer, rsa_keys)
    terminal_id, key = w.auth.removeprefix("Bearer ").split(":", 1)
    server_cert, server_key = _certificate(tmp_path, "issuer", ip=True)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(server_cert, server_key)
    sock = socket.create_server(("127.0.0.1", 0))
    server = Iso8583Server(Iso8583Handler(w.app), sock, ssl_context=server_ctx,
                           handshake_timeout=0.5)  # fmt: skip
    address = sock.getsockname()
    with serving(server):
        silent = [socket.create_connection(address, timeout=5) for _ in range(10)]
        noisy = socket.create_connection(address, timeout=5)
        noisy.sendall(b"\x00\x2e0800" + bytes(42))  # ISO 8583 in clear on a TLS port
        try:
            client_ctx = ssl.create_default_context(cafile=server_cert)
            url = f"iso8583s://127.0.0.1:{address[1]}"
            with Iso8583Client(url, terminal_id, key, ssl_context=client_ctx) as host:
                assert host.echo()
            for conn in [*silent, noisy]:
                assert closed_by_server(conn, 3.0)
        finally:
            for conn in [*silent, noisy]:
                conn.close()
