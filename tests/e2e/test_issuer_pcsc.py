"""End to end through the real processes: ``issuer init`` and ``card provision`` in a
temporary home, ``issuer serve`` on a free port, ``card serve --via pcsc --reader N``
behind pcscd + vpcd, ``terminal pay --reader pcsc:N --issuer URL`` approved and in the
ledger; then a replayed cryptogram, a tampered amount, a wrong terminal key, a rolled
back ATC, a suspended phone token and a token outside its domain through the same
service, each refused for its reason with the balance unchanged."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from emvwire.tlv import decode_flat, encode
from hostlink import HostClient
from tests.support import e2e


@dataclass
class Issuer(e2e.IssuerService):
    account: str
    profile: Path

    def balance(self) -> tuple[int, int]:
        return self.account_balance(self.account)


@pytest.fixture
def issuer_home(tmp_path: Path) -> Iterator[Issuer]:
    env = e2e.init_issuer(tmp_path / "home")
    account = e2e.new_account(env, "Ada Lovelace", "100.00")
    terminal = e2e.add_terminal(env, "Cafe", "5812")
    profile = tmp_path / "visa-card.json"
    e2e.provision_card(env, account, profile)
    with e2e.serve_issuer(env) as url:
        yield Issuer(env, url, terminal, account, profile)


def _card(profile: Path, taps: int, *extra: str) -> e2e.ServedCard:
    """``card serve`` on this process's vpcd reader (``--no-persist`` unless ``extra`` names
    ``--persist``: then its counters file beside the profile); it leaves the reader
    (and pcscd sees it empty) at the end of the ``with`` block."""
    number = e2e.free_vpcd_reader()
    persist = ["--no-persist"] if "--persist" not in extra else []
    options = [*persist, *(e for e in extra if e != "--persist")]
    return e2e.ServedCard(profile, taps, *options, reader=number)


def _pay(issuer: Issuer, amount: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    """``terminal pay``, tried again (up to 3 times) when pcscd reports a card that is
    not ready yet (unpowered, reset, not transacted: a vpcd start-up race)."""
    for _ in range(3):
        done = _pay_once(issuer, amount, key)
        if done.returncode in (8, 9) and re.search(r"UNPOWERED|RESET|NOT_TRANSACTED", done.stderr):
            time.sleep(0.5)
            continue
        return done
    return done


def _pay_once(issuer: Issuer, amount: str, key: str | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(e2e.BIN / "terminal"), "pay", "--reader", e2e.own_reader_path(), "--amount", amount,
         "--timeout", "20", *issuer.terminal.options(issuer.url),
         *(["--terminal-key", key] if key else []), "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _tap_in_process(amount: int) -> Any:
    from terminal.kernel.config import default_config
    from terminal.kernel.entry_point import EntryPoint
    from terminal.kernel.transaction import Transaction
    from terminal.readers import open_reader

    reader = open_reader(e2e.own_reader_path())
    try:
        return EntryPoint(default_config()).run(reader, Transaction(amount), timeout=20)
    finally:
        reader.close()


@pytest.mark.pcsc
@pytest.mark.slow
def test_provision_serve_tap_approved_then_attacks_refused(pcscd: str, issuer_home: Issuer) -> None:
    with _card(issuer_home.profile, 8):
        paid = _pay(issuer_home, "12.34")
        assert paid.returncode == 0, paid.stderr
        summary = json.loads(paid.stdout)
        assert summary["outcome"] == "approved"
        assert summary["message"] == "Approved"  # the issuer's answer, not "Authorising"
        online = summary["online"]
        assert (online["approved"], online["response_code"]) == (True, "00")
        assert re.fullmatch(r"476173\*{6}\d{4}", online["card"])
        assert issuer_home.balance() == (10_000, 1234)
        txns = issuer_home.run("txn", "list")
        assert [(t["id"], t["approved"], t["status"]) for t in txns] == [
            (online["transaction_id"], True, "pending")
        ]
        # Wrong terminal key: refused before the card is asked for (exit 6), nothing
        # recorded, the card's presentation kept for the next tap.
        refused = _pay(issuer_home, "1.00", key="tsk_wrong")
        assert refused.returncode == 6
        assert "401" in refused.stderr
        assert "no card was asked for" in refused.stderr
        assert json.loads(refused.stdout)["error"]["code"] == "refused"
        # The same card through the same reader in process: replay and tamper.
        result = _tap_in_process(500)
        if result.masked_pan != online["card"]:
            pytest.skip("another process's card took our vpcd reader during the test")
        with HostClient(issuer_home.url, issuer_home.terminal_id, issuer_home.key,
                        tls=issuer_home.terminal.tls) as host:  # fmt: skip
            tags = decode_flat(result.authorisation_data)
            tags[0x9F02] = bytes.fromhex("000000000001")
            forged = b"".join(encode(t, v) for t, v in tags.items())
            tampered = host.authorise(forged, result.track2)
            assert (tampered.approved, tampered.reason) == (False, "CRYPTOGRAM_INVALID")
            good = host.authorise(result.authorisation_data, result.track2)
            assert good.approved
            replay = host.authorise(result.authorisation_data, result.track2)
            assert (replay.approved, replay.reason) == (False, "ATC_REPLAYED")
        assert issuer_home.balance() == (10_000, 1234 + 500)
    assert issuer_home.run("ledger", "check").get("consistent", True)


@pytest.mark.pcsc
def test_a_clone_replaying_the_atc_is_declined(pcscd: str, issuer_home: Issuer) -> None:
    """The card is served twice from the same personalisation without its counters (a
    clone, ``--no-persist``): the second presentation reuses ATC 1. Through pcscd,
    the kernel and the service, the issuer declines it and holds nothing more."""
    for attempt, expect in ((1, True), (2, False)):
        with _card(issuer_home.profile, 1):  # pcscd sees the reader empty after it
            paid = _pay(issuer_home, "2.00")
        summary = json.loads(paid.stdout)
        online = summary["online"]
        assert online["approved"] is expect, (attempt, online)
        if not expect:
            assert paid.returncode == 5
            assert online["reason"] in ("ATC_REPLAYED", "ATC_ROLLED_BACK")
            assert summary["message"] == "Not authorised"
    assert issuer_home.balance() == (10_000, 200)


def _tap_once(issuer: Issuer, profile: Path, amount: str, *extra: str) -> Any:
    """Present the card of ``profile`` for one tap and pay ``amount``: the summary."""
    with _card(profile, 1, *extra):  # pcscd sees the reader empty after it
        paid = _pay(issuer, amount)
    summary = json.loads(paid.stdout)
    assert summary["online"] is not None, paid.stderr
    assert paid.returncode == (0 if summary["online"]["approved"] else 5), paid.stderr
    return summary


def _declined(summary: Any, reason: str) -> None:
    online = summary["online"]
    assert (online["approved"], online["reason"]) == (False, reason), online
    assert summary["message"] == "Not authorised"


@pytest.mark.pcsc
def test_a_rolled_back_atc_is_declined(pcscd: str, issuer_home: Issuer) -> None:
    """A card seen at ATC 41, then presented with its counter set back by 30 at power on
    (``card serve --atc-rollback``, an old image restored): below the issuer's window,
    declined ATC_ROLLED_BACK, nothing held."""
    from card.emv import EmvCard

    used = EmvCard.from_file(issuer_home.profile)  # a card already used 40 times
    for app in used.applications:
        app.counters.atc = 40
    used.state.save()
    first = _tap_once(issuer_home, issuer_home.profile, "2.00", "--persist")
    assert first["online"]["approved"] is True
    rolled = _tap_once(
        issuer_home, issuer_home.profile, "3.00", "--persist", "--atc-rollback", "30"
    )
    _declined(rolled, "ATC_ROLLED_BACK")
    assert issuer_home.balance() == (10_000, 200)
    flagged = issuer_home.run("card", "list")
    assert [c.get("flag") for c in flagged] == ["ATC_ROLLED_BACK"]


@pytest.mark.pcsc
@pytest.mark.slow
def test_phone_tokens_suspended_or_outside_their_domain(
    pcscd: str, issuer_home: Issuer, tmp_path: Path
) -> None:
    """A phone token of the card, suspended with ``issuer token suspend``: declined
    TOKEN_SUSPENDED while the card of the same account is approved; a token allowed only
    at transit MCCs tapped at the cafe (5812): TOKEN_DOMAIN_VIOLATION."""
    card_id = issuer_home.run("card", "list")[0]["id"]
    phone, transit = tmp_path / "phone.json", tmp_path / "transit-phone.json"
    made = issuer_home.run("card", "provision", "--account", issuer_home.account,
                           "--scheme", "visa", "--form", "phone", "--card", card_id,
                           "--out", str(phone))  # fmt: skip
    issuer_home.run("card", "provision", "--account", issuer_home.account, "--scheme", "visa",
                    "--form", "phone", "--card", card_id, "--allowed-mcc", "4111",
                    "--out", str(transit))  # fmt: skip
    token_id = made["token"]["id"]
    assert issuer_home.run("token", "suspend", token_id)["status"] == "suspended"
    _declined(_tap_once(issuer_home, phone, "4.00"), "TOKEN_SUSPENDED")
    assert issuer_home.balance() == (10_000, 0)
    by_card = _tap_once(issuer_home, issuer_home.profile, "5.00")
    assert by_card["online"]["approved"] is True
    assert issuer_home.balance() == (10_000, 500)
    _declined(_tap_once(issuer_home, transit, "6.00"), "TOKEN_DOMAIN_VIOLATION")
    assert issuer_home.balance() == (10_000, 500)
    txns = issuer_home.run("txn", "list")
    assert sorted((t["approved"], t["decline_reason"]) for t in txns) == [
        (False, "TOKEN_DOMAIN_VIOLATION"), (False, "TOKEN_SUSPENDED"), (True, None),
    ]  # fmt: skip
