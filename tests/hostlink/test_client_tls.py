"""hostlink.HostClient over TLS, against a TLS server of the test answering contract
messages: the terminal's certificate reaches the server with its bearer credential;
a server it cannot verify is no answer (nothing sent), and so is a server that refuses
its certificate; an http:// URL is refused unless local development says so."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emvwire.pki import identity_of
from emvwire.tls import DEV_PLAIN_HTTP, ClientTls
from hostlink import HostClient, HostUnreachableError
from tests.support.servers import TlsHttpServer, serving
from tests.support.tls import TestPki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def issuer(pki: TestPki) -> Iterator[TlsHttpServer]:
    answers = {"/v1/authorisations": {"data": []}}
    with serving(TlsHttpServer(pki.service.server_context(), answers)) as srv:
        yield srv


def test_the_terminal_proves_who_its_credential_names(pki: TestPki, issuer: TlsHttpServer) -> None:
    tls = pki.client("terminal", "term_1").tls(pki.server_ca)
    with HostClient(issuer.url(), "term_1", "tsk_secret", tls=tls) as host:
        assert host.transactions(limit=5) == []
        assert host.transactions() == []  # one keep-alive connection
    first, second = issuer.seen
    assert (first.method, first.path) == ("GET", "/v1/authorisations?limit=5")
    assert first.authorization == "Bearer term_1:tsk_secret"
    assert first.peer is not None
    assert identity_of(first.peer).id == "term_1"
    assert second.peer == first.peer


def test_a_host_name_of_the_certificate_works_too(pki: TestPki, issuer: TlsHttpServer) -> None:
    tls = pki.client("terminal", "term_1").tls(pki.server_ca)
    with HostClient(issuer.url("localhost"), "term_1", "k", tls=tls) as host:
        assert host.transactions() == []


def test_a_server_it_cannot_verify_gets_nothing(
    pki: TestPki, issuer: TlsHttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    tls = pki.client("terminal", "term_1").tls(pki.other_ca_file())
    with HostClient(issuer.url(), "term_1", "k", tls=tls, retries=0) as host:
        with pytest.raises(HostUnreachableError, match=r"TLS: .*certificate verify failed"):
            host.transactions()
        outcome = host.authorise(b"\x9f\x26\x08" + bytes(8), bytes(10))
    assert (outcome.approved, outcome.answered, outcome.response_code) == (False, False, "Z3")
    assert not issuer.seen
    assert "TLS with the issuer" in caplog.text


def test_a_server_that_refuses_the_certificate_is_no_answer(
    pki: TestPki, issuer: TlsHttpServer
) -> None:
    for tls in (ClientTls(pki.server_ca), pki.expired("terminal", "term_1").tls(pki.server_ca)):
        host = HostClient(issuer.url(), "term_1", "k", tls=tls, retries=0)
        with host, pytest.raises(HostUnreachableError):
            host.transactions()
    assert not issuer.seen


def test_plain_http_needs_the_local_development_flag() -> None:
    with pytest.raises(ValueError, match="plain HTTP"):
        HostClient("http://127.0.0.1:8583", "term_1", "k")
    assert repr(HostClient("http://127.0.0.1:8583", "term_1", "k", tls=DEV_PLAIN_HTTP)) == (
        "HostClient(127.0.0.1:8583)"
    )
    assert repr(HostClient("https://issuer.example", "term_1", "k")) == (
        "HostClient(issuer.example:443)"
    )
    with pytest.raises(ValueError, match="client certificate"):
        HostClient(
            "https://issuer.example",
            "term_1",
            "k",
            tls=ClientTls(cert="/nonexistent.crt", key="/nonexistent.key"),
        )
