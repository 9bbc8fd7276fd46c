"""``issuer console`` as a process: HTTPS with the home's server certificate (a client
verifying it with the home's server CA, presenting no certificate of its own), an
operator signing in with the credential ``issuer operator add`` gave, its pages and the
security headers, and a stop on SIGTERM."""

from __future__ import annotations

from pathlib import Path

from emvwire.tls import SERVER_CA
from issuer.pki import TLS_DIR
from tests.support.console import HttpsConsole
from tests.support.issuer_home import IssuerHome, stop_service


def test_the_console_serves_https_to_a_signed_in_operator(tmp_path: Path) -> None:
    home = IssuerHome(tmp_path / "home", None, terminals=1, cards=1)
    with home.open() as app:
        made, credential = app.service.add_operator("Olga", ["read"])
    proc, url = home.console()
    try:
        assert url.startswith("https://127.0.0.1:")
        browser = HttpsConsole(url, home.home / TLS_DIR / SERVER_CA)
        try:
            signed_out = browser.request("GET", "/cards")
            assert signed_out.status == 303
            assert browser.sign_in(made.id, "osk_wrong").status == 401
            assert browser.sign_in(made.id, credential).status == 303
            cards = browser.request("GET", "/cards")
            assert cards.status == 200
            assert "Olga" in cards.body.decode()
            assert "strict-transport-security" in cards.headers
            assert cards.headers["cache-control"] == "no-store"
            assert browser.request("GET", "/authorisations").status == 200
        finally:
            browser.close()
    finally:
        stop_service(proc)
    assert proc.returncode == 0
