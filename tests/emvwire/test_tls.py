"""emvwire.tls against a small TLS server of the test: a client of the CA gets through;
no client certificate, another CA's and an expired one are refused at the handshake,
before any request is read; a client refuses a server it cannot verify or whose name
does not match. And a service's TLS folder: made whole or not at all, its server
certificate renewed and taken up by a running server without a restart."""

from __future__ import annotations

import http.client
import ssl
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from emvwire.pki import (
    PkiError,
    certificate_pem,
    identity_of,
    issue_server,
    make_ca,
    make_csr,
    new_key,
    private_key_pem,
)
from emvwire.tls import (
    CA_CERT,
    CA_KEY,
    DEV_PLAIN_HTTP,
    SERVER_CA,
    SERVER_CERT,
    SERVER_KEY,
    ClientTls,
    PlainHttpError,
    TlsFolder,
    client_context,
    plan_folder,
    reload_server_certificate,
    server_context,
)
from tests.support.servers import TlsHttpServer, serving
from tests.support.tls import Client, TestPki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def server(pki: TestPki) -> Iterator[TlsHttpServer]:
    with serving(
        TlsHttpServer(pki.service.server_context(), {"/v1/health": {"status": "ok"}})
    ) as srv:
        yield srv


def _get(
    srv: TlsHttpServer, context: ssl.SSLContext, host: str = "127.0.0.1", path: str = "/v1/health"
) -> tuple[int, bytes]:
    conn = http.client.HTTPSConnection(host, srv.port, timeout=5, context=context)
    try:
        conn.request("GET", path, headers={"Authorization": "Bearer T1:k"})
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


def test_a_client_of_the_ca_gets_through_and_is_named(pki: TestPki, server: TlsHttpServer) -> None:
    client = pki.client("terminal", "term_1")
    context = client.tls(pki.server_ca).context()
    assert _get(server, context) == (200, b'{"status": "ok"}')
    (seen,) = server.seen
    assert seen.authorization == "Bearer T1:k"
    assert seen.peer is not None
    assert identity_of(seen.peer) == identity_of(client.pem)
    assert not server.refused


def test_both_sides_speak_tls_1_2_at_least(pki: TestPki, server: TlsHttpServer) -> None:
    assert pki.service.server_context().minimum_version == ssl.TLSVersion.TLSv1_2
    context = pki.client("terminal", "term_1").tls(pki.server_ca).context()
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)
    old = pki.client("terminal", "term_1").tls(pki.server_ca).context()
    with pytest.warns(DeprecationWarning, match="TLSv1_1"):  # a client insisting on 1.1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError):
        _get(server, old)
    assert not server.seen


def _refused(server: TlsHttpServer, context: ssl.SSLContext) -> None:
    """The handshake fails on the server's side; the client sees it as a TLS or
    connection error (TLS 1.3: at its first read); no request reaches the handler."""
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _get(server, context)
    assert server.wait_refused()
    assert not server.seen


def test_a_client_without_a_certificate_is_refused_before_any_request(
    pki: TestPki, server: TlsHttpServer
) -> None:
    _refused(server, client_context(pki.server_ca))
    assert "certificate" in server.refused[0].lower()


def test_a_certificate_of_another_ca_is_refused(pki: TestPki, server: TlsHttpServer) -> None:
    _refused(server, pki.foreign("terminal", "term_1").tls(pki.server_ca).context())
    assert "certificate verify failed" in server.refused[0]


def test_an_expired_certificate_is_refused(pki: TestPki, server: TlsHttpServer) -> None:
    _refused(server, pki.expired("terminal", "term_1").tls(pki.server_ca).context())
    assert "expired" in server.refused[0]


def test_the_client_refuses_a_server_of_another_ca(pki: TestPki, server: TlsHttpServer) -> None:
    context = pki.client("terminal", "term_1").tls(pki.other_ca_file()).context()
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        _get(server, context)
    assert not server.seen


def test_the_client_refuses_a_server_of_another_name(tmp_path: Path) -> None:
    named = TestPki(tmp_path, hosts=("issuer.example",))
    client = named.client("terminal", "term_1")
    with serving(TlsHttpServer(named.service.server_context(), {"/": {}})) as srv:
        with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
            _get(srv, client.tls(named.server_ca).context(), path="/")
        assert not srv.seen


def test_a_client_needs_its_certificate_and_its_key_together(pki: TestPki) -> None:
    client = pki.client("gate", "G1")
    with pytest.raises(PkiError, match="needs its key"):
        client_context(pki.server_ca, client.cert, None)
    with pytest.raises(PkiError, match="server CA"):
        client_context(pki.folder / "missing.crt")
    other = pki.client("gate", "G2")
    with pytest.raises(PkiError, match="client certificate"):
        client_context(pki.server_ca, client.cert, other.key)


def test_plain_http_only_for_local_development() -> None:
    with pytest.raises(PlainHttpError, match="--dev-plain-http"):
        ClientTls().for_url("http://127.0.0.1:8583")
    parts, context = DEV_PLAIN_HTTP.for_url("http://127.0.0.1:8583")
    assert (parts.hostname, parts.port, context) == ("127.0.0.1", 8583, None)
    _, secure = DEV_PLAIN_HTTP.for_url("https://127.0.0.1:8583")
    assert secure is not None
    assert secure.verify_mode == ssl.CERT_REQUIRED
    for url in ("ftp://x", "127.0.0.1:80", "https://"):
        with pytest.raises(PkiError, match="URL"):
            ClientTls().for_url(url)


