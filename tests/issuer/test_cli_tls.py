"""The issuer's TLS through its command line (click's CliRunner): ``issuer init`` makes
the CA and server certificate (or imports them) and a failed init leaves no TLS
folder; ``terminal add`` and ``renew`` issue certificates (a new key written once,
mode 0600, never printed; or a request signed); ``terminal revoke`` revokes them;
``tls renew-server`` gives a running server a new certificate on reload; and the
service's context from the home accepts exactly the terminals it issued to."""

from __future__ import annotations

import http.client
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from emvwire.pki import (
    certificate_pem,
    hex_pairs,
    identity_of,
    issue_server,
    make_ca,
    make_csr,
    new_key,
    private_key_pem,
)
from emvwire.tls import SERVER_CA, ClientTls
from issuer.bootstrap import open_issuer
from issuer.cli import cli
from issuer.pki import service_context, tls_folder
from tests.support.servers import TlsHttpServer, serving

PASS = "tls cli passphrase"


class Home:
    """An issuer home driven through the CLI."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.runner = CliRunner(
            env={"TAPSTACK_KEYSTORE_KEY": PASS, "TAPSTACK_DB": None, "TAPSTACK_ISSUER_HOME": None}
        )

    def run(self, *args: str, code: int = 0) -> Result:
        result = self.runner.invoke(cli, ["--home", str(self.path), *args], catch_exceptions=False)
        assert result.exit_code == code, (args, result.stdout, result.stderr)
        assert "PRIVATE KEY" not in result.stdout + result.stderr
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = Home(tmp_path_factory.mktemp("tls-cli") / "home")
    home.run("init", "--kdf-cost", "10")
    return home.path


@pytest.fixture
def home(template: Path, tmp_path: Path) -> Home:
    import shutil

    shutil.copytree(template, tmp_path / "home")
    return Home(tmp_path / "home")


def test_init_makes_the_ca_and_server_certificate(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    made = home.json(
        "init", "--kdf-cost", "10", "--tls-host", "issuer.test", "--tls-host", "10.0.0.7"
    )
    tls = made["tls"]
    assert tls["server"]["hosts"] == ["issuer.test", "10.0.0.7"]
    assert tls["ca"]["subject"] == "CN=tapstack issuer terminal CA,O=tapstack"
    assert tls["server_ca_file"] == str(home.path / "tls" / SERVER_CA)
    for name in ("ca.key", "server.key"):
        path = home.path / "tls" / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    shown = home.json("tls", "show")
    assert shown["server"]["serial"] == tls["server"]["serial"]


def test_a_home_made_before_tls_gets_its_folder(home: Home) -> None:
    import shutil

    shutil.rmtree(home.path / "tls")
    made = home.json("tls", "init", "--host", "issuer.test")
    assert made["server"]["hosts"] == ["issuer.test"]
    home.run("tls", "init", code=4)  # one is there
    assert home.json("terminal", "add", "--merchant", "Shop", "--mcc", "5411")["certificate"]


def test_init_imports_a_ca_and_a_server_certificate(tmp_path: Path) -> None:
    ca, ca_key = make_ca("company terminal CA")
    public, public_key = make_ca("company web CA")
    leaf, key = issue_server(public, public_key, ["issuer.company.test"])
    files = {
        "ca.crt": certificate_pem(ca), "ca.key": private_key_pem(ca_key),
        "srv.crt": certificate_pem(leaf), "srv.key": private_key_pem(key),
        "web-ca.crt": certificate_pem(public),
    }  # fmt: skip
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    home = Home(tmp_path / "home")
    made = home.json(
        "init", "--kdf-cost", "10", "--tls-ca-cert", str(tmp_path / "ca.crt"),
        "--tls-ca-key", str(tmp_path / "ca.key"), "--tls-cert", str(tmp_path / "srv.crt"),
        "--tls-key", str(tmp_path / "srv.key"), "--tls-server-ca", str(tmp_path / "web-ca.crt"),
    )  # fmt: skip
    assert made["tls"]["ca"]["subject"] == ca.subject.rfc4514_string()
    assert made["tls"]["server"]["hosts"] == ["issuer.company.test"]
    assert (home.path / "tls" / SERVER_CA).read_bytes() == certificate_pem(public)
    added = home.json("terminal", "add", "--merchant", "Shop", "--mcc", "5411")
    cert = Path(added["certificate"]["cert_file"]).read_bytes()
    from cryptography import x509

    assert x509.load_pem_x509_certificate(cert).issuer == ca.subject


@pytest.mark.parametrize(
    "options",
    [
        ["--tls-cert", "{crt}"],  # without its key
        ["--tls-cert", "{crt}", "--tls-key", "{key}"],  # of a CA clients are not told
        ["--tls-host", "not a host!"],
    ],
)
def test_a_failed_init_leaves_nothing_behind(tmp_path: Path, options: list[str]) -> None:
    public, public_key = make_ca("their CA")
    leaf, key = issue_server(public, public_key, ["localhost"])
    (tmp_path / "srv.crt").write_bytes(certificate_pem(leaf))
    (tmp_path / "srv.key").write_bytes(private_key_pem(key))
    args = [o.format(crt=tmp_path / "srv.crt", key=tmp_path / "srv.key") for o in options]
    home = Home(tmp_path / "home")
    result = home.run("init", "--kdf-cost", "10", *args, code=2)
    assert "TLS" in result.stderr
    assert not (tmp_path / "home").exists()


def test_an_init_that_fails_at_its_end_removes_its_tls_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import issuer.bootstrap

    def fail(config: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(issuer.bootstrap, "save_config", fail)
    home = Home(tmp_path / "home")
    with pytest.raises(OSError, match="space"):
        home.runner.invoke(cli, ["--home", str(home.path), "init", "--kdf-cost", "10"],
                           catch_exceptions=False)  # fmt: skip
    assert not (home.path / "tls").exists()
    assert not (home.path / "config.json").exists()
    monkeypatch.undo()
    home.run("init", "--kdf-cost", "10")  # and it can be run again
    assert (home.path / "tls" / "server.crt").exists()


def test_terminal_add_writes_its_certificate_and_key_once(home: Home, tmp_path: Path) -> None:
    added = home.json("terminal", "add", "--merchant", "Shop", "--mcc", "5411",
                      "--cert-dir", str(tmp_path / "t"), "--days", "90")  # fmt: skip
    cert = added["certificate"]
    assert set(cert) == {"serial", "not_after", "fingerprint", "cert_file", "key_file",
                         "issuer_ca_file"}  # fmt: skip
    key_file = Path(cert["key_file"])
    assert key_file == tmp_path / "t" / f"{added['id']}.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    identity = identity_of(Path(cert["cert_file"]).read_bytes())
    assert (identity.kind, identity.id, identity.serial) == (
        "terminal",
        added["id"],
        cert["serial"],
    )
    assert cert["issuer_ca_file"] == str(home.path / "tls" / SERVER_CA)
    text = home.run("terminal", "add", "--merchant", "Cafe", "--mcc", "5814").stdout
    assert "mode 0600" in text
    assert "credential  tsk_" in text
    listed = home.json("terminal", "certs", added["id"])
    assert [(c["serial"], c["status"]) for c in listed] == [(cert["serial"], "active")]
    assert hex_pairs(cert["serial"]) in home.run("terminal", "certs", added["id"]).stdout


def test_terminal_add_signs_a_request_and_makes_no_key(home: Home, tmp_path: Path) -> None:
    key = new_key()
    (tmp_path / "t.csr").write_bytes(make_csr(key, "terminal", "mine"))
    added = home.json("terminal", "add", "--merchant", "Shop", "--mcc", "5411", "--csr",
                      str(tmp_path / "t.csr"), "--cert-dir", str(tmp_path / "t"))  # fmt: skip
    assert "key_file" not in added["certificate"]
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == [f"{added['id']}.crt"]
    (tmp_path / "bad.csr").write_bytes(b"garbage")
    before = len(home.json("terminal", "list"))
    home.run(
        "terminal",
        "add",
        "--merchant",
        "X",
        "--mcc",
        "5411",
        "--csr",
        str(tmp_path / "bad.csr"),
        code=2,
    )
    assert len(home.json("terminal", "list")) == before  # no terminal without its certificate


def test_renew_then_revoke_one_then_all(home: Home, tmp_path: Path) -> None:
    added = home.json("terminal", "add", "--merchant", "Shop", "--mcc", "5411")
    first = added["certificate"]["serial"]
    renewed = home.json("terminal", "renew", added["id"], "--cert-dir", str(tmp_path))
    second = renewed["certificate"]["serial"]
    assert second != first
    assert Path(renewed["certificate"]["key_file"]).exists()
    statuses = {c["serial"]: c["status"] for c in home.json("terminal", "certs", added["id"])}
    assert statuses == {first: "active", second: "active"}
    home.json("terminal", "revoke", added["id"], "--certificate", first)
    home.run("terminal", "revoke", added["id"], "--certificate", first, code=4)
    statuses = {c["serial"]: c["status"] for c in home.json("terminal", "certs", added["id"])}
    assert statuses == {first: "revoked", second: "active"}
    assert home.json("terminal", "revoke", added["id"])["status"] == "revoked"
    statuses = {c["serial"]: c["status"] for c in home.json("terminal", "certs", added["id"])}
    assert statuses == {first: "revoked", second: "revoked"}
    home.run("terminal", "renew", added["id"], code=4)  # a revoked terminal gets none


def _tls_get(port: int, tls: ClientTls) -> int:
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=tls.context())
    try:
        conn.request("GET", "/v1/health")
        return conn.getresponse().status
    finally:
        conn.close()


def test_the_home_serves_its_terminals_and_a_renewed_certificate_on_reload(home: Home) -> None:
    added = home.json("terminal", "add", "--merchant", "Shop", "--mcc", "5411")
    cert = added["certificate"]
    tls = ClientTls(cert["issuer_ca_file"], cert["cert_file"], cert["key_file"])
    with open_issuer(home.path, passphrase=PASS) as app:
        context = service_context(home.path, app.keys)
        with serving(TlsHttpServer(context, {"/v1/health": {"status": "ok"}})) as srv:
            assert _tls_get(srv.port, tls) == 200
            (seen,) = srv.seen
            assert seen.peer is not None
            assert app.certificates.allowed(seen.peer, app.service.terminal(added["id"]))
            old = home.json("tls", "show")["server"]["serial"]
            renewed = home.json("tls", "renew-server")["server"]["serial"]
            assert renewed != old
            tls_folder(home.path, app.keys).reload(context)  # what SIGHUP does
            assert _tls_get(srv.port, tls) == 200  # the terminal needs no change
            home.json("terminal", "revoke", added["id"])
            assert not app.certificates.allowed(seen.peer, app.service.terminal(added["id"]))
