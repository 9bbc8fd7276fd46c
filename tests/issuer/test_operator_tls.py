"""The operator API on the service's real server over mutual TLS (the issuer's CA, as
``issuer serve`` runs it), on both ledgers: an operator with its credential and its
certificate is served; its credential over a terminal's certificate, or a terminal's
credential over either certificate, is refused with 401 on the operator routes, and
the operator's credential and certificate on the terminal routes; a certificate of
another operator does not prove this one; a revocation by another process refuses the
next request; every answer keeps the connection's error shape."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from emvwire.pki import identity_of, make_csr, new_key, private_key_pem
from emvwire.tls import SERVER_CA, ClientTls, plan_folder
from issuer.bootstrap import IssuerApp
from issuer.domain.service import IssuerService
from issuer.pki import CA_NAME, TLS_DIR, add_operator, add_terminal, tls_folder
from issuer.service import Api, ServiceApp
from tests.support.servers import asgi_serving


@dataclass(frozen=True)
class Party:
    """An operator or a terminal: its id, Authorization header and TLS files."""

    id: str
    auth: str
    tls: ClientTls


@dataclass(frozen=True)
class Served:
    app: IssuerApp
    port: int
    ops: Party
    other: Party
    terminal: Party


def _files(home: Path, issued: Any, name: str) -> ClientTls:
    files = issued.write(home / "clients", name)
    return ClientTls(home / TLS_DIR / SERVER_CA, Path(files["cert_file"]), Path(files["key_file"]))


@pytest.fixture
def served(issuer: IssuerApp) -> Iterator[Served]:
    home = issuer.config.home
    folder = tls_folder(home, issuer.keys)
    folder.create(plan_folder(CA_NAME))
    s = issuer.service
    ops, ops_key, ops_cert = add_operator(s, folder, "Ada", ["operations"])
    other, other_key, other_cert = add_operator(s, folder, "Bob", ["read"])
    term, term_key, term_cert = add_terminal(s, folder, "Shop", "5411")
    parties = [
        Party(ops.id, f"Bearer {ops.id}:{ops_key}", _files(home, ops_cert, ops.id)),
        Party(other.id, f"Bearer {other.id}:{other_key}", _files(home, other_cert, other.id)),
        Party(term.id, f"Bearer {term.id}:{term_key}", _files(home, term_cert, term.id)),
    ]
    app = ServiceApp(Api(issuer, require_certificate=True))
    with asgi_serving(app, ssl_context=folder.server_context()) as (_, port):
        yield Served(issuer, port, *parties)


def _call(
    served: Served, tls: ClientTls, method: str, path: str, auth: str, body: Any = None
) -> tuple[int, Any]:
    conn = http.client.HTTPSConnection("127.0.0.1", served.port, context=tls.context(), timeout=10)
    try:
        headers = {"Authorization": auth}
        raw = None
        if method == "POST":
            raw = json.dumps(body).encode()
            headers |= {"Idempotency-Key": f"k-{id(raw)}", "Content-Type": "application/json"}
        conn.request(method, path, body=raw, headers=headers)
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        conn.close()


def test_an_operator_with_its_certificate_is_served(served: Served) -> None:
    ops = served.ops
    status, made = _call(served, ops.tls, "POST", "/v1/issuing/accounts", ops.auth, {"holder": "T"})
    assert (status, made["holder"]) == (201, "T")
    status, page = _call(served, ops.tls, "GET", "/v1/issuing/accounts?limit=1", ops.auth)
    assert (status, [a["id"] for a in page["data"]]) == (200, [made["id"]])
    record = served.app.service.audit_page(limit=1).data[0]
    assert (record.actor, record.action, record.object_id) == (
        f"operator:{ops.id}", "account.create", made["id"],
    )  # fmt: skip


@pytest.mark.parametrize(
    ("credential", "certificate"),
    [("terminal", "terminal"), ("terminal", "ops"), ("ops", "terminal"), ("ops", "other")],
)
def test_only_the_operators_own_pair_reaches_an_operator_route(
    served: Served, credential: str, certificate: str
) -> None:
    auth = getattr(served, credential).auth
    tls = getattr(served, certificate).tls
    for method, path in (("GET", "/v1/issuing/accounts"), ("POST", "/v1/issuing/accounts")):
        status, answer = _call(served, tls, method, path, auth, {"holder": "X"})
        assert (status, answer["error"]["code"]) == (401, "unauthorised"), (method, path)
    assert [a.holder for a in served.app.service.accounts()] == []


def test_an_operator_never_reaches_a_terminal_route(served: Served) -> None:
    ops, terminal = served.ops, served.terminal
    for tls in (ops.tls, terminal.tls):
        status, answer = _call(served, tls, "GET", "/v1/authorisations", ops.auth)
        assert (status, answer["error"]["code"]) == (401, "unauthorised")
    status, _ = _call(served, ops.tls, "GET", "/v1/authorisations", terminal.auth)
    assert status == 401  # the terminal's credential over the operator's certificate
    assert _call(served, terminal.tls, "GET", "/v1/authorisations", terminal.auth)[0] == 200


def test_a_revoked_operator_is_refused_from_its_next_request(
    served: Served, other: IssuerService
) -> None:
    ops = served.ops
    assert _call(served, ops.tls, "GET", "/v1/issuing/cards", ops.auth)[0] == 200
    other.revoke_operator(ops.id)
    status, answer = _call(served, ops.tls, "GET", "/v1/issuing/cards", ops.auth)
    assert (status, answer["error"]["code"]) == (401, "unauthorised")


def test_a_scope_refused_over_tls_is_403_and_audited(served: Served) -> None:
    reader = served.other
    status, answer = _call(
        served,
        reader.tls,
        "POST",
        "/v1/issuing/terminals",
        reader.auth,
        {"merchant": "M", "mcc": "5411"},
    )
    assert (status, answer["error"]["code"]) == (403, "forbidden")
    record = served.app.service.audit_page(limit=1, actor=f"operator:{reader.id}").data[0]
    assert (record.action, record.outcome) == ("terminal.add", "refused")


def test_a_terminal_made_through_the_api_with_a_request_is_served(
    served: Served, tmp_path: Path
) -> None:
    """The terminal's key never leaves it: the API signs its request (the id in the
    request is a placeholder, the CA names the new terminal) and answers the
    certificate once with the credential; then the terminal is served."""
    ops = served.ops
    key = new_key()
    csr = make_csr(key, "terminal", "term_placeholder").decode()
    body = {"merchant": "Kiosk", "mcc": "5814", "csr": csr}
    status, made = _call(served, ops.tls, "POST", "/v1/issuing/terminals", ops.auth, body)
    assert status == 201, made
    assert made["certificate"].startswith("-----BEGIN CERTIFICATE-----")
    assert identity_of(made["certificate"]).id == made["id"]
    (tmp_path / "t.crt").write_text(made["certificate"])
    (tmp_path / "t.key").write_bytes(private_key_pem(key))
    tls = ClientTls(served.ops.tls.ca, tmp_path / "t.crt", tmp_path / "t.key")
    auth = f"Bearer {made['id']}:{made['credential']}"
    assert _call(served, tls, "GET", "/v1/authorisations", auth)[0] == 200
    status, refused = _call(served, tls, "GET", "/v1/issuing/terminals", auth)
    assert (status, refused["error"]["code"]) == (401, "unauthorised")
    bad = {**body, "csr": "-----BEGIN CERTIFICATE REQUEST-----\nnope\n"}
    status, answer = _call(served, ops.tls, "POST", "/v1/issuing/terminals", ops.auth, bad)
    assert (status, answer["error"]["code"]) == (400, "invalid_request")
