"""``issuer webhook`` and ``issuer events`` through click's runner on an initialised home
(SQLite; the domain's tests run on both ledgers): the secret shown once (never in
the audit log, which records each change as the CLI user's), masked
outputs, exit codes, listing with a cursor, resending, and ``events deliver --once``
delivering to a real receiver."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from issuer.cli import cli
from tests.issuer.cli_kit import Issuer, cli_runner
from tests.support.webhooks import Receiver, signature_valid


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("cli-events") / "home"
    result = cli_runner().invoke(
        cli, ["--home", str(home), "init", "--kdf-cost", "10"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return home


@pytest.fixture
def iss(initialised: Path, tmp_path: Path) -> Issuer:
    home = tmp_path / "home"
    shutil.copytree(initialised, home)
    return Issuer(home, cli_runner())


def test_an_endpoints_secret_is_shown_once(iss: Issuer) -> None:
    with Receiver().start() as receiver:
        added = iss.json(
            "webhook", "add", receiver.url, "--events", "account.created,account.credited",
            "--description", "ledger feed", "--dev-plain-http",
        )  # fmt: skip
        secret = added["secret"]
        assert secret.startswith("whsec_")
        assert len(secret) > 40
        assert added["events"] == ["account.created", "account.credited"]
        endpoint = added["id"]
        shown = iss.run("webhook", "show", endpoint).stdout
        listed = iss.json("webhook", "list")
        assert [e["id"] for e in listed] == [endpoint]
        assert secret not in shown + json.dumps(listed)
        rotated = iss.json("webhook", "rotate-secret", endpoint, "--grace", "1h")
        assert rotated["secret"] != secret
        assert rotated["previous_secret_until"]
        account = iss.json("account", "create", "--holder", "Ada")["id"]
        done = iss.json("events", "deliver", "--once")
        assert (done["dispatched"], done["delivered"]) == (1, 1)
        (got,) = receiver.snapshot()
        header = got.headers["tapstack-signature"]
        assert signature_valid(header, got.body, rotated["secret"])
        assert signature_valid(header, got.body, secret)  # within the grace period
        assert got.event["data"]["object"]["id"] == account
        audited = iss.json("audit", "list", "--object", endpoint)["data"]
        assert [(r["action"], r["actor"][:4]) for r in audited] == [
            ("webhook_endpoint.rotate_secret", "cli:"),
            ("webhook_endpoint.create", "cli:"),
        ]
        assert secret not in json.dumps(audited)
        assert rotated["secret"] not in json.dumps(audited)
    text = iss.run("webhook", "add", "https://hooks.example/pay", "--events", "*").stdout
    assert "shown once" in text
    printed = [line.split()[-1] for line in text.splitlines() if line.startswith("secret")]
    assert len(printed) == 1
    assert printed[0].startswith("whsec_")
    assert printed[0] not in iss.run("webhook", "list").stdout


def test_webhook_errors_have_their_exit_codes(iss: Issuer) -> None:
    iss.run("webhook", "add", "http://hooks.example/x", "--events", "*", code=2)
    iss.run("webhook", "add", "https://hooks.example/x", "--events", "nope.nope", code=2)
    iss.run("webhook", "add", "https://hooks.example/x", "--events", "*", "--terminal",
            "term_nosuchterminal2", code=3)  # fmt: skip
    iss.run("webhook", "show", "we_nosuchendpoint23", code=3)
    endpoint = iss.json("webhook", "add", "https://hooks.example/x", "--events", "*")["id"]
    iss.run("webhook", "rotate-secret", endpoint, "--grace", "a year", code=2)
    iss.run("webhook", "rotate-secret", endpoint, "--grace", "8d", code=2)
    assert iss.json("webhook", "disable", endpoint)["status"] == "disabled"
    iss.run("webhook", "disable", endpoint, code=4)
    iss.run("webhook", "remove", endpoint, code=2)  # would ask: no terminal
    error = json.loads(iss.run("webhook", "disable", endpoint, "--json", code=4).stdout)
    assert (error["error"]["code"], error["error"]["exit"]) == ("conflict", 4)
    assert iss.json("webhook", "remove", endpoint, "--yes") == {"id": endpoint, "removed": True}
    assert iss.json("webhook", "list") == []


def test_events_list_show_and_resend(iss: Issuer) -> None:
    made = [iss.json("account", "create", "--holder", f"H{i}")["id"] for i in range(3)]
    iss.json("account", "credit", made[0], "--amount", "12.50")
    page = iss.json("events", "list", "--limit", "2")
    assert [e["type"] for e in page["data"]] == ["account.credited", "account.created"]
    assert page["has_more"] is True
    rest = iss.json("events", "list", "--starting-after", page["data"][-1]["id"])
    assert [e["object_id"] for e in rest["data"]] == made[1::-1]
    mine = iss.json("events", "list", "--object", made[0])["data"]
    assert [(e["type"], e["sequence"]) for e in mine] == [
        ("account.credited", 2),
        ("account.created", 1),
    ]
    assert mine[0]["data"]["previous_attributes"] == {"balance": 0}
    assert len(iss.json("events", "list", "--type", "account.created")["data"]) == 3
    iss.run("events", "list", "--type", "authorisation.requested", code=2)
    iss.run("events", "show", "evt_nosuchevent2345", code=3)
    event = mine[0]["id"]
    assert iss.json("events", "show", event)["deliveries"] == []
    iss.run("events", "resend", event, code=4)  # no endpoint subscribes
    with Receiver().start() as receiver:
        endpoint = iss.json("webhook", "add", receiver.url, "--events", "account.credited",
                            "--dev-plain-http")["id"]  # fmt: skip
        assert iss.json("events", "resend", event) == {"event": event, "endpoints": [endpoint]}
        assert iss.json("events", "deliver", "--once")["delivered"] == 1
        assert receiver.ids() == [event]
        (delivery,) = iss.json("events", "show", event)["deliveries"]
        assert (delivery["status"], delivery["attempts"], delivery["last_status"]) == (
            "delivered", 1, 200,
        )  # fmt: skip
        text = iss.run("events", "show", event).stdout
        assert endpoint in text
        assert "delivered" in text
