"""The back office's certificate side: ``backoffice init`` makes its CA for gates and
its server certificate (or imports one; a bad import leaves no home), ``gate add``
and ``renew`` issue gate certificates (a new key written once, mode 0600, never
printed; or a request signed), ``gate revoke`` revokes the gate with them, and
:meth:`Store.certificate_allowed` is the per-request check of a gate's verified
client certificate. Its issuer client refuses plain HTTP unless told it is local
development."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from backoffice.cli import backoffice
from backoffice.store import Home, Store
from emvwire.pki import (
    certificate_pem,
    identity_of,
    issue_server,
    make_ca,
    make_csr,
    new_key,
    private_key_pem,
)
from emvwire.tls import SERVER_CA

Run = Callable[..., Result]


@pytest.fixture
def run(tmp_path: Path) -> Run:
    def invoke(*args: str, code: int = 0, home: Path | None = None) -> Result:
        result = CliRunner().invoke(
            backoffice, ["--home", str(home or tmp_path / "bo"), *args], catch_exceptions=False
        )
        assert result.exit_code == code, (args, result.stdout, result.stderr)
        assert "PRIVATE KEY" not in result.stdout + result.stderr
        return result

    return invoke


def _json(run: Run, *args: str) -> Any:
    return json.loads(run(*args, "--json").stdout)


def test_init_makes_the_gate_ca_and_the_server_certificate(run: Run, tmp_path: Path) -> None:
    made = _json(run, "init", "--tls-host", "backoffice.test")
    tls = made["tls"]
    assert tls["ca"]["subject"] == "CN=tapstack back office gate CA,O=tapstack"
    assert tls["server"]["hosts"] == ["backoffice.test"]
    assert tls["server_ca_file"] == str(tmp_path / "bo" / "tls" / SERVER_CA)
    for name in ("ca.key", "server.key"):
        assert stat.S_IMODE((tmp_path / "bo" / "tls" / name).stat().st_mode) == 0o600
    assert "gates verify the server with" in run("tls", "show").stdout


def test_init_imports_a_server_certificate_and_a_bad_import_makes_no_home(
    run: Run, tmp_path: Path
) -> None:
    public, public_key = make_ca("company web CA")
    leaf, key = issue_server(public, public_key, ["fares.company.test"])
    (tmp_path / "srv.crt").write_bytes(certificate_pem(leaf))
    (tmp_path / "srv.key").write_bytes(private_key_pem(key))
    (tmp_path / "web-ca.crt").write_bytes(certificate_pem(public))
    refused = run("init", "--tls-cert", str(tmp_path / "srv.crt"), "--tls-key",
                  str(tmp_path / "srv.key"), code=2)  # fmt: skip
    assert "clients verify it with" in refused.stderr
    assert not (tmp_path / "bo").exists()
    made = _json(run, "init", "--tls-cert", str(tmp_path / "srv.crt"), "--tls-key",
                 str(tmp_path / "srv.key"), "--tls-server-ca",
                 str(tmp_path / "web-ca.crt"))  # fmt: skip
    assert made["tls"]["server"]["hosts"] == ["fares.company.test"]
    assert (tmp_path / "bo" / "tls" / SERVER_CA).read_bytes() == certificate_pem(public)
    run("tls", "renew-server", code=4)  # not of its CA: the company renews it


def test_gate_add_issues_its_certificate_with_a_key_written_once(run: Run, tmp_path: Path) -> None:
    run("init")
    gate = _json(run, "gate", "add", "--name", "Central")
    cert = gate["certificate"]
    key_file = Path(cert["key_file"])
    assert key_file == tmp_path / "bo" / "gates" / f"{gate['gate_id']}.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    identity = identity_of(Path(cert["cert_file"]).read_bytes())
    assert (identity.kind, identity.id, identity.serial) == (
        "gate",
        gate["gate_id"],
        cert["serial"],
    )
    assert cert["backoffice_ca_file"] == str(tmp_path / "bo" / "tls" / SERVER_CA)
    text = run("gate", "add", "--name", "North").stdout
    assert "(its key, mode 0600" in text


def test_gate_add_signs_a_request_and_a_bad_one_adds_no_gate(run: Run, tmp_path: Path) -> None:
    run("init")
    key = new_key()
    (tmp_path / "g.csr").write_bytes(make_csr(key, "gate", "whatever"))
    gate = _json(run, "gate", "add", "--name", "Central", "--csr", str(tmp_path / "g.csr"),
                 "--cert-dir", str(tmp_path / "g"))  # fmt: skip
    assert "key_file" not in gate["certificate"]
    cert = Path(gate["certificate"]["cert_file"]).read_bytes()
    from cryptography import x509

    assert x509.load_pem_x509_certificate(cert).public_key() == key.public_key()
    (tmp_path / "bad.csr").write_bytes(b"nope")
    run("gate", "add", "--name", "X", "--csr", str(tmp_path / "bad.csr"), code=2)
    assert [g["gate_id"] for g in _json(run, "gate", "list")["gates"]] == [gate["gate_id"]]


def test_renew_revoke_and_the_per_request_check(run: Run, tmp_path: Path) -> None:
    run("init")
    first = _json(run, "gate", "add", "--name", "Central")
    other = _json(run, "gate", "add", "--name", "North")
    gate_id = first["gate_id"]
    renewed = _json(run, "gate", "renew", gate_id, "--cert-dir", str(tmp_path / "new"))
    pems = [
        Path(c["cert_file"]).read_bytes() for c in (first["certificate"], renewed["certificate"])
    ]
    other_pem = Path(other["certificate"]["cert_file"]).read_bytes()
    home = Home(tmp_path / "bo")
    with Store(home) as store:
        assert all(store.certificate_allowed(p, gate_id) for p in pems)  # no downtime
        assert not store.certificate_allowed(other_pem, gate_id)  # another gate's
        assert not store.certificate_allowed(pems[0], other["gate_id"])
        stray = home.tls.issue_client("gate", gate_id).pem  # never recorded
        assert not store.certificate_allowed(stray, gate_id)
        assert not store.certificate_allowed(
            home.tls.issue_client("terminal", gate_id).pem, gate_id
        )
        assert not store.certificate_allowed("garbage", gate_id)
        assert [c["serial"] for c in store.gate_certificates(gate_id)] == [
            first["certificate"]["serial"], renewed["certificate"]["serial"],
        ]  # fmt: skip
    revoked = _json(run, "gate", "revoke", gate_id)
    assert revoked == {"gate_id": gate_id, "revoked": True, "certificates_revoked": 2}
    with Store(home) as store:
        assert not any(store.certificate_allowed(p, gate_id) for p in pems)
        assert store.certificate_allowed(other_pem, other["gate_id"])
        assert not store.authenticate(gate_id, first["key"])
    run("gate", "revoke", gate_id, code=3)  # revoked already: no such gate
    run("gate", "renew", gate_id, code=3)


def test_an_expired_gate_certificate_is_refused(tmp_path: Path) -> None:
    home = Home(tmp_path / "bo")
    home.init()
    with Store(home) as store:
        old = datetime.now(UTC) - timedelta(days=3)
        issued: list[Any] = []

        def certify(gate_id: str) -> Any:
            issued.append(home.tls.issue_client("gate", gate_id, days=1, now=old))
            return issued[-1]

        gate_id, _ = store.add_gate("Central", None, certify)
        assert not store.certificate_allowed(issued[0].pem, gate_id)


def test_a_home_without_tls_says_so_and_gets_one(run: Run, tmp_path: Path) -> None:
    run("init")
    Home(tmp_path / "bo").tls.remove()
    assert "backoffice tls init" in run("gate", "add", "--name", "Central", code=10).stderr
    run("tls", "init", "--host", "gates.test")
    assert _json(run, "gate", "add", "--name", "Central")["gate_id"] == "G1"
    run("tls", "init", code=4)  # one is there


def test_the_issuer_client_refuses_plain_http_unless_told(run: Run, tmp_path: Path) -> None:
    run("init")
    issuer = ["--issuer", "http://127.0.0.1:9", "--terminal-id", "term_1", "--terminal-key", "k"]
    refused = run("aggregate", *issuer, code=2)
    assert "plain HTTP" in refused.stderr
    assert "--dev-plain-http" in refused.stderr
    run("aggregate", *issuer, "--dev-plain-http")  # a pass: the issuer just does not answer
    secure = ["--issuer", "https://127.0.0.1:9", "--terminal-id", "term_1", "--terminal-key", "k"]
    missing = run("aggregate", *secure, "--issuer-ca", str(tmp_path / "none.crt"), code=2)
    assert "none.crt" in missing.stderr
    half = run("aggregate", *secure, "--cert", str(tmp_path / "c.crt"), code=2)
    assert "key" in half.stderr
