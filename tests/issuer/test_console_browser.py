"""The issuer's web console in a real browser (Chromium driven by Playwright) over
HTTPS: an operator signs in, sees an authorisation appear without reloading after a
real tap (decided by the authorisation service in-process), suspends the card after a
confirmation, and sees the next tap appear declined; no page logs an error (a script
or style the content security policy refused would).

With ``TAPSTACK_SCREENSHOTS=<folder>`` (``docs`` for the README's) the pages are
saved there as ``console-*.png`` on the way.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from emvwire.oda import SigningKey
from issuer.bootstrap import IssuerApp
from issuer.console import IssuerConsole
from tests.issuer.helpers import World, make_world, send, tap
from tests.support.servers import asgi_serving
from tests.support.tls import TestPki

ROOT = Path(__file__).resolve().parents[2]
SHOTS = os.environ.get("TAPSTACK_SCREENSHOTS")
WAIT_MS = 15_000


@pytest.fixture
def world(issuer: IssuerApp, rsa_keys: dict[str, SigningKey]) -> World:
    return make_world(issuer, rsa_keys)


@pytest.fixture
def served(world: World, tmp_path: Path) -> Iterator[str]:
    """The console over HTTPS (a test CA's server certificate, as the issuer's TLS
    folder has): its URL."""
    context = TestPki(tmp_path / "pki").service.server_context(clients=False)
    with asgi_serving(IssuerConsole(world.app), ssl_context=context) as (host, port):
        yield f"https://{host}:{port}"


def pay(world: World, amount: int, key: str) -> str:
    """A tap of the world's card decided by the service (in a thread of its own: the
    browser's event loop runs in this one): the transaction id."""

    def run() -> str:
        result = tap(world.card, amount)
        return str(send(world, result.authorisation_data, result.track2, key)["id"])

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result(timeout=60)


def shot(page: Any, name: str) -> None:
    if SHOTS:
        folder = ROOT / SHOTS
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / f"console-{name}.png"), full_page=False)


def test_sign_in_see_a_tap_live_suspend_the_card_see_the_next_declined(
    world: World, served: str, chromium: Any
) -> None:
    for n in range(3):  # some history on the page
        pay(world, 250 + 100 * n, f"before-{n}")
    made, credential = world.app.service.add_operator("Olga Operator", ["operations"])
    context = chromium.new_context(
        ignore_https_errors=True, viewport={"width": 1280, "height": 720}
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{served}/authorisations")
        assert page.url.startswith(f"{served}/sign-in")
        page.get_by_label("Operator id").fill(made.id)
        page.get_by_label("Credential").fill(credential)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{served}/authorisations")
        assert page.get_by_role("heading", name="Authorisations").is_visible()
        page.locator(".live-on").wait_for(state="visible")  # the script runs

        approved = pay(world, 1250, "live-1")
        row = page.locator(f'tr[data-id="{approved}"]')
        row.wait_for(timeout=WAIT_MS)  # no reload: the live region polled it in
        assert "approved" in row.inner_text()
        assert page.locator("tbody#authorisations tr").count() == 4

        row.get_by_role("link", name=world.card_id).click()
        page.wait_for_url(f"{served}/cards/{world.card_id}")
        page.get_by_role("link", name="Suspend…").click()
        assert page.get_by_role("heading", name="Suspend this card?").is_visible()
        shot(page, "confirm")
        page.get_by_role("button", name="Suspend the card").click()
        page.wait_for_url(f"{served}/cards/{world.card_id}?notice=*")
        assert page.get_by_role("status").inner_text() == f"Card {world.card_id} suspended."
        assert world.app.service.card(world.card_id).status.value == "paused"
        shot(page, "card")

        page.get_by_role("link", name="Authorisations").click()
        page.wait_for_url(f"{served}/authorisations")
        page.locator(".live-on").wait_for(state="visible")
        declined = pay(world, 900, "live-2")
        row = page.locator(f'tr[data-id="{declined}"]')
        row.wait_for(timeout=WAIT_MS)
        assert "declined" in row.inner_text()
        shot(page, "declined")
    finally:
        context.close()
    assert errors == []
