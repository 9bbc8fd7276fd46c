"""The gate's BackOfficeClient over mutual TLS to the real back office (its ASGI app
on the services' server with the back office's own server context, as `backoffice
serve` runs it): a gate with its certificate is served; a gate without one, or with an
expired or another CA's, is refused at the handshake; another gate's credential with
this gate's certificate is refused; a back office it cannot verify gets nothing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from backoffice.service import make_app
from backoffice.store import Home, Store
from emvwire.pki import certificate_pem, issue_client, make_ca, new_key, private_key_pem
from emvwire.tls import SERVER_CA, ClientTls, IssuedCertificate
from terminal.apps.uploader import (
    BackOfficeClient,
    BackOfficeLinkError,
    BackOfficeUnreachableError,
)
from tests.support.servers import asgi_serving

Office = tuple[Home, str, dict[str, Any]]


@pytest.fixture
def office(tmp_path: Path) -> Iterator[Office]:
    home = Home(tmp_path / "backoffice")
    home.init()
    issued: list[IssuedCertificate] = []

    def certify(gate_id: str) -> IssuedCertificate:
        issued.append(home.tls.issue_client("gate", gate_id))
        return issued[-1]

    with Store(home) as store:
        gate_id, key = store.add_gate("Central", None, certify)
        other_id, other_key = store.add_gate("North", None, certify)
    files = issued[0].write(tmp_path / "gate", gate_id)
    gate = {
        "gate_id": gate_id, "key": key, "pem": issued[0].pem, **files,
        "other_id": other_id, "other_key": other_key,
    }  # fmt: skip
    app = make_app(home, require_certificate=True)
    with closing(app), asgi_serving(app, ssl_context=home.tls.server_context()) as (host, port):
        yield home, f"https://{host}:{port}", gate


def _client(office: Office, tls: ClientTls) -> BackOfficeClient:
    _, url, gate = office
    return BackOfficeClient(url, gate["gate_id"], gate["key"], tls=tls, timeout=5)


def test_a_gate_with_its_certificate_is_served(office: Office) -> None:
    home, _, gate = office
    tls = ClientTls(home.tls.file(SERVER_CA), gate["cert_file"], gate["key_file"])
    with closing(_client(office, tls)) as client:
        assert client.deny_list(0) == {"version": 0, "full": True, "add": [], "remove": []}
        with pytest.raises(BackOfficeLinkError) as malformed:  # served: it read the body
            client.post_taps([{"tap_id": "nonsense"}])
        assert malformed.value.status == 400
    with Store(home) as store:
        assert store.certificate_allowed(gate["pem"], gate["gate_id"])


def test_a_gate_without_a_valid_certificate_is_refused(office: Office, tmp_path: Path) -> None:
    home, _, gate = office
    ca = home.tls.file(SERVER_CA)
    ended = datetime.now(UTC) - timedelta(days=3)
    old = home.tls.issue_client("gate", gate["gate_id"], days=1, now=ended).write(tmp_path, "old")
    other, other_key = make_ca("not the back office")
    key = new_key()
    foreign = issue_client(other, other_key, key.public_key(), "gate", gate["gate_id"])
    (tmp_path / "x.crt").write_bytes(certificate_pem(foreign))
    (tmp_path / "x.key").write_bytes(private_key_pem(key))
    for tls in (
        ClientTls(ca),
        ClientTls(ca, old["cert_file"], old["key_file"]),
        ClientTls(ca, tmp_path / "x.crt", tmp_path / "x.key"),
    ):
        with closing(_client(office, tls)) as client, pytest.raises(BackOfficeUnreachableError):
            client.deny_list(0)


def test_a_back_office_the_gate_cannot_verify_gets_nothing(office: Office, tmp_path: Path) -> None:
    _, _, gate = office
    stranger = tmp_path / "stranger-ca.crt"
    stranger.write_bytes(certificate_pem(make_ca("stranger")[0]))
    tls = ClientTls(stranger, gate["cert_file"], gate["key_file"])
    with (
        closing(_client(office, tls)) as client,
        pytest.raises(BackOfficeUnreachableError, match="certificate verify failed"),
    ):
        client.post_taps([{"tap_id": "G1:1"}])


def test_plain_http_needs_the_local_development_flag() -> None:
    with pytest.raises(ValueError, match="--dev-plain-http"):
        BackOfficeClient("http://127.0.0.1:8700", "G1", "k")


def test_another_gates_credential_with_this_gates_certificate_is_refused(office: Office) -> None:
    home, url, gate = office
    tls = ClientTls(home.tls.file(SERVER_CA), gate["cert_file"], gate["key_file"])
    with closing(BackOfficeClient(url, gate["other_id"], gate["other_key"], tls=tls)) as client:
        with pytest.raises(BackOfficeLinkError) as refused:
            client.deny_list(0)
        assert refused.value.status == 401
    with Store(home) as store:  # the certificate names the first gate, not the other
        assert not store.certificate_allowed(gate["pem"], gate["other_id"])
