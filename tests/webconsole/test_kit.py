"""The web console kit on a small console of its own (the principals are a dict: the
kit is the layer under test): signing in and out, the session cookie's flags and
signature, CSRF refusals, scopes, the confirmation of an action and its signed notice,
masking of anything PAN-like a template writes, the security headers, the SVG chart."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emvwire.mask import scrub
from tests.support.asgi import call
from tests.support.console import ConsoleClient
from webconsole import Column, Console, Principal, Signed, Signer, bar_chart
from webconsole.kit import MAX_FORM, SESSION_COOKIE

PAN = "4761739001010010"
PEOPLE = {
    "op_reader": ("reader-secret", Principal("op_reader", "Rita", frozenset({"read"}))),
    "op_doer": ("doer-secret", Principal("op_doer", "Dan", frozenset({"read", "operations"}))),
}


class Rig(NamedTuple):
    app: Any
    refusals: list[tuple[str, str, str]]
    done: list[str]


@pytest.fixture
def console(tmp_path: Path) -> Rig:
    (tmp_path / "home.html").write_text(
        '{% extends "kit/base.html" %}{% block main %}<p id="pan">{{ pan }}</p>'
        '{% if signed.can("operations") %}<a href="/act">Act</a>{% endif %}{% endblock %}'
    )
    refusals: list[tuple[str, str, str]] = []
    done: list[str] = []

    def authenticate(identity: str, credential: str) -> Principal | None:
        known = PEOPLE.get(identity)
        return known[1] if known and known[0] == credential else None

    def load(ident: str) -> Principal | None:
        known = PEOPLE.get(ident)
        return known[1] if known else None

    kit = Console(
        title="Test console", nav=[("/", "Home")], templates=tmp_path,
        authenticate=authenticate, load=load, scrub=scrub,
        refused=lambda p, what, scope: refusals.append((p.id, what, scope)),
    )  # fmt: skip

    @kit.view("read")
    async def home(request: Request, signed: Signed) -> Response:
        return kit.page(request, signed, "home.html", pan=f"card {PAN}")

    @kit.view("operations")
    async def act(request: Request, signed: Signed) -> Response:
        if not signed.confirmed:
            return kit.confirm(
                request, signed, title="Do it?", message="This does it.", button="Do it",
                details=[("Card", PAN)],
            )  # fmt: skip
        done.append(signed.principal.id)
        return kit.done("/", "Done.")

    return Rig(
        kit.app([Route("/", home), Route("/act", act, methods=["GET", "POST"])]), refusals, done
    )


def test_signing_in_sets_a_strict_cookie_and_a_new_token(console: Rig) -> None:
    app = console.app
    browser = ConsoleClient(app)
    first = browser.get("/")
    assert first.status == 303
    assert first.headers["location"].startswith("/sign-in?next=%2F")
    page = browser.get("/sign-in")
    cookie = page.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    for flag in ("HttpOnly", "Secure", "SameSite=strict", "Path=/"):
        assert flag.lower() in cookie.lower()
    before = browser.csrf
    wrong = browser.post("/sign-in", {"identity": "op_reader", "credential": "nope"})
    assert wrong.status == 401
    assert b"wrong credential" in wrong.body
    signed_in = browser.post("/sign-in", {"identity": "op_reader", "credential": "reader-secret"})
    assert (signed_in.status, signed_in.headers["location"]) == (303, "/")
    home = browser.get("/")
    assert home.status == 200
    assert b"Rita" in home.body
    assert browser.csrf != before  # signing in rotates the token (fixation)


def test_a_tampered_or_foreign_cookie_is_signed_out(console: Rig) -> None:
    app = console.app
    browser = ConsoleClient(app)
    browser.sign_in("op_reader", "reader-secret")
    payload, _, tag = browser.cookie.partition(".")
    browser.cookie = f"{payload}.{tag[:-2]}AA"
    assert browser.get("/").status == 303
    browser.cookie = Signer().sign("session", {"c": "x", "s": "op_doer"})  # another key
    assert browser.get("/").status == 303


def test_a_post_without_the_session_token_is_refused(console: Rig) -> None:
    app, done = console.app, console.done
    browser = ConsoleClient(app)
    browser.sign_in("op_doer", "doer-secret")
    browser.get("/act")
    assert browser.post("/act", {"confirm": "yes"}, csrf=False).status == 403
    assert browser.post("/act", {"confirm": "yes", "csrf": "forged"}, csrf=False).status == 403
    other = ConsoleClient(app)
    other.sign_in("op_doer", "doer-secret")
    assert browser.post("/act", {"confirm": "yes", "csrf": other.csrf}, csrf=False).status == 403
    assert done == []
    # A sign-in form posted from elsewhere (no session cookie) signs nobody in.
    stranger = ConsoleClient(app)
    answer = stranger.post(
        "/sign-in", {"identity": "op_doer", "credential": "doer-secret", "csrf": "x"}, csrf=False
    )
    assert answer.status == 403
    assert stranger.get("/").status == 303


def test_a_hostile_form_is_refused_with_a_reason_and_changes_nothing(console: Rig) -> None:
    """A form past the kit's bound, one that is not a form, bytes that are not UTF-8 and
    a cookie of garbage: each a clear 4xx page, no traceback, no action done."""
    app, done = console.app, console.done
    browser = ConsoleClient(app)
    browser.sign_in("op_doer", "doer-secret")
    browser.get("/act")
    cookie = {"cookie": f"{SESSION_COOKIE}={browser.cookie}"}
    form = {**cookie, "content-type": "application/x-www-form-urlencoded"}
    too_large = call(app, "POST", "/act", form, b"confirm=yes&x=" + b"a" * MAX_FORM)
    assert too_large.status == 413
    assert b"This form is too large." in too_large.body
    as_json = {**cookie, "content-type": "application/json"}
    not_a_form = call(app, "POST", "/act", as_json, b'{"confirm": "yes"}')
    assert not_a_form.status == 415
    assert b"A form is expected." in not_a_form.body
    latin = f"confirm=yes&csrf={browser.csrf}&x=".encode() + b"\xff\xfe"
    not_utf8 = call(app, "POST", "/act", form, latin)
    assert not_utf8.status == 400
    assert b"not UTF-8" in not_utf8.body
    garbage = call(app, "GET", "/", {"cookie": f"{SESSION_COOKIE}=\x00%%%.."})
    assert garbage.status == 303  # signed out: to the sign-in page
    assert done == []


def test_an_action_asks_first_then_redirects_with_a_signed_notice(console: Rig) -> None:
    app, done = console.app, console.done
    browser = ConsoleClient(app)
    browser.sign_in("op_doer", "doer-secret")
    assert b'href="/act"' in browser.get("/").body
    asked = browser.get("/act")
    assert asked.status == 200
    assert b'name="confirm" value="yes"' in asked.body
    unconfirmed = browser.post("/act", {})
    assert unconfirmed.status == 200
    assert b"This does it." in unconfirmed.body
    assert done == []
    did = browser.post("/act", {"confirm": "yes"})
    assert did.status == 303
    assert done == ["op_doer"]
    assert b"Done." in browser.get(did.headers["location"]).body
    forged = "/?notice=" + Signer().sign("notice", {"text": "Call 555"})
    assert b"Call 555" not in browser.get(forged).body


def test_scopes_hide_and_refuse_actions(console: Rig) -> None:
    app, refusals, done = console
    browser = ConsoleClient(app)
    browser.sign_in("op_reader", "reader-secret")
    assert b'href="/act"' not in browser.get("/").body
    assert browser.get("/act").status == 403
    assert browser.post("/act", {"confirm": "yes"}).status == 403
    assert done == []
    assert refusals == [
        ("op_reader", "GET /act", "operations"),
        ("op_reader", "POST /act", "operations"),
    ]


def test_pages_are_masked_and_carry_the_security_headers(console: Rig) -> None:
    app = console.app
    browser = ConsoleClient(app)
    browser.sign_in("op_doer", "doer-secret")
    for path in ("/", "/act"):
        answer = browser.get(path)
        assert PAN not in answer.body.decode()
        assert "476173******0010" in answer.body.decode()
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-frame-options"] == "DENY"
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
    css = call(app, "GET", "/static/console.css")
    assert css.status == 200
    assert css.headers["content-type"].startswith("text/css")
    assert call(app, "GET", "/static/nothing.js").status == 404


def test_signing_out_needs_the_token_and_ends_the_session(console: Rig) -> None:
    app = console.app
    browser = ConsoleClient(app)
    browser.sign_in("op_reader", "reader-secret")
    browser.get("/")
    assert browser.post("/sign-out", {}, csrf=False).status == 403
    out = browser.post("/sign-out", {})
    assert out.status == 303
    assert "max-age=0" in out.headers["set-cookie"].lower()


def test_the_next_target_stays_on_this_site(console: Rig) -> None:
    app = console.app
    browser = ConsoleClient(app)
    browser.get("/sign-in?next=//evil.example/")
    answer = browser.post("/sign-in", {"identity": "op_reader", "credential": "reader-secret",
                                        "next": "//evil.example/"})  # fmt: skip
    assert answer.headers["location"] == "/"


def test_the_bar_chart_is_escaped_svg_scaled_to_a_round_top() -> None:
    svg = str(bar_chart([("<08>", 3), ("09", 7)], title="Taps & more", unit="taps"))
    assert svg.startswith("<svg")
    assert svg.endswith("</svg>")
    assert "&lt;08&gt;" in svg
    assert "Taps &amp; more" in svg
    assert "<08>" not in svg
    heights = [float(h) for h in re.findall(r'<rect class="bar"[^>]* height="([\d.]+)"', svg)]
    assert heights[1] > heights[0] > 0
    assert ">10<" in svg  # the axis tops at 10 for a largest value of 7
    assert "no data" in str(bar_chart([], title="Empty"))


def test_tables_draw_each_kind_of_column_masked(tmp_path: Path) -> None:
    (tmp_path / "t.html").write_text(
        '{% import "kit/tables.html" as tables %}{{ tables.table(columns, rows) }}'
    )
    kit = Console(title="T", nav=[], templates=tmp_path, authenticate=lambda i, c: None,
                  load=lambda i: None, scrub=scrub)  # fmt: skip
    columns = [
        Column("Card", "id", "link", "/cards/"), Column("PAN", "pan", "code"),
        Column("Amount", "amount", "money"), Column("Status", "status", "status"),
        Column("When", "at", "time"), Column("Note", "note"),
    ]  # fmt: skip
    row = {"id": "card_x", "pan": PAN, "amount": 1250, "currency": "EUR", "status": "paused",
           "at": "2026-12-06T16:04:52.218147Z", "note": None}  # fmt: skip
    html = kit.render("t.html", columns=columns, rows=[row])
    assert '<a class="mono" href="/cards/card_x">card_x</a>' in html
    assert "<code>476173******0010</code>" in html
    assert PAN not in html
    assert '<td class="num">12.50 EUR</td>' in html
    assert 'class="status status-paused"' in html
    assert ">2026-12-06 16:04:52</time>" in html
    assert "Nothing yet." in kit.render("t.html", columns=columns, rows=[])
    with pytest.raises(ValueError, match="a column is one of"):
        Column("X", "x", "colour")
