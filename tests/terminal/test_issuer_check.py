"""``terminal pay`` checks its issuer before it asks for a card, and an issuer that stops
answering is its own outcome, never a decline (clikit.exits: 7 unreachable, 6 refused).

The software card is tapped in process (``emulated:``); its counters live in the state
folder, where ``card show`` reads its ATC: an ATC that did not move is a card that was
not asked for. A real issuer over mutual TLS is in tests/e2e/test_terminal_issuer.py;
here the issuer is a closed port, or a server of the test that accepts the check and
then drops the authorisation (the outage after the tap).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from card.cli import cli as card_cli
from terminal.cli import cli
from tests.support import e2e
from tests.support.servers import serving

CARDS = Path(__file__).resolve().parents[2] / "fixtures" / "cards"
#: No issuer or TLS setting of the environment leaks into these runs.
CLEAN: dict[str, str | None] = {name: None for name in e2e.TERMINAL_SETTINGS}


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    """A Visa card profile of its own (its own counters file in the state folder)."""
    path = tmp_path / "visa-card.json"
    shutil.copy(CARDS / "visa-card.json", path)
    return path


def atc(profile: Path) -> int:
    """The card's ATC as ``card show`` reads it from the state folder."""
    shown = CliRunner().invoke(card_cli, ["show", str(profile), "--json"])
    assert shown.exit_code == 0, shown.output
    return int(json.loads(shown.stdout)["applications"][0]["counters"]["atc"])


def pay(profile: Path, *args: str) -> Result:
    return CliRunner(env=CLEAN).invoke(
        cli, ["pay", "--reader", f"emulated:{profile}", "--amount", "1.00", *args]
    )


def test_an_issuer_on_a_closed_port_is_unreachable_and_the_card_not_asked(profile: Path) -> None:
    before = atc(profile)
    down = pay(profile, "--issuer", e2e.unused_url(), "--terminal-id", "term_1",
               "--terminal-key", "k", "--json")  # fmt: skip
    assert down.exit_code == 7, down.output
    error = json.loads(down.stdout)["error"]
    assert (error["code"], error["exit"]) == ("unreachable", 7)
    assert "is unreachable; no card was asked for, nothing was charged" in error["message"]
    assert "check --issuer" in error["message"]
    assert "Present a card" not in down.stderr
    assert atc(profile) == before
    text = pay(profile, "--issuer", e2e.unused_url(), "--terminal-id", "t", "--terminal-key", "k")
    assert text.exit_code == 7
    assert text.stdout == ""  # no verdict: there was no transaction
    assert "declined" not in text.stderr
    tapped = pay(profile)  # without an issuer the card is tapped: its ATC moves
    assert tapped.exit_code == 0, tapped.output
    assert atc(profile) == before + 1


class _DropsAuthorisations(BaseHTTPRequestHandler):
    """An issuer that accepts the terminal's check (an empty transaction list) and
    then never answers: every POST (the authorisation, its reversal) loses its
    connection. Requests are recorded on the server (``seen``)."""

    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.seen.append(("GET", self.path))
        body = b'{"data": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.server.seen.append(("POST", self.path))
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.close_connection = True  # no answer: the connection just ends


@pytest.fixture
def outage() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DropsAuthorisations)
    server.daemon_threads = True
    server.seen = []  # type: ignore[attr-defined]
    with serving(server) as running:
        yield running


def test_an_issuer_lost_after_the_tap_is_unreachable_not_declined(
    profile: Path, outage: ThreadingHTTPServer
) -> None:
    before = atc(profile)
    url = f"http://127.0.0.1:{outage.server_address[1]}"
    done = pay(profile, "--issuer", url, "--terminal-id", "term_1", "--terminal-key", "k",
               "--dev-plain-http", "--json")  # fmt: skip
    assert done.exit_code == 7, done.output
    summary = json.loads(done.stdout)
    assert summary["outcome"] == "unreachable"
    assert summary["online"]["answered"] is False
    assert summary["online"]["reversed"] is False
    assert summary["error"]["code"] == "unreachable"
    assert "nothing was charged" in summary["error"]["message"]
    assert atc(profile) == before + 1  # the card was tapped: the check had passed
    seen = outage.seen  # type: ignore[attr-defined]
    assert seen[0] == ("GET", "/v1/authorisations?limit=1")  # the check, before the tap
    assert ("POST", "/v1/authorisations") in seen
    assert ("POST", "/v1/reversals") in seen  # the reversal was attempted
    text = pay(profile, "--issuer", url, "--terminal-id", "term_1", "--terminal-key", "k",
               "--dev-plain-http")  # fmt: skip
    assert text.exit_code == 7
    first, second = text.stdout.splitlines()[:2]
    assert first == "UNREACHABLE: 1.00 EUR, VISA CREDIT 476173******0010"
    assert second == (
        f"  Issuer unreachable, no charge: {url} did not answer (reversal not confirmed)"
    )
    assert "DECLINED" not in text.stdout


def test_pay_help_says_the_issuer_is_checked_first() -> None:
    shown = CliRunner().invoke(cli, ["pay", "--help"])
    assert shown.exit_code == 0
    text = " ".join(shown.output.split())
    assert "before it asks for a card it checks that the issuer answers" in text
    assert "no issuer connection" not in text


class _RefusesEveryone(BaseHTTPRequestHandler):
    """An issuer that knows no terminal: 401 to everything."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = b'{"error": {"code": "unauthorised", "message": "unknown terminal"}}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_the_parking_lane_stops_when_refused_and_serves_on_when_unreachable(
    profile: Path, tmp_path: Path
) -> None:
    """Refused: a wrong credential never heals, so the lane stops before any tap
    (exit 6). Unreachable: cars must still leave, so the lane warns and serves on."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RefusesEveryone)
    server.daemon_threads = True
    args = ["gate", "parking", "--reader", f"emulated:{profile}", "--home",
            str(tmp_path / "park"), "--taps", "1", "--terminal-id", "term_1",
            "--terminal-key", "wrong", "--dev-plain-http"]  # fmt: skip
    before = atc(profile)
    with serving(server):
        url = f"http://127.0.0.1:{server.server_address[1]}"
        refused = CliRunner(env=CLEAN).invoke(cli, [*args, "--issuer", url])
    assert refused.exit_code == 6, refused.output
    assert "refused terminal term_1" in refused.stderr
    assert atc(profile) == before
    down = CliRunner(env=CLEAN).invoke(cli, [*args, "--issuer", e2e.unused_url(), "--json"])
    assert down.exit_code == 0, down.output
    assert "is unreachable" in down.stderr
    assert "the lane serves on (exits queued)" in down.stderr
    (tap,) = (json.loads(line) for line in down.stdout.splitlines())
    assert tap["open"] is False  # an entry waits for the issuer
