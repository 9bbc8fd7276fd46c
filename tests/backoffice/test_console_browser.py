"""The back office console in a real browser: Debian's chromium driven by Playwright
(the session's ``chromium``, never a downloaded browser) against ``backoffice
console`` served over HTTPS. An operator signs in, sees the riders and both charts,
removes a deny-list entry after confirming it, and finds it gone and in the audit log.

With ``TAPSTACK_SCREENSHOTS=<folder>`` (``docs`` for the README's) the pages are saved
there as ``console-backoffice-*.png`` on the way."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from backoffice.operators import Operators
from backoffice.store import Home, Store
from tests.backoffice.consoles import serve_console
from tests.backoffice.traffic import busy_week

ROOT = Path(__file__).resolve().parents[2]
SHOTS = os.environ.get("TAPSTACK_SCREENSHOTS")


@pytest.fixture
def page(chromium: Any) -> Iterator[Page]:
    """A new page of the session's chromium (the console's certificate is the test
    home's own: not one the browser knows)."""
    context = chromium.new_context(
        ignore_https_errors=True, viewport={"width": 1280, "height": 860}
    )
    try:
        yield context.new_page()
    finally:
        context.close()


def _shot(page: Page, name: str) -> None:
    if SHOTS:
        folder = ROOT / SHOTS
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / f"console-backoffice-{name}.png"), full_page=True)


def test_an_operator_removes_a_deny_list_entry_in_a_browser(page: Page, tmp_path: Path) -> None:
    home = Home(tmp_path / "backoffice")
    home.init()
    with Store(home) as store:
        masked = busy_week(home, store)
        operator, credential = Operators(store).add("Dan Doer", ["operations"])
    full_pans = re.compile(r"\d{12,}")
    with serve_console(home) as url:
        page.goto(url + "/")
        expect(page).to_have_url(re.compile(r"/sign-in"))
        _shot(page, "sign-in")
        page.get_by_label("Operator id").fill(operator.id)
        page.get_by_label("Credential").fill(credential)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        expect(page.locator("svg.chart")).to_have_count(2)
        expect(page.locator("figure.chart-taps rect.bar")).to_have_count(24)
        expect(page.locator("figure.chart-revenue rect.bar")).to_have_count(30)
        expect(page.locator("figure.chart-taps")).to_contain_text("13:00")
        _shot(page, "overview")

        page.get_by_role("link", name="Riders").click()
        expect(page.get_by_role("heading", name="Riders")).to_be_visible()
        expect(page.locator("table.riders tbody tr")).to_have_count(40)
        expect(page.locator("table.riders")).to_contain_text(masked)
        assert not full_pans.search(page.content())
        _shot(page, "riders")

        page.get_by_role("link", name="Deny list").click()
        row = page.locator("table.deny-list tbody tr")
        expect(row).to_have_count(1)
        expect(row).to_contain_text(masked)
        row.get_by_role("link", name="Remove…").click()
        expect(page.get_by_role("heading", name="Remove from the deny list")).to_be_visible()
        expect(page.locator("form.confirm")).to_contain_text("debt(s) in recovery")
        _shot(page, "confirm")
        page.get_by_role("button", name="Remove from the deny list").click()
        expect(page.get_by_role("status")).to_contain_text("removed from the deny list")
        expect(page.locator("table.deny-list")).to_contain_text("The deny list is empty.")
        _shot(page, "deny-list")

        page.get_by_role("link", name="Audit log").click()
        audit = page.locator("table.audit tbody tr")
        expect(audit).to_have_count(1)
        expect(audit).to_contain_text("deny_list.remove")
        expect(audit).to_contain_text(f"operator:{operator.id}")
        expect(audit).to_contain_text("succeeded")
        assert not full_pans.search(page.content())
        _shot(page, "audit")
    with Store(home) as store:
        assert store.deny_changes(1)["remove"]
