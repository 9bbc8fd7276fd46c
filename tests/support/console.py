"""A browser's part for the web consoles' tests without a browser: a client that keeps
the session cookie, reads the CSRF token of the page it got last and posts forms, over
:func:`tests.support.asgi.call` (the application in the test's thread)."""

from __future__ import annotations

import re
from typing import Any, Final
from urllib.parse import urlencode

from tests.support.asgi import Answer, call

__all__ = ["ConsoleClient", "csrf_of"]

_CSRF: Final = re.compile(r'name="csrf" value="([^"]*)"')
_COOKIE: Final = re.compile(r"^(__Host-console)=([^;]*)")


def csrf_of(html: str) -> str:
    """The CSRF token of the first form of ``html``."""
    found = _CSRF.search(html)
    assert found, "no form with a CSRF token"
    return found.group(1)


class ConsoleClient:
    """Requests to a console's ASGI ``app`` with one browser's cookie."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.cookie = ""
        self.csrf = ""

    def _keep(self, answer: Answer) -> Answer:
        set_cookie = answer.headers.get("set-cookie", "")
        found = _COOKIE.match(set_cookie)
        if found:
            self.cookie = found.group(2)
        if answer.headers.get("content-type", "").startswith("text/html"):
            found_csrf = _CSRF.search(answer.body.decode())
            if found_csrf:
                self.csrf = found_csrf.group(1)
        return answer

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.cookie:
            headers["cookie"] = f"__Host-console={self.cookie}"
        return headers

    def get(self, target: str) -> Answer:
        """A GET with the cookie."""
        return self._keep(call(self.app, "GET", target, self._headers()))

    def post(
        self, target: str, fields: dict[str, str] | None = None, *, csrf: bool = True
    ) -> Answer:
        """A form POST with the cookie and (unless not ``csrf``) the last page's token."""
        data = dict(fields or {})
        if csrf:
            data.setdefault("csrf", self.csrf)
        body = urlencode(data).encode()
        headers = self._headers({"content-type": "application/x-www-form-urlencoded"})
        return self._keep(call(self.app, "POST", target, headers, body))

    def sign_in(self, identity: str, credential: str) -> Answer:
        """The sign-in page, then its form posted."""
        self.get("/sign-in")
        return self.post("/sign-in", {"identity": identity, "credential": credential})