# -- a service's TLS folder -------------------------------------------------------------


def test_a_folder_holds_its_five_files_keys_0600_and_encrypted(tmp_path: Path) -> None:
    folder = TlsFolder(tmp_path / "tls", b"x" * 64)
    folder.create(plan_folder("CA"))
    assert folder.exists()
    for name in (CA_KEY, SERVER_KEY):
        path = folder.file(name)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert folder.file(SERVER_CA).read_bytes() == folder.file(CA_CERT).read_bytes()
    assert folder.server_context().verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(PkiError):
        TlsFolder(tmp_path / "tls", b"wrong").server_context()
    with pytest.raises(PkiError, match="exists"):
        folder.create(plan_folder("CA"))
    assert [p.name for p in tmp_path.iterdir()] == ["tls"]


def test_a_bad_import_writes_nothing(tmp_path: Path) -> None:
    ca, ca_key = make_ca("their CA")
    leaf, key = issue_server(ca, ca_key, ["localhost"])
    with pytest.raises(PkiError, match="clients verify it with"):
        plan_folder("ours", server_cert=certificate_pem(leaf), server_key=private_key_pem(key))
    with pytest.raises(PkiError, match="not the key"):
        plan_folder(
            "ours", server_cert=certificate_pem(leaf), server_key=private_key_pem(new_key())
        )
    with pytest.raises(PkiError, match="goes with its key"):
        plan_folder("ours", ca_cert=certificate_pem(ca))
    with pytest.raises(PkiError, match="not a CA"):
        plan_folder("ours", ca_cert=certificate_pem(leaf), ca_key=private_key_pem(key))
    assert not list(tmp_path.iterdir())


def test_a_folder_write_that_fails_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import emvwire.tls

    def full_disk(path: Path, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(emvwire.tls, "write_public", full_disk)
    with pytest.raises(OSError, match="space"):
        TlsFolder(tmp_path / "tls").create(plan_folder("CA"))
    assert not list(tmp_path.iterdir())


def test_imported_ca_and_server_certificate(tmp_path: Path) -> None:
    ca, ca_key = make_ca("company CA")
    public, public_key = make_ca("public CA")
    leaf, key = issue_server(public, public_key, ["issuer.example"])
    folder = TlsFolder(tmp_path / "tls")
    folder.create(
        plan_folder(
            "unused", ca_cert=certificate_pem(ca), ca_key=private_key_pem(ca_key),
            server_cert=certificate_pem(leaf), server_key=private_key_pem(key),
            server_ca=certificate_pem(public),
        )
    )  # fmt: skip
    assert folder.ca_certificate() == ca
    assert folder.file(SERVER_CA).read_bytes() == certificate_pem(public)
    issued = folder.issue_client("gate", "G1", csr=make_csr(new_key(), "gate", "G1"))
    assert issued.key_pem is None
    assert issued.certificate.issuer == ca.subject
    with pytest.raises(PkiError, match="import its renewal"):
        folder.renew_server(["issuer.example"])


def test_a_renewed_server_certificate_is_served_after_a_reload(tmp_path: Path) -> None:
    pki = TestPki(tmp_path)
    context = pki.service.server_context()
    client = pki.client("terminal", "term_1").tls(pki.server_ca).context()
    with serving(TlsHttpServer(context, {"/": {}})) as srv:

        def served_serial() -> int:
            conn = http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=5, context=client)
            conn.connect()
            assert isinstance(conn.sock, ssl.SSLSocket)
            der = conn.sock.getpeercert(binary_form=True)
            conn.close()
            assert der is not None
            return x509.load_der_x509_certificate(der).serial_number

        old = pki.service.server_certificate()
        assert served_serial() == old.serial_number
        new = pki.service.renew_server(["localhost", "127.0.0.1"])
        assert new.serial_number != old.serial_number
        assert served_serial() == old.serial_number  # the running context keeps it...
        pki.service.reload(context)
        assert served_serial() == new.serial_number  # ... until the reload: no restart
        assert _get(srv, client, path="/")[0] == 200


def test_a_reload_with_a_bad_pair_keeps_the_running_certificate(tmp_path: Path) -> None:
    pki = TestPki(tmp_path)
    context = pki.service.server_context()
    other = TestPki(tmp_path / "other")
    with pytest.raises(PkiError):
        reload_server_certificate(
            context, pki.service.file(SERVER_CERT), other.service.file(SERVER_KEY)
        )
    client = pki.client("terminal", "t").tls(pki.server_ca).context()
    with serving(TlsHttpServer(context, {"/": {}})) as srv:
        assert _get(srv, client, path="/")[0] == 200


def test_server_context_names_its_files_when_they_do_not_load(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="server certificate"):
        server_context(tmp_path / "a.crt", tmp_path / "a.key", tmp_path / "ca.crt")


def test_a_client_file_set_for_a_terminal(pki: TestPki) -> None:
    client: Client = pki.client("terminal", "term_9")
    assert stat.S_IMODE(client.key.stat().st_mode) == 0o600
    assert identity_of(client.cert.read_bytes()).id == "term_9"
