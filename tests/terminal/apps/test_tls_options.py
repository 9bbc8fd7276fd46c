"""The TLS options of the ``terminal`` commands (click's runner): an http:// issuer or
back office is refused, before any tap, unless ``--dev-plain-http`` (or its variable)
says this is local development; TLS files that do not load are usage errors naming
them; ``terminal csr`` makes a key that stays (mode 0600, never overwritten, never
printed) and a request a CA accepts."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from emvwire.pki import load_csr_key, load_private_key
from emvwire.seal import generate_keypair
from terminal.cli import cli

ROOT = Path(__file__).resolve().parents[3]
ONLINE = ["--issuer", "http://127.0.0.1:9", "--terminal-id", "term_1", "--terminal-key", "k"]
SECURE = ["--issuer", "https://127.0.0.1:9", "--terminal-id", "term_1", "--terminal-key", "k"]
#: No TLS setting of the environment leaks into these runs.
CLEAN = {name: None for name in ("TAPSTACK_ISSUER_CA", "TAPSTACK_TERMINAL_CERT",
                                 "TAPSTACK_TERMINAL_CERT_KEY", "TAPSTACK_DEV_PLAIN_HTTP",
                                 "TAPSTACK_ISSUER_URL", "TAPSTACK_BACKOFFICE_CA",
                                 "TAPSTACK_GATE_CERT", "TAPSTACK_GATE_CERT_KEY")}  # fmt: skip


@pytest.fixture
def reader(tmp_path: Path) -> str:
    copy = tmp_path / "visa-card.json"
    shutil.copy(ROOT / "fixtures" / "cards" / "visa-card.json", copy)
    return f"emulated:{copy}"


def _run(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner(env={**CLEAN, **(env or {})}).invoke(cli, list(args))


def test_pay_refuses_plain_http_before_the_tap(reader: str) -> None:
    refused = _run("pay", "--reader", reader, "--amount", "1.00", *ONLINE)
    assert refused.exit_code == 2
    assert "plain HTTP" in refused.output
    assert "--dev-plain-http" in refused.output
    assert "Present a card" not in refused.output


@pytest.mark.parametrize("how", [["--dev-plain-http"], []])
def test_pay_goes_online_in_plain_http_when_told(reader: str, how: list[str]) -> None:
    env = {} if how else {"TAPSTACK_DEV_PLAIN_HTTP": "1"}
    done = _run("pay", "--reader", reader, "--amount", "1.00", "--json", *ONLINE, *how, env=env)
    # plain HTTP accepted: the issuer is checked before the tap, and does not answer
    assert done.exit_code == 7, done.output
    assert json.loads(done.stdout)["error"]["code"] == "unreachable"
    assert "Present a card" not in done.stderr


def test_tls_files_that_do_not_load_are_usage_errors(reader: str, tmp_path: Path) -> None:
    missing = _run("pay", "--reader", reader, "--amount", "1", *SECURE,
                   "--issuer-ca", str(tmp_path / "ca.crt"))  # fmt: skip
    assert missing.exit_code == 2
    assert "ca.crt" in missing.output
    half = _run("pay", "--reader", reader, "--amount", "1", *SECURE,
                env={"TAPSTACK_TERMINAL_CERT": str(tmp_path / "t.crt")})  # fmt: skip
    assert half.exit_code == 2
    assert "needs its key" in half.output


def test_retail_and_parking_refuse_plain_http(reader: str, tmp_path: Path) -> None:
    retail = _run("retail", "--home", str(tmp_path / "till"), "--reader", reader,
                  "--amount", "1.00", *ONLINE)  # fmt: skip
    assert retail.exit_code == 2
    assert "plain HTTP" in retail.output
    parking = _run("gate", "parking", "--reader", reader, "--home", str(tmp_path / "park"),
                   "--taps", "1", *ONLINE)  # fmt: skip
    assert parking.exit_code == 2
    assert "plain HTTP" in parking.output


def test_the_transit_gate_refuses_a_plain_http_back_office(reader: str, tmp_path: Path) -> None:
    _, public = generate_keypair()
    args = ["gate", "transit", "--reader", reader, "--home", str(tmp_path / "gate"),
            "--gate-id", "G1", "--gate-key", "k", "--seal-key", public.hex(), "--taps", "1",
            "--backoffice", "http://127.0.0.1:9"]  # fmt: skip
    refused = _run(*args)
    assert refused.exit_code == 2
    assert "plain HTTP" in refused.output
    assert not (tmp_path / "gate").exists()  # nothing started
    half = _run(*args[:-1], "https://127.0.0.1:9", "--cert-key", str(tmp_path / "g.key"))
    assert half.exit_code == 2
    assert "needs its key" in half.output or "needs its certificate" in half.output


def test_csr_keeps_the_key_and_makes_a_request(tmp_path: Path) -> None:
    key, request = tmp_path / "t.key", tmp_path / "t.csr"
    done = _run("csr", "--id", "term_1", "--key-out", str(key), "--out", str(request), "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) == {"kind": "terminal", "id": "term_1", "key_file": str(key),
                                       "csr_file": str(request)}  # fmt: skip
    assert "PRIVATE KEY" not in done.output
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert load_csr_key(request.read_bytes()) == load_private_key(key.read_bytes()).public_key()
    again = _run("csr", "--id", "term_1", "--key-out", str(key), "--out", str(request))
    assert again.exit_code == 4  # conflict: the key file exists
    assert "never overwritten" in again.output
    bad = _run("csr", "--kind", "gate", "--id", "a:b", "--key-out", str(tmp_path / "g.key"),
               "--out", str(tmp_path / "g.csr"))  # fmt: skip
    assert bad.exit_code == 2
    assert not (tmp_path / "g.key").exists()
