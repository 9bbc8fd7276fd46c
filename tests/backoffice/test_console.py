"""The back office console (backoffice/console/) on both databases, through the web
console kit as a browser would use it (a client keeping the session cookie and the
forms' CSRF tokens): signing in with an operator's credential, every page masked (no
full PAN, card reference or track 2), the chart data of a known traffic, a read-only
operator refused the action (403, audited), CSRF refusals, and a deny-list removal
confirmed, audited and carried to gates (HTTP list, NATS bucket)."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import NamedTuple

import pytest
from click.testing import CliRunner

from backoffice.cli import backoffice
from backoffice.console.app import BackOfficeConsole
from backoffice.console.reports import ConsoleData
from backoffice.operators import Operators
from backoffice.store import Home, Store
from emvwire.tls import SERVER_CA
from terminal.apps.denylist import DenyList
from terminal.apps.stream import DenyListFollower, JetStreamLink
from tests.backoffice.consoles import serve_console
from tests.backoffice.databases import home_args
from tests.backoffice.streams import (
    consuming,
    new_operator,
    remove_operator,
    set_up_operator,
    wait_for,
)
from tests.backoffice.taps import OTHER_PAN, VISA_PAN
from tests.backoffice.traffic import DAY, Traffic, known_traffic
from tests.support.console import ConsoleClient, HttpsConsole

PAGES = ("/", "/riders", "/trips", "/aggregations", "/debts", "/deny-list", "/audit",
         "/?day=2026-11-24", "/trips?rider=1", "/aggregations?state=debt")  # fmt: skip


class Rig(NamedTuple):
    console: BackOfficeConsole
    store: Store
    traffic: Traffic
    reader: tuple[str, str]
    doer: tuple[str, str]


@pytest.fixture
def rig(home: Home, store: Store) -> Iterator[Rig]:
    traffic = known_traffic(home, store)
    operators = Operators(store)
    reader, reader_key = operators.add("Rita Reader", ["read"])
    doer, doer_key = operators.add("Dan Doer", ["operations"])
    console = BackOfficeConsole(home)
    try:
        yield Rig(console, store, traffic, (reader.id, reader_key), (doer.id, doer_key))
    finally:
        console.close()


def _signed_in(rig: Rig, who: tuple[str, str]) -> ConsoleClient:
    browser = ConsoleClient(rig.console.app)
    answer = browser.sign_in(*who)
    assert answer.status == 303
    assert answer.headers["location"] == "/"
    return browser


def _audit(rig: Rig) -> list[tuple[str, str, str]]:
    return [(r.actor, r.action, r.outcome) for r in Operators(rig.store).audit()]


def test_the_chart_data_of_a_known_traffic(rig: Rig, home: Home) -> None:
    data = ConsoleData(rig.store, home.fares())
    hours = data.taps_per_hour(DAY.date())
    assert [h for h, _ in hours] == [f"{h:02d}:00" for h in range(24)]
    assert {h: n for h, n in hours if n} == rig.traffic.taps_per_hour
    revenue = data.revenue_per_day()
    assert len(revenue) == 30
    assert revenue[-1][0] == "2026-11-25"
    assert {d: v for d, v, _ in revenue if v} == rig.traffic.revenue
    assert {d: n for d, _, n in revenue if n} == {"2026-11-24": 6, "2026-11-25": 1}
    assert data.latest_tap_day() == (DAY + timedelta(days=1)).date()
    assert data.counts() == {"riders": 2, "open": 0, "debts": 1, "denied": 1}
    # The page draws them: each bar's exact value is its title.
    page = _signed_in(rig, rig.reader).get("/?day=2026-11-24").body.decode()
    assert "<title>07:00: 2 taps</title>" in page
    assert "<title>18:00: 1 taps</title>" in page
    assert "<title>11-24: 10.00 EUR</title>" in page
    assert "<title>11-25: 2.00 EUR</title>" in page
    assert "7 taps on 2026-11-24" in page
    assert "12.00 EUR for 7 trips over the 30 travel days to 2026-11-25" in page


def test_signing_in_needs_the_operators_credential(rig: Rig) -> None:
    browser = ConsoleClient(rig.console.app)
    assert browser.get("/riders").status == 303  # to the sign-in page
    assert browser.sign_in(rig.reader[0], rig.doer[1]).status == 401
    assert browser.sign_in("bop_nobody", rig.reader[1]).status == 401
    assert browser.sign_in(*rig.reader).status == 303
    riders = browser.get("/riders")
    assert riders.status == 200
    assert "Rita Reader" in riders.body.decode()
    # Revoked, the operator is out at its next click.
    Operators(rig.store).revoke(rig.reader[0])
    assert browser.get("/riders").status == 303
    assert browser.sign_in(*rig.reader).status == 401


def test_no_page_shows_a_full_pan_or_card_reference(rig: Rig) -> None:
    browser = _signed_in(rig, rig.doer)
    secrets = [VISA_PAN, OTHER_PAN, rig.traffic.denied_reference]
    secrets += [r[0] for r in rig.store.conn.execute("SELECT card_reference FROM cards")]
    seen = ""
    for path in (*PAGES, "/deny-list/1/remove"):
        answer = browser.get(path)
        assert answer.status == 200, path
        seen += answer.body.decode()
    for secret in secrets:
        assert secret not in seen
    assert not re.search(r"\d{12,}", seen)  # no PAN-like run of digits at all
    assert "476173******0028" in seen  # cards shown masked
    assert rig.traffic.denied_reference[:8] + "\u2026" in seen


def test_a_read_only_operator_sees_no_action_and_is_refused_one(rig: Rig) -> None:
    browser = _signed_in(rig, rig.reader)
    page = browser.get("/deny-list").body.decode()
    assert "476173******0028" in page
    assert "/deny-list/1/remove" not in page
    assert browser.get("/deny-list/1/remove").status == 403
    assert browser.post("/deny-list/1/remove", {"confirm": "yes"}).status == 403
    assert rig.store.deny_version() == 1  # nothing changed
    actor = f"operator:{rig.reader[0]}"
    assert _audit(rig) == [
        (actor, "POST /deny-list/1/remove", "refused"),
        (actor, "GET /deny-list/1/remove", "refused"),
    ]


def test_a_form_without_the_sessions_token_is_refused(rig: Rig) -> None:
    browser = _signed_in(rig, rig.doer)
    browser.get("/deny-list/1/remove")
    assert browser.post("/deny-list/1/remove", {"confirm": "yes"}, csrf=False).status == 403
    forged = browser.post("/deny-list/1/remove", {"confirm": "yes", "csrf": "forged"})
    assert forged.status == 403
    other = _signed_in(rig, rig.doer)  # another browser's valid token
    other.get("/deny-list")
    stolen = browser.post("/deny-list/1/remove", {"confirm": "yes", "csrf": other.csrf})
    assert stolen.status == 403
    assert rig.store.deny_version() == 1
    assert _audit(rig) == []


def test_a_removal_is_confirmed_audited_and_reaches_gates(rig: Rig) -> None:
    browser = _signed_in(rig, rig.doer)
    listed = browser.get("/deny-list").body.decode()
    assert 'href="/deny-list/1/remove"' in listed
    asked = browser.get("/deny-list/1/remove")
    text = asked.body.decode()
    assert asked.status == 200
    assert "Remove from the deny list" in text
    assert "1 debt(s) in recovery" in text
    assert rig.traffic.denied_reference[:8] in text
    unconfirmed = browser.post("/deny-list/1/remove")  # asks again, changes nothing
    assert unconfirmed.status == 200
    assert rig.store.deny_version() == 1
    done = browser.post("/deny-list/1/remove", {"confirm": "yes"})
    assert done.status == 303
    shown = browser.get(done.headers["location"]).body.decode()
    assert "removed from the deny list" in shown
    assert "The deny list is empty." in shown
    # Gates get it as the next version of the list they poll.
    changes = rig.store.deny_changes(1)
    assert changes == {"version": 2, "full": False, "add": [],
                       "remove": [rig.traffic.denied_reference]}  # fmt: skip
    actor = f"operator:{rig.doer[0]}"
    (record,) = Operators(rig.store).audit()
    assert (record.actor, record.action, record.object_id, record.outcome) == (
        actor, "deny_list.remove", "v1", "succeeded",
    )  # fmt: skip
    assert record.details["reference"] == rig.traffic.denied_reference[:8] + "\u2026"
    assert f"audit record {record.id}" in shown
    audit_page = browser.get("/audit").body.decode()
    assert "deny_list.remove" in audit_page
    assert actor in audit_page
    # Gone already: nothing changes, and the attempt is audited.
    assert browser.post("/deny-list/1/remove", {"confirm": "yes"}).status == 404
    assert _audit(rig)[0] == (actor, "deny_list.remove", "failed")
    assert rig.store.deny_version() == 2


@pytest.mark.nats
def test_a_removal_reaches_the_nats_bucket(
    rig: Rig, home: Home, nats_url: str, tmp_path: Path
) -> None:
    operator = new_operator()
    try:
        link = set_up_operator(nats_url, operator)
        with consuming(rig.store, home.fares(), link):
            deny = DenyList(tmp_path / "gate")
            follower = DenyListFollower(deny, JetStreamLink(nats_url, operator, "G1"))
            follower.start()
            try:
                ref = rig.traffic.denied_reference
                wait_for(lambda: ref in deny, 20, "the entry at the gate")
                browser = _signed_in(rig, rig.doer)
                browser.get("/deny-list/1/remove")
                assert browser.post("/deny-list/1/remove", {"confirm": "yes"}).status == 303
                wait_for(lambda: ref not in deny, 20, "the entry removed at the gate")
            finally:
                follower.stop()
    finally:
        remove_operator(nats_url, operator)


def test_the_console_is_served_over_https_without_client_certificate(rig: Rig, home: Home) -> None:
    """``backoffice console`` as a process: the home's server certificate (verified
    with its server CA), a browser without a client certificate signs in and gets the
    overview; the session cookie is Secure, HttpOnly, SameSite=Strict; SIGTERM ends it
    cleanly."""
    with serve_console(home) as url:
        browser = HttpsConsole(url, home.tls.file(SERVER_CA))
        try:
            first = browser.request("GET", "/")
            assert (first.status, first.headers["location"]) == (303, "/sign-in?next=%2F")
            signed = browser.sign_in(*rig.reader)
            assert signed.status == 303
            cookie = signed.headers["set-cookie"].lower()
            assert "secure" in cookie
            assert "httponly" in cookie
            assert "samesite=strict" in cookie
            page = browser.request("GET", "/")
            assert page.status == 200
            assert "<title>11-25: 2.00 EUR</title>" in page.body.decode()
            assert page.headers["strict-transport-security"].startswith("max-age=")
            assert page.headers["cache-control"] == "no-store"
        finally:
            browser.close()


def test_the_console_command_says_what_is_wrong(home: Home, tmp_path: Path) -> None:
    def run(*args: str) -> int:
        return CliRunner().invoke(backoffice, list(args)).exit_code

    assert run("--home", str(tmp_path / "none"), "console") == 10  # no home: run init
    assert run(*home_args(home), "console", "--bind", "nowhere") == 2
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        assert run(*home_args(home), "console", "--bind", busy) == 4
